"""Peak memory of the loader on a shard holding one huge tar member (issue 12, defect 4).

    python -m benchmarks.bench_loader_member              # a 2 GiB member (a sparse file: no disk used)
    python -m benchmarks.bench_loader_member --mib 512

Writes a small shard plus one sample whose aug image is a member of --mib MiB (zeros stored as a
hole), then in a fresh process per reader streams it and prints the reader's peak RSS before and
after: genaug's streaming and map-style datasets (which skip members over
genaug.loader.tarread.MAX_MEMBER_BYTES unread) and plain webdataset (which reads every member whole).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

READERS = {
    "genaug streaming": (
        "from genaug.loader import GenCLWebDataset\n"
        "items = GenCLWebDataset([shard], gamma=1.0, image_size=8, shuffle_buffer=0, verify='none')\n"),
    "genaug map-style": (
        "import json, os\n"
        "from genaug.loader import GenCLMapDataset\n"
        "folder = os.path.dirname(shard)\n"
        "json.dump({'__kind__': 'wids-shard-index-v1', 'name': 'big', 'shardlist': [{'url': os.path.basename(shard),"
        " 'nsamples': 3}]}, open(os.path.join(folder, 'index.json'), 'w'))\n"
        "ds = GenCLMapDataset(folder, gamma=1.0, image_size=8, verify='none')\n"
        "items = (ds[i] for i in range(len(ds)))\n"),
    "plain webdataset": (
        "import webdataset as wds\n"
        "items = wds.WebDataset([shard], shardshuffle=False, empty_check=False)\n"),
}

MEASURE = (
    "import resource, sys, time\n"
    "shard = sys.argv[1]\n"
    "{setup}"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "start = time.perf_counter()\n"
    "n = sum(1 for _ in items)\n"
    "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(n, before, after, time.perf_counter() - start)\n"
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=2048, help="size of the huge member in MiB")
    args = parser.parse_args(argv)
    from genaug.testing.shardfactory import add_big_member, make_shards

    with tempfile.TemporaryDirectory() as tmp:
        (shard,) = make_shards(Path(tmp) / "run", n_samples=2, shard_size=2, real_size=(16, 20))
        add_big_member(shard, "big_00009", "aug.jpg", args.mib << 20)
        print(f"shard with one {args.mib} MiB member ({shard.stat().st_size / 2**20:.0f} MiB apparent size)")
        print(f"{'reader':18} {'samples':>7} {'peak RSS before':>16} {'peak RSS after':>15} {'seconds':>8}")
        for name, setup in READERS.items():
            out = subprocess.run([sys.executable, "-c", MEASURE.format(setup=setup), str(shard)],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                print(f"{name:18} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            count, before, after, seconds = out.stdout.split()
            print(f"{name:18} {count:>7} {int(before) / 1024:>12.0f} MiB {int(after) / 1024:>11.0f} MiB "
                  f"{float(seconds):>8.2f}")


if __name__ == "__main__":
    main()
