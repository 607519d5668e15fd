"""Shared parts of bench_mask.py and bench_noise.py (imported from the script's own folder)."""

from __future__ import annotations

import argparse
import json
import platform

import torch

from genaug.methods.editing import sweep_batch_sizes, time_editor
from genaug.registry import REGISTRY, EditorContext
from genaug.weights import resolve


def parser(doc: str, default_preset: str, batch_sizes: str, images: int) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--preset", default=default_preset)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"])
    ap.add_argument("--batch-sizes", default=batch_sizes, help="comma-separated sweep (include 1)")
    ap.add_argument("--images", type=int, default=images, help="images timed per batch size (after a warm-up batch)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (pinned; the build's editors pin 1, other counts change pixels)")
    ap.add_argument("--weights", default=None, help="--weights override for official presets")
    ap.add_argument("--json", action="store_true")
    return ap


def run(method: str, args: argparse.Namespace, options: dict, title: str) -> None:
    torch.set_num_threads(args.threads)
    preset = REGISTRY.preset(args.preset, method=method)
    opts = REGISTRY.method(method).validate_options(options)
    paths = resolve(preset, override=args.weights).paths
    editor = preset.build(EditorContext(preset, paths, torch.device(args.device), args.precision, opts))
    if getattr(editor, "cpu_threads", None) is not None:
        editor.cpu_threads = args.threads  # the editor pins its CPU threads while computing
    # the sweep times one model call per batch of exactly that size (editing.unchunked), so batch 1 is a
    # true batch-1 forward; the build instead runs fixed compute chunks, timed below at one chunk
    rows = sweep_batch_sizes(editor, [int(b) for b in args.batch_sizes.split(",")], args.images)
    chunk = getattr(editor, "compute_chunk", None)
    build = None
    if chunk:
        sec = time_editor(editor, chunk, max(args.images, chunk), chunked=True)
        build = {"batch_size": chunk, "ms_per_image": 1000.0 * sec, "images_per_s": 1.0 / sec}
    d = editor.describe()
    name = torch.cuda.get_device_name() if d["device"].startswith("cuda") else platform.processor() or "CPU"
    facts = {"benchmark": title, "preset": d["preset"], "device": d["device"], "device_name": name,
             "threads": getattr(editor, "cpu_threads", None) or torch.get_num_threads(),
             "precision": d["autocast"], "options": opts, "rows": rows, "path": "unchunked",
             "compute_chunk": chunk, "build_path": build}
    if args.json:
        print(json.dumps(facts, indent=2))
        return
    _print(facts)


def _print(facts: dict) -> None:
    rows = facts["rows"]
    print(f"{facts['benchmark']}: preset {facts['preset']} on {facts['device']} ({facts['device_name']}), "
          f"{facts['threads']} thread(s), {facts['precision']}")
    print("one model call per batch of exactly the given size (no fixed compute chunk: batch 1 is a true "
          "batch-1 forward)")
    print(f"{'batch':>6} {'images/s':>10} {'ms/image':>10} {'x batch 1':>10}")
    for r in rows:
        ratio = f"{r['ratio_to_batch1']:.2f}" if r["ratio_to_batch1"] else "-"
        print(f"{r['batch_size']:>6} {r['images_per_s']:>10.2f} {r['ms_per_image']:>10.1f} {ratio:>10}")
    best = min(rows, key=lambda r: r["ms_per_image"])
    one = next((r for r in rows if r["batch_size"] == 1), None)
    if one:
        print(f"batch 1: {one['ms_per_image']:.1f} ms/image ({one['images_per_s']:.2f} images/s); "
              f"best batch {best['batch_size']}: {best['ms_per_image']:.1f} ms/image "
              f"({best['images_per_s']:.2f} images/s) = {one['ms_per_image'] / best['ms_per_image']:.2f}x batch 1")
    build = facts["build_path"]
    if build:
        print(f"build path (fixed compute chunks of {facts['compute_chunk']}, the batch size does not change "
              f"the output): {build['ms_per_image']:.1f} ms/image ({build['images_per_s']:.2f} images/s)")
