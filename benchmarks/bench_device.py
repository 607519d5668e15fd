"""One-shot device benchmark: per-stage speed, MFU and memory per chunk size, end-to-end builds, fp32 vs
default precision agreement and the gpu-marked tests, printed and written as JSON + a RESULTS.md row.

    python benchmarks/bench_device.py                     # on a CUDA machine: full-size presets (< 8 min)
    python benchmarks/bench_device.py --cpu --results /tmp/RESULTS.md --json-out /tmp/bench.json

On CUDA it times the official presets when their weights are cached (`genaug models`), else random-init
models of the same size (said in the output: throughput is the same, pictures are noise). Without CUDA,
or with --cpu, it runs the tiny presets on one CPU thread in seconds (a CI test runs that mode); its
figures are labelled CPU and say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _device_e2e as e2e
import _device_stages as stages
import _precision as prec
import torch

from genaug.methods.editing import auto_batch_size
from genaug.registry import REGISTRY, EditorContext
from genaug.weights import resolve

ROOT = Path(__file__).resolve().parents[1]
HEADER = ("| date | device | torch / CUDA | mode | mask e2e img/s (÷ model-only) | noise e2e img/s (÷ model-only) "
          "| best MFU (stage, chunk) | tokenizer tokens equal to exact fp32 | gpu tests | note |\n"
          "|---|---|---|---|---|---|---|---|---|---|\n")


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="CPU mode (tiny presets) even when CUDA is present")
    ap.add_argument("--chunks", default=None, help="chunk sizes to time (default: CPU 1,2,4; CUDA 8,16,32,40,64,128)")
    ap.add_argument("--images", type=int, default=None, help="generated JPEGs per end-to-end build (CPU 8, CUDA 3000)")
    ap.add_argument("--workers", type=int, default=None, help="build --num-workers (CPU 0; CUDA min(16, cores - 1))")
    ap.add_argument("--min-seconds", type=float, default=None, help="timing per stage and chunk (CPU 0, CUDA 1.0)")
    ap.add_argument("--no-tests", action="store_true", help="skip the gpu-marked tests")
    ap.add_argument("--budget-s", type=float, default=450.0,
                    help="time budget: the chunk sweep stops at 40%% of it, the gpu tests run only if 210 s remain")
    ap.add_argument("--json-out", type=Path, default=None, help="JSON file (default benchmarks/results/device-<time>.json)")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="markdown table to append to")
    return ap.parse_args(argv)


def environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": str(device), "device_name": name,
            "torch": torch.__version__, "cuda": torch.version.cuda if device.type == "cuda" else None,
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return platform.processor() or "CPU"


def make_editor(preset: str, device: torch.device, precision: str = "auto"):
    p = REGISTRY.preset(preset)
    opts = REGISTRY.method(p.method).validate_options(dict(e2e.METHOD_OPTIONS[p.method]))
    return p.build(EditorContext(p, resolve(p, download=False).paths, device, precision, opts))


def agreement(presets: dict, device: torch.device, n: int) -> dict:
    mask = make_editor(presets["mask"][0], device)
    size = mask.resolution
    out = {"tokenizer": prec.token_agreement(mask.model, prec.sample_images(size, n), device)}
    out["decode"] = prec.decode_agreement(mask.model, prec.sample_images(size, n), device)
    for method, (preset, _) in presets.items():
        editor = make_editor(preset, device)
        images = (prec.sample_images(editor.resolution, n) * 255).round().to(torch.uint8).to(device)
        labels = torch.zeros(n, dtype=torch.long, device=device)
        out[f"edit_{method}"] = prec.edit_agreement(lambda p, preset=preset: make_editor(preset, device, p),
                                                    images, labels, list(range(n)), precisions=("auto",))
    return out


def gpu_tests(device: torch.device, skip: bool) -> dict:
    if skip or device.type != "cuda":
        return {"run": False, "why": "--no-tests" if skip else "no CUDA device: gpu-marked tests not run"}
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"],
                              cwd=ROOT, capture_output=True, text=True, timeout=210)
    except subprocess.TimeoutExpired:
        return {"run": True, "returncode": None, "summary": "timed out after 210 s"}
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {"run": True, "returncode": done.returncode, "summary": last}


def end_to_end(presets: dict, device: torch.device, args, work: Path) -> dict:
    data = work / "jpegs"
    nbytes = e2e.make_jpegs(data, args.images)
    out = {"jpegs": args.images, "mean_jpeg_kb": nbytes / args.images / 1024}
    for method, (preset, _) in presets.items():
        editor = make_editor(preset, device)
        chunk = auto_batch_size(editor)  # what the build hands the editor per call
        model_only = e2e.model_only_rate(editor, chunk, max(2 * chunk, min(args.images, 8 * chunk)))
        resolution, resample = editor.resolution, editor.input_resample
        del editor
        shard_size = max(chunk, (args.images // 4) // chunk * chunk)
        build = e2e.build_rate(method, preset, data, work / f"out-{method}", device, args.workers, shard_size)
        cpu = e2e.cpu_seconds_per_image(data, resolution, resample)
        cores = model_only * (cpu["decode_resize_ms"] + cpu["encode_ms"]) / 1000.0
        out[method] = {"preset": preset, "chunk": chunk, "model_only_images_per_s": model_only, **build,
                       "e2e_over_model_only": build["images_per_s_shards"] / model_only, "cpu_per_image": cpu,
                       "cpu_cores_to_feed_model_only": cores}
    return out


def main(argv=None) -> dict:
    args = parse(argv)
    cpu_mode = args.cpu or not torch.cuda.is_available()
    device = torch.device("cpu" if cpu_mode else "cuda")
    torch.set_num_threads(1)
    logging.getLogger("genaug").setLevel(logging.ERROR)
    chunks = [int(c) for c in (args.chunks or ("1,2,4" if cpu_mode else "8,16,32,40,64,128")).split(",")]
    args.images = args.images or (8 if cpu_mode else 3000)
    args.workers = args.workers if args.workers is not None else (0 if cpu_mode else e2e.default_workers())
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if cpu_mode else 1.0)
    facts = {"mode": "cpu (tiny presets)" if cpu_mode else "cuda", **environment(device)}
    presets = e2e.bench_presets(device, cpu_mode)
    facts["presets"] = {m: {"preset": p, "random_init": r} for m, (p, r) in presets.items()}
    peaks = stages.peak_for(facts["device_name"]) if not cpu_mode else None
    facts["peaks_tflops"] = peaks
    start = time.perf_counter()
    rows = []
    for method, (preset, _) in presets.items():
        editor = make_editor(preset, device)
        table = stages.mask_stages(editor, device) if method == "mask" else stages.noise_stages(editor, device)
        deadline = start + 0.4 * args.budget_s * (1 if method == "noise" else 0.75)
        rows += [{"method": method, **r} for r in stages.sweep(table, chunks, device, peaks, min_seconds,
                                                               max_reps=2 if cpu_mode else 50, deadline=deadline)]
        del editor
    facts["stages"] = rows
    facts["agreement"] = agreement(presets, device, 4 if cpu_mode else 16)
    with tempfile.TemporaryDirectory(prefix="genaug-bench-device-") as tmp:
        facts["end_to_end"] = end_to_end(presets, device, args, Path(tmp))
    left = args.budget_s - (time.perf_counter() - start)
    facts["gpu_tests"] = gpu_tests(device, args.no_tests) if left > 210 or device.type != "cuda" else {
        "run": False, "why": f"time budget: {left:.0f} s left of --budget-s {args.budget_s:.0f}"}
    facts["seconds"] = time.perf_counter() - start
    report(facts)
    write(facts, args)
    return facts


def report(f: dict) -> None:
    label = "CPU, 1 thread, tiny presets: NOT a GPU figure" if f["device"] == "cpu" else f["device_name"]
    print(f"bench_device on {f['device']} ({label}); torch {f['torch']}, CUDA {f['cuda']}; {f['date']}")
    for method, p in f["presets"].items():
        note = " (RANDOM weights of the official size: throughput only)" if p["random_init"] and f["device"] != "cpu" else ""
        print(f"  {method}: preset {p['preset']}{note}")
    print(f"  {'stage':<18}{'prec':>5}{'chunk':>6}{'ms/img':>10}{'img/s':>10}{'GFLOP/img':>11}{'TFLOP/s':>9}"
          f"{'MFU':>7}{'peak GiB':>9}")
    for r in f["stages"]:
        if "error" in r:
            print(f"  {r['stage']:<18}{'':>5}{r['chunk']:>6}  {r['error']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        mem = f"{r['peak_memory_gib']:.2f}" if "peak_memory_gib" in r else "-"
        print(f"  {r['stage']:<18}{r['precision']:>5}{r['chunk']:>6}{r['ms_per_image']:>10.3f}{r['images_per_s']:>10.1f}"
              f"{r['gflop_per_image']:>11.2f}{r['tflop_per_s']:>9.3f}{mfu:>7}{mem:>9}")
    a = f["agreement"]
    t = a["tokenizer"]
    real = f", real TF32 {t['tf32']:.3%}" if "tf32" in t else ""
    print(f"  tokenizer tokens equal to exact fp32: bf16 {t['bf16']:.3%}, TF32 emulated {t['tf32_emulated']:.3%}{real}")
    print(f"  decode (bf16 transformer vs fp32, same seeds): masked tokens equal {a['decode']['decode_bf16']:.3%}")
    for method in f["presets"]:
        e = a[f"edit_{method}"]["auto"]
        print(f"  {method} edit, default precision vs fp32: max |diff| {e['max_abs']}, mean {e['mean_abs']:.3f} "
              f"grey levels, {e['frac_pixels_equal']:.2%} values equal")
    e = f["end_to_end"]
    for method in f["presets"]:
        r = e[method]
        print(f"  end-to-end {method}: {r['inputs']} JPEGs (~{e['mean_jpeg_kb']:.0f} kB, ~500x375), "
              f"{r['num_workers']} workers: {r['images_per_s_shards']:.1f} img/s in the shards "
              f"({r['images_per_s_whole_run']:.1f} with start-up); model only {r['model_only_images_per_s']:.1f} img/s "
              f"at batch {r['chunk']}; end-to-end ÷ model-only = {r['e2e_over_model_only']:.2f}")
        c = r["cpu_per_image"]
        print(f"    CPU side per image on one core: decode+crop+resize {c['decode_resize_ms']:.1f} ms, aug JPEG "
              f"encode {c['encode_ms']:.1f} ms -> {r['cpu_cores_to_feed_model_only']:.1f} cores keep up with "
              f"the model-only rate")
    g = f["gpu_tests"]
    print(f"  gpu tests: {g.get('summary') if g['run'] else g['why']}")
    print(f"  total {f['seconds']:.1f} s")


def results_row(f: dict) -> str:
    e, a = f["end_to_end"], f["agreement"]
    ok = [r for r in f["stages"] if r.get("mfu") is not None]
    best = max(ok, key=lambda r: r["mfu"]) if ok else None
    mfu = f"{best['mfu']:.0%} ({best['stage']}, {best['chunk']})" if best else "n/a (CPU)"
    rates = {m: f"{e[m]['images_per_s_shards']:.1f} ({e[m]['e2e_over_model_only']:.2f})" for m in ("mask", "noise")}
    random = any(p["random_init"] for p in f["presets"].values())
    mode = "CPU, tiny presets" if f["device"] == "cpu" else ("random-init full size" if random else "official presets")
    tests = f["gpu_tests"].get("summary") if f["gpu_tests"]["run"] else "not run"
    device = f"{f['device_name']} (CPU)" if f["device"] == "cpu" else f["device_name"]
    cuda = f["cuda"] or "-"
    note = "CPU mode: no GPU figure" if f["device"] == "cpu" else ""
    return (f"| {f['date']} | {device} | {f['torch']} / {cuda} | {mode} | {rates['mask']} | {rates['noise']} | {mfu} "
            f"| {_tokens(a['tokenizer'])} | {tests} | {note} |\n")


def _tokens(t: dict) -> str:
    tf32 = f"{t['tf32']:.2%} TF32 (default)" if "tf32" in t else f"{t['tf32_emulated']:.2%} TF32-emulated"
    return f"{t['bf16']:.2%} bf16, {tf32}"


def write(f: dict, args) -> None:
    path = args.json_out or ROOT / "benchmarks" / "results" / f"device-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(f, indent=2, default=str) + "\n")
    results = args.results
    text = results.read_text() if results.is_file() else "# Device benchmark results\n\n"
    if HEADER.splitlines()[0] not in text:
        text += "\n" + HEADER
    results.write_text(text + results_row(f))
    print(f"  wrote {path} and a row of {results}")


if __name__ == "__main__":
    main()
