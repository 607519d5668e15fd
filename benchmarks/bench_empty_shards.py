"""Wall time of a build whose inputs are all skipped: many small, empty shards (issue 12).

    python benchmarks/bench_empty_shards.py                     # 20,000 non-image samples, --shard-size 8
    python benchmarks/bench_empty_shards.py --samples 2000

Writes one input tar of ``--samples`` samples holding only a ``txt`` member (no image: every sample is
skipped and recorded in errors.jsonl), runs ``genaug build --method mask --preset maskgit-tiny`` (random
weights, no download; the model never runs on a skipped input) in a fresh process and prints the wall time,
the shards written per second and the summary line the CLI printed (which counts the empty shards).
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def write_tar(path: Path, samples: int) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(samples):
            data = f"a caption without an image {i}".encode()
            info = tarfile.TarInfo(f"s{i:06d}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--shard-size", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "in.tar", Path(tmp) / "out"
        write_tar(data, args.samples)
        argv = [sys.executable, "-m", "genaug.cli.main", "build", "--method", "mask", "--preset", "maskgit-tiny",
                "--class-token", "random", "--data", str(data), "--out", str(out), "--shard-size", str(args.shard_size), "--num-workers", "0"]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        wall = time.perf_counter() - start
        shards = len(list(out.glob("shard-*.tar")))
        print(f"{args.samples} non-image samples, --shard-size {args.shard_size}: {shards} shards in {wall:.1f} s "
              f"({shards / wall:.0f} shards/s, process start and model set-up included); exit {done.returncode}")
        summary = [line for line in (done.stdout + done.stderr).splitlines() if "pairs written" in line]
        print(f"  summary: {summary[0] if summary else '(none)'}")
        if done.returncode not in (0, 1):  # 1: every input skipped, as intended here
            print(done.stderr[-2000:])


if __name__ == "__main__":
    main()
