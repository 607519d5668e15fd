"""Tar member tables of local shards, grouped into samples the way webdataset groups them.

A sample is the run of consecutive members whose file names share the part before the first '.' of
the base name (the directory stays in the key). Only headers are read (tarfile seeks over payloads).
"""

from __future__ import annotations

import os
import tarfile

Member = tuple[int, int]  # (data offset in the tar, size in bytes)


def scan_tar(path: str) -> list[tuple[str, dict[str, Member]]]:
    """[(key, {extension: (offset, size)})] in tar order."""
    samples: list[tuple[str, dict[str, Member]]] = []
    key, members = None, {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            base = os.path.basename(info.name)
            if not info.isfile() or "." not in base or base.startswith("."):
                continue
            stem, ext = base.split(".", 1)
            member_key = os.path.join(os.path.dirname(info.name), stem)
            if member_key != key:
                key, members = member_key, {}
                samples.append((key, members))
            members[ext] = (info.offset_data, info.size)
    return samples


def count_samples(path: str) -> int:
    """Number of samples webdataset reads from the local tar at `path`."""
    try:
        return len(scan_tar(path))
    except tarfile.TarError as err:
        raise ValueError(f"shard {path!r} is not a readable tar ({err}); rebuild it or leave it out") from err
