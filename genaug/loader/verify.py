"""Check shards against their index.json entries before any training step (in the main process).

``verify="size"`` (the default, a ``stat`` per shard): each local shard exists and has the index's
``filesize``; its sample count is then checked while it is read (a shard that ends early or runs on
raises :class:`~genaug.loader.tarread.ShardMismatchError`). A shard cut at a tar member boundary
changes its size, so it is refused here, before the first step. ``verify="md5"`` also hashes every
local shard and compares the index's ``md5sum`` (reads every byte once: a flipped bit anywhere is
found). ``verify="none"`` (or ``False``) checks nothing. Remote shards (http, pipe:, ...) are not
checked here; their sample counts still are, while they are read.

Any mismatch raises one error listing every bad shard (fail fast: a corrupt shard is never trained
on, and no rank ever runs a different number of steps from the others).
"""

from __future__ import annotations

import logging
import os

from genaug.format import is_remote
from genaug.hashing import file_digest
from genaug.loader.shardindex import ShardIndex
from genaug.loader.tarread import ShardMismatchError

log = logging.getLogger(__name__)

VERIFY_MODES = ("none", "size", "md5")


def verify_mode(verify) -> str:
    """Normalise the ``verify=`` argument: False/None -> 'none', True -> 'size'."""
    if verify is False or verify is None:
        return "none"
    if verify is True:
        return "size"
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify={verify!r}: choose 'size' (default: file sizes and sample counts against "
                         "index.json), 'md5' (also hash every shard) or 'none'")
    return verify


def file_md5(path: str) -> str:
    return file_digest(path, "md5")


def shard_problem(url: str, filesize: int | None, md5sum: str | None, mode: str) -> str | None:
    """Why a local shard disagrees with its index entry, or None."""
    try:
        size = os.path.getsize(url)
    except OSError as err:
        return f"{url}: cannot be read ({err.strerror or err})"
    if filesize is not None and size != filesize:
        return f"{url}: {size} bytes, index.json says {filesize} (truncated or replaced)"
    if mode == "md5" and md5sum is not None:
        actual = file_md5(url)
        if actual != md5sum:
            return f"{url}: md5 {actual}, index.json says {md5sum} (corrupted)"
    return None


def verify_shards(index: ShardIndex, verify="size") -> None:
    """Raise ShardMismatchError naming every local shard that fails the check (see the module doc)."""
    mode = verify_mode(verify)
    if mode == "none" or index.nsamples is None:
        return
    sizes = index.filesizes or (None,) * len(index.urls)
    md5s = index.md5sums or (None,) * len(index.urls)
    local = [(u, s, m) for u, s, m in zip(index.urls, sizes, md5s, strict=True) if not is_remote(u)]
    unchecked = sum(s is None for _, s, _ in local) if mode == "size" else sum(m is None for *_, m in local)
    if unchecked:
        log.info("%d shard(s) of %s have no %s in index.json: not checked", unchecked, index.name,
                 "filesize" if mode == "size" else "md5sum")
    problems = [p for p in (shard_problem(u, s, m, mode) for u, s, m in local) if p]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ShardMismatchError(
            f"{len(problems)} of {len(index.urls)} shard(s) do not match index.json (verify={mode!r}): "
            + "; ".join(problems[:5]) + more + ". Rebuild them (rerun the same genaug build command: "
            "it redoes shards whose stats do not match), or pass verify='none' to load them as they are")
