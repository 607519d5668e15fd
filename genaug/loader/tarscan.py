"""Tar member tables of local shards, grouped into samples the way webdataset groups them
(``genaug.format.group_members``). Only headers are read (tarfile seeks over payloads)."""

from __future__ import annotations

import tarfile

from genaug.format import group_members

Member = tuple[int, int]  # (data offset in the tar, size in bytes)


def scan_tar(path: str) -> list[tuple[str, dict[str, Member]]]:
    """[(key, {extension: (offset, size)})] in tar order; key/extension split at the first '.' of the
    file name (the directory stays in the key), as webdataset groups members."""
    with tarfile.open(path, "r:") as tar:
        members = ((info.name, (info.offset_data, info.size)) for info in tar if info.isfile())
        return list(group_members(members, lower=False))


def count_samples(path: str) -> int:
    """Number of samples webdataset reads from the local tar at `path` (plain or compressed, as webdataset
    streams both)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            return sum(1 for _ in group_members(((info.name, None) for info in tar if info.isfile()), lower=False))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"shard {path!r} is not a readable tar ({err}); rebuild it or leave it out") from err
