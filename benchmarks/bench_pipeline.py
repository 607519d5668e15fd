"""Build pipeline scale check: peak RSS and images/s for 1k and 10k generated inputs.

    python benchmarks/bench_pipeline.py                          # test editor, 1000 and 10000 inputs
    python benchmarks/bench_pipeline.py --editor tiny --sizes 1000 --batch-size 32 --device cuda

Writes small synthetic JPEGs (distinct names, a few distinct contents) to a temp folder, then runs
each build in its own child process (so each peak RSS is that build's alone) and prints the peak
RSS of the main process and of its largest worker process (VmHWM polled from /proc), images/s, and the 10k/1k ratios: if memory
is flat in the number of inputs, the RSS ratio stays near 1 while the input count grows 10x.

--editor test: the cheap test-only editor of tests/editors.py (measures the pipeline itself);
--editor tiny: the random-weight preset given by --preset (default maskgit-tiny; slow on a CPU).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

DISTINCT_IMAGES = 64  # distinct JPEG payloads, cycled over the file names


def make_inputs(folder: Path, n: int, seed: int = 0) -> None:
    """n small JPEGs (64x48 .. 96x72) in folder/, 1000 per subfolder."""
    rng = np.random.default_rng(seed)
    payloads = []
    for i in range(DISTINCT_IMAGES):
        w, h = 64 + 8 * (i % 5), 48 + 6 * (i % 5)
        base = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((w, h), Image.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        payloads.append(buf.getvalue())
    for i in range(n):
        sub = folder / f"part{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img{i:07d}.jpg").write_bytes(payloads[i % DISTINCT_IMAGES])



class WorkerPeak:
    """Polls /proc for this process's children and keeps the largest VmHWM (peak RSS) seen.
    (ru_maxrss of RUSAGE_CHILDREN would report the parent's size copied at fork, before exec.)"""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.peak_kib = 0
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "WorkerPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.wait(self._interval):
            for status in Path("/proc").glob("[0-9]*/status"):
                try:
                    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                except OSError:  # the process ended while we looked
                    continue
                if fields.get("PPid", "").strip() == me and "VmHWM" in fields:
                    self.peak_kib = max(self.peak_kib, int(fields["VmHWM"].split()[0]))


def child(args: argparse.Namespace) -> None:
    """Run one build in this process and print its figures as one JSON line."""
    import torch

    from genaug.build.pipeline import BuildConfig, run_build
    from genaug.device import device_name

    torch.set_num_threads(args.threads)
    if args.editor == "test":
        from genaug.testing import editors

        editors.register()
        method, preset, options = "test", "test-invert", {}
    else:
        from genaug.registry import REGISTRY

        preset = args.preset
        method = REGISTRY.preset(preset).method
        options = {"class_token": "random"} if method == "mask" else {}
    config = BuildConfig(method=method, preset=preset, options=options, out=Path(args.out), data=(args.data,),
                         batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
                         shard_size=args.shard_size)
    start = time.perf_counter()
    with WorkerPeak() as workers:
        summary = run_build(config)
    wall = time.perf_counter() - start
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    workers_kb = workers.peak_kib
    print(json.dumps({"inputs": summary.inputs, "samples": summary.samples, "wall_s": wall,
                      "images_per_s": summary.inputs / wall, "peak_rss_mib": self_kb / 1024,
                      "peak_worker_rss_mib": workers_kb / 1024, "cpu": device_name(torch.device("cpu"))}))


def parent(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        for n in args.sizes:
            data, out = Path(tmp) / f"in{n}", Path(tmp) / f"out{n}"
            start = time.perf_counter()
            make_inputs(data, n)
            made = time.perf_counter() - start
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--data", str(data), "--out", str(out),
                   "--editor", args.editor, "--preset", args.preset, "--batch-size", str(args.batch_size),
                   "--num-workers", str(args.num_workers), "--device", args.device,
                   "--shard-size", str(args.shard_size), "--threads", str(args.threads)]
            result = subprocess.run(cmd, check=True, capture_output=True, text=True)
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row.update(n=n, make_inputs_s=made)
            rows.append(row)
            print(f"{n:>7} inputs: {row['images_per_s']:8.1f} images/s, wall {row['wall_s']:7.1f} s, "
                  f"peak RSS main {row['peak_rss_mib']:7.1f} MiB, workers {row['peak_worker_rss_mib']:7.1f} MiB",
                  flush=True)
    cpu = rows[-1]["cpu"] if rows else "?"  # the child's genaug.build.batches.device_name of the CPU
    print(f"machine: {platform.machine()} {cpu}, python {platform.python_version()}, editor "
          f"{args.editor if args.editor == 'test' else args.preset}, batch {args.batch_size}, "
          f"workers {args.num_workers}, device {args.device}, shard size {args.shard_size}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(f"ratios {last['n']}/{first['n']}: inputs x{last['n'] / first['n']:.0f}, "
              f"peak RSS main x{last['peak_rss_mib'] / first['peak_rss_mib']:.2f}, "
              f"workers x{last['peak_worker_rss_mib'] / max(first['peak_worker_rss_mib'], 1e-9):.2f}, "
              f"images/s x{last['images_per_s'] / first['images_per_s']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="input counts to build")
    ap.add_argument("--editor", choices=["test", "tiny"], default="test")
    ap.add_argument("--preset", default="maskgit-tiny", help="random-weight preset for --editor tiny")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
