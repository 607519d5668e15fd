"""Scaling of `genaug build` over processes: images/s for 1, 2, 3 ... ranks and the ratio to one.

    python benchmarks/bench_distributed.py                                  # icgan-tiny, CPU, 1/2/3 ranks
    python benchmarks/bench_distributed.py --ranks 1,8 --device auto --preset icgan-imagenet256 --inputs 20000

Writes --inputs small synthetic JPEGs, then builds them with one process (`python -m genaug build`)
and with W processes (`torchrun --standalone --nproc-per-node W -m genaug build`), each in a fresh
--out, and prints per world size: the wall time of the whole command (start-up included), images/s,
the ratio to one process, each rank's start-up (process start to its first batch: imports, model,
rendezvous, source listing up to its first shard) from manifest.json, and whether every shard is
byte-identical to the one-process build. CPU processes get one torch thread each (OMP_NUM_THREADS=1).

It also times what every rank reads before its first shard when the source is large: listing a
`path,label` file of --list-lines lines (1,281,167 = ImageNet train) and walking a folder of
--walk-files empty files (scaled to 1.28M in the output, as the walk is linear).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

IMAGENET_TRAIN = 1_281_167


def make_inputs(folder: Path, n: int, seed: int = 0) -> None:
    """n small RGB JPEGs (64x48 .. 96x72) in 1000-file subfolders of `folder`."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = 64 + 8 * (i % 5), 48 + 6 * (i % 5)
        base = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(base).resize((w, h), Image.BICUBIC).save(buf, format="JPEG", quality=90)
        sub = folder / f"part{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img{i:07d}.jpg").write_bytes(buf.getvalue())


def build(world: int, data: Path, out: Path, args: argparse.Namespace) -> float:
    """Run one build with `world` processes; return its wall time in seconds."""
    genaug = ["-m", "genaug", "build", "--method", args.method, "--preset", args.preset, "--data", str(data),
              "--out", str(out), "--device", args.device, "--shard-size", str(args.shard_size),
              "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers), "--quiet"]
    launcher = [sys.executable] if world == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(world)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.run([*launcher, *genaug], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"build with {world} process(es) failed:\n{proc.stderr[-3000:]}")
    return wall


def same_shards(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("shard-*.tar"))
    return names == sorted(p.name for p in b.glob("shard-*.tar")) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in ("index.json", "errors.jsonl"))


def startups(out: Path) -> list[float]:
    manifest = json.loads((out / "manifest.json").read_text())
    ranks = (manifest.get("distributed") or {}).get("ranks")
    return [r["startup_s"] for r in ranks] if ranks else []


def listing_times(tmp: Path, lines: int, files: int) -> tuple[float, float]:
    """Seconds to list a `lines`-line path,label file, and to walk `files` files (scaled to 1.28M)."""
    from genaug.imagenet import imagenet1k_index
    from genaug.sources import open_source

    imagenet1k_index("n01440764")  # load the class list once: a one-time import, part of model start-up
    listing = tmp / "train.csv"
    with open(listing, "w", encoding="utf-8") as handle:
        for i in range(lines):
            handle.write(f"/data/train/n{i % 1000:08d}/img{i:07d}.JPEG,{i % 1000}\n")
    start = time.perf_counter()
    count = sum(1 for _ in open_source(str(listing)))
    list_s = time.perf_counter() - start
    assert count == lines
    walk = tmp / "walk"
    for i in range(files):
        sub = walk / f"n{i // 1300:08d}"
        if i % 1300 == 0:
            sub.mkdir(parents=True)
        (sub / f"n{i // 1300:08d}_{i}.JPEG").touch()
    start = time.perf_counter()
    count = sum(1 for _ in open_source(str(walk)))
    walk_s = time.perf_counter() - start
    assert count == files
    return list_s, walk_s * IMAGENET_TRAIN / files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="1,2,3", help="world sizes to run, comma-separated (1 first)")
    ap.add_argument("--inputs", type=int, default=480)
    ap.add_argument("--method", default="noise")
    ap.add_argument("--preset", default="icgan-tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shard-size", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--list-lines", type=int, default=IMAGENET_TRAIN)
    ap.add_argument("--walk-files", type=int, default=20_000)
    args = ap.parse_args()
    worlds = [int(w) for w in args.ranks.split(",")]
    with tempfile.TemporaryDirectory(prefix="genaug-bench-dist-") as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "data", args.inputs)
        print(f"{args.inputs} inputs, {args.method}/{args.preset} on {args.device}, shard size {args.shard_size}, "
              f"batch {args.batch_size}, {args.num_workers} workers per rank, {os.cpu_count()} CPUs")
        print("| processes | wall s | images/s | ratio to 1 | start-up per rank (s) | shards identical to 1 |")
        print("|---|---|---|---|---|---|")
        first = None
        for world in worlds:
            out = tmp / f"w{world}" / "out"
            wall = build(world, tmp / "data", out, args)
            rate = args.inputs / wall
            first = first or (rate, out)
            ups = ", ".join(f"{s:.1f}" for s in startups(out)) or "-"
            same = "yes" if same_shards(out, first[1]) else "NO"
            print(f"| {world} | {wall:.1f} | {rate:.1f} | {rate / first[0]:.2f} | {ups} | {same} |")
        list_s, walk_s = listing_times(tmp, args.list_lines, args.walk_files)
        print(f"source listing every rank does: {args.list_lines:,}-line path,label file {list_s:.1f} s; folder walk "
              f"{walk_s:.1f} s for 1.28M files (measured on {args.walk_files:,}, scaled linearly)")


if __name__ == "__main__":
    main()
