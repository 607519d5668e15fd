"""Deterministic WebDataset shard writing and the wids shard index.

A shard is a plain ustar tar whose members are sorted by name, with mtime 0, uid/gid 0 and
mode 0644, so the same samples always give byte-identical files. Samples are spooled to a
temporary file while the shard fills (memory stays flat whatever the shard size), then the
sorted tar is written under a temporary name and renamed into place. The stats file written
afterwards by the pipeline is the done-marker; temporary files never count as done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tarfile
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping

log = logging.getLogger(__name__)

INDEX_KIND = "wids-shard-index-v1"
TMP_SUFFIX = ".tmp"  # temporary tar being written: ".shard-0000.tar.tmp"
SPOOL_SUFFIX = ".spool"  # member payloads of a shard being filled: ".shard-0000.tar.spool"
_SHARD_RE = re.compile(r"^shard-(\d{4,})\.(tar|json)$")
_COPY_CHUNK = 1 << 20


def shard_name(index: int) -> str:
    """``shard-0000.tar`` for chunk 0; the number grows past 9999 (``shard-10000.tar``)."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard-{index:04d}.tar"


def stats_name(index: int) -> str:
    return f"shard-{index:04d}.json"


def parse_shard_file(name: str) -> tuple[int, str] | None:
    """``"shard-0012.json"`` -> ``(12, "json")``; None for any other name."""
    match = _SHARD_RE.match(name)
    return (int(match.group(1)), match.group(2)) if match else None


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """What the writer knows about a finished shard."""

    path: Path  # final location of the tar
    nsamples: int  # number of samples (keys) in the shard
    filesize: int  # bytes
    md5sum: str  # hex md5 of the whole tar (wids index)
    sha256: str  # hex sha256 of the whole tar


class _HashingFile:
    """Write-only file wrapper that hashes everything written (tarfile needs write and tell)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pos = 0
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.md5.update(data)
        self.sha256.update(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _check_key(key: str) -> None:
    if not key or "." in key or "/" in key:
        raise ValueError(f"sample key {key!r} is invalid: keys must be non-empty, without '.' or '/'")


class ShardWriter:
    """Collects samples of one shard, then writes the sorted tar atomically.

    Use as a context manager: leaving the block with an exception removes the temporary files.
    """

    def __init__(self, out_dir: Path, index: int) -> None:
        self.out_dir = Path(out_dir)
        self.index = index
        self.path = self.out_dir / shard_name(index)
        self._tmp = self.out_dir / f".{self.path.name}{TMP_SUFFIX}"
        self._spool_path = self.out_dir / f".{self.path.name}{SPOOL_SUFFIX}"
        self._spool: BinaryIO | None = open(self._spool_path, "wb")
        self._entries: dict[str, tuple[int, int]] = {}  # member name -> (offset, size) in the spool
        self._keys: set[str] = set()
        self._offset = 0

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    @property
    def nsamples(self) -> int:
        return len(self._keys)

    def add(self, key: str, members: Mapping[str, bytes]) -> None:
        """Add one sample: ``members`` maps an extension (``"real.jpg"``, ``"json"``) to its bytes."""
        if self._spool is None:
            raise RuntimeError(f"{self.path.name}: writer is already closed")
        _check_key(key)
        if key in self._keys:
            raise ValueError(f"{self.path.name}: duplicate sample key {key!r}")
        if not members:
            raise ValueError(f"{self.path.name}: sample {key!r} has no members")
        self._keys.add(key)
        for ext in sorted(members):
            data = members[ext]
            self._spool.write(data)
            self._entries[f"{key}.{ext}"] = (self._offset, len(data))
            self._offset += len(data)

    def close(self) -> ShardInfo:
        """Write the sorted tar under a temporary name, fsync it and rename it into place."""
        if self._spool is None:
            raise RuntimeError(f"{self.path.name}: writer is already closed")
        self._spool.close()
        self._spool = None
        try:
            with open(self._spool_path, "rb") as spool, open(self._tmp, "wb") as raw:
                hashed = _HashingFile(raw)
                with tarfile.open(fileobj=hashed, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                    for name in sorted(self._entries):
                        offset, size = self._entries[name]
                        spool.seek(offset)
                        tar.addfile(_tar_info(name, size), _LimitedReader(spool, size))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        finally:
            self._spool_path.unlink(missing_ok=True)
        return ShardInfo(
            path=self.path,
            nsamples=len(self._keys),
            filesize=hashed.tell(),
            md5sum=hashed.md5.hexdigest(),
            sha256=hashed.sha256.hexdigest(),
        )

    def abort(self) -> None:
        """Drop the shard: close and remove the temporary files (the final tar is never touched)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._spool_path.unlink(missing_ok=True)
        self._tmp.unlink(missing_ok=True)


class _LimitedReader:
    """Reads at most `size` bytes from a file at its current position (for tarfile.addfile)."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self._raw.read(n)
        self._left -= len(data)
        return data


def remove_temp_files(out_dir: Path) -> list[Path]:
    """Delete leftovers of an interrupted run (temporary tars and spools); return what was removed."""
    removed = []
    for path in sorted(Path(out_dir).glob(".*")):
        if path.is_file() and path.name.endswith((TMP_SUFFIX, SPOOL_SUFFIX)):
            path.unlink()
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) of an interrupted run in %s", len(removed), out_dir)
    return removed


def file_digests(path: Path) -> tuple[int, str]:
    """(size, md5 hex) of a file, read in chunks."""
    md5 = hashlib.md5()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            md5.update(chunk)
            size += len(chunk)
    return size, md5.hexdigest()


def index_document(name: str, shards: Iterable[Mapping]) -> dict:
    """The wids-shard-index-v1 document for shards given as stats dicts (``shard``, ``nsamples``,
    ``filesize``, ``md5sum``); urls are relative to the index file."""
    shardlist = [
        {
            "url": shard_name(int(s["shard"])),
            "nsamples": int(s["nsamples"]),
            "filesize": int(s["filesize"]),
            "md5sum": str(s["md5sum"]),
        }
        for s in sorted(shards, key=lambda s: int(s["shard"]))
    ]
    return {"__kind__": INDEX_KIND, "wids_version": 1, "name": name, "shardlist": shardlist}


def write_json_atomic(path: Path, document: object, tag: str = "") -> None:
    """Write JSON (sorted keys, trailing newline) under a temporary name and rename it into place.
    `tag` makes the temporary name unique when several processes may write `path` at once."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{tag}{TMP_SUFFIX}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
