"""Peak memory of reading a tar with one huge member: the build's input reader and `genaug inspect`.

    python benchmarks/bench_member_cap.py                  # a 2 GiB member (sparse on disk)
    python benchmarks/bench_member_cap.py --size-mib 300   # just over the 256 MiB member limit

Writes two input tars of 8 small JPEG samples each, one of them with an extra sample whose ``aug.jpg``
member is ``--size-mib`` MiB of zeros (the tar file is sparse, so it takes no disk space), then runs,
each in a fresh process: the build's input side (genaug.build.sources.open_source + read_item_bytes on every
item, what the decode workers get) and genaug.inspect.inspect_shards (with --verify). Prints each
process's peak RSS (ru_maxrss) for the plain and the huge tar, their ratio, and what was recorded for
the huge member. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = 8

CHILD = r"""
import json, resource, sys
from genaug.inspect import inspect_shards
from genaug.build.preprocess import BadInput
from genaug.build.sources import open_source
from genaug.build.sources.base import read_item_bytes

mode, path = sys.argv[1], sys.argv[2]
notes = []
if mode == "build-input":
    for item in open_source(path):
        try:
            read_item_bytes(item)
        except BadInput as err:
            notes.append(str(err))
else:
    notes = [p for p in inspect_shards([path], verify=True)["problems"] if "limit" in p]
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "notes": notes}))
"""


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tar(path: Path, huge_bytes: int | None) -> None:
    """8 samples (jpg + cls); with `huge_bytes`, first a sample whose aug.jpg member is that many zero
    bytes, skipped over with seek so the file is sparse."""
    with open(path, "wb") as raw:
        if huge_bytes is not None:
            info = tarfile.TarInfo("huge.aug.jpg")  # a genaug-output field, so inspect checks the sample
            info.size = huge_bytes
            raw.write(info.tobuf(format=tarfile.USTAR_FORMAT))
            raw.seek(-(-huge_bytes // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE, io.SEEK_CUR)
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(SAMPLES):
                _add(tar, f"s{i:03d}.jpg", _jpeg(i))
                _add(tar, f"s{i:03d}.cls", str(i % 2).encode())


def measure(mode: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=2048, help="size of the huge member in MiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain, huge = Path(tmp) / "plain.tar", Path(tmp) / "huge.tar"
        write_tar(plain, None)
        write_tar(huge, args.size_mib * 2**20)
        print(f"huge member: {args.size_mib} MiB (tar file {huge.stat().st_size / 2**20:.0f} MiB apparent, "
              f"{huge.stat().st_blocks * 512 / 2**20:.1f} MiB on disk)")
        for mode in ("build-input", "inspect"):
            base, big = measure(mode, plain), measure(mode, huge)
            ratio = big["peak_rss_mib"] / base["peak_rss_mib"]
            print(f"{mode:12s} peak RSS: plain tar {base['peak_rss_mib']:.0f} MiB, with the huge member "
                  f"{big['peak_rss_mib']:.0f} MiB (ratio {ratio:.2f})")
            for note in big["notes"][:2]:
                print(f"  recorded: {note}")


if __name__ == "__main__":
    main()
