"""One shard's whole life: samples in, deterministic tar, atomic rename, stats file (the done-marker),
and the check that a shard on disk is done.

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
import tarfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Mapping

from genaug.format import SPOOL_SUFFIX, STAGES, TMP_SUFFIX, shard_name, stats_name

log = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20


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

    def close(self, sync_dir: bool = True) -> ShardInfo:
        """Write the sorted tar under a temporary name, fsync it and rename it into place; `sync_dir`:
        fsync the folder too (a caller that writes another file there right after may do it once)."""
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
            if sync_dir:
                fsync_dir(self.out_dir)
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


def write_json_atomic(path: Path, document: object, tag: str = "") -> None:
    """Write JSON (sorted keys, trailing newline) under a temporary name and rename it into place.
    `tag` makes the temporary name unique when several processes may write `path` at once."""
    write_text_atomic(path, json.dumps(document, indent=1, sort_keys=True) + "\n", tag=tag)


def write_text_atomic(path: Path, text: str, tag: str = "") -> None:
    """Write `text` under a temporary name, fsync it, rename it into place and fsync the folder (so the
    rename survives a power loss); on any error the temporary file is removed and the error raised."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{tag}{TMP_SUFFIX}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """fsync a folder, making the renames in it durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable %s: %s", path, err)
        return None
    return value if isinstance(value, dict) else None


def done_stats(out: Path, index: int, fingerprint: str) -> dict | None:
    """The stats of shard `index` in `out` when it is done: its stats file (the done-marker) exists, was
    written by the same configuration, and its tar matches the recorded size and md5; else None."""
    stats = read_json(Path(out) / stats_name(index))
    tar = Path(out) / shard_name(index)
    if stats and stats.get("config_fingerprint") == fingerprint and tar.is_file():
        if file_digests(tar) == (stats.get("filesize"), stats.get("md5sum")):
            return stats
    return None


class ShardRun:
    """A shard being filled: its writer, skipped inputs and stage timings; `finish` closes the tar and
    writes the stats file. `facts`: the run's fields copied into every stats file (config_fingerprint,
    batch_size, num_workers, device, device_name)."""

    def __init__(self, out: Path, index: int, start: float, facts: Mapping[str, Any]) -> None:
        self.index = index
        self.out = Path(out)
        self._writer = ShardWriter(out, index)
        self.errors: list[dict] = []
        self.first_seen: dict[str, tuple[int, str]] = {}  # key -> (index, source) of its first input here
        self.timings = {stage: 0.0 for stage in STAGES}
        self.inputs = 0
        self._facts = dict(facts)
        self._start = start  # perf_counter() when this shard's wall time starts

    @property
    def name(self) -> str:
        return self._writer.path.name

    def unique(self, decoded):
        """`decoded`, or a skipped copy of it when an earlier input of this shard had the same key.
        (Only within a shard: a rebuilt shard then skips the same inputs on every run.)"""
        item = decoded.item
        index, source = self.first_seen.setdefault(item.key, (item.index, item.source))
        if index == item.index:
            return decoded
        return dataclasses.replace(decoded, prepared=None, reason=f"duplicate key, first seen in {source}")

    def add(self, key: str, members: Mapping[str, bytes]) -> None:
        """Add one sample's members (extension -> bytes)."""
        self._writer.add(key, members)

    def add_error(self, decoded) -> None:
        item = decoded.item
        log.debug("skipping %s (%s): %s", item.key, item.source, decoded.reason)
        self.errors.append({"key": item.key, "path": item.source, "reason": decoded.reason, "shard": self.index})

    def finish(self) -> dict:
        """Close the tar (atomic rename), then write the stats file (the done-marker); return the stats."""
        start = time.perf_counter()
        info = self._writer.close(sync_dir=False)  # the stats file's folder fsync covers the rename
        self.timings["write"] += time.perf_counter() - start
        wall = time.perf_counter() - self._start
        stats = {
            "shard": self.index,
            "nsamples": info.nsamples,
            "nerrors": len(self.errors),
            "ninputs": self.inputs,
            "filesize": info.filesize,
            "md5sum": info.md5sum,
            "sha256": info.sha256,
            **self._facts,
            "timings_s": {**{k: round(v, 6) for k, v in self.timings.items()}, "wall": round(wall, 6)},
            "images_per_s": round(self.inputs / wall, 3) if wall > 0 else None,
            "errors": self.errors,
        }
        write_json_atomic(self.out / stats_name(self.index), stats)
        return stats

    def abort(self) -> None:
        """Drop the shard being filled (temporary files removed; a finished tar is never touched)."""
        self._writer.abort()
