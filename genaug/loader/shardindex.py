"""Resolve what the user points the loader at into a list of shard URLs (and sizes when known).

Accepted: an ``index.json`` (wids-shard-index-v1; relative urls resolve against its folder), a folder
(its ``index.json``, else its ``*.tar`` files in name order), a brace pattern
(``shards/shard-{0000..0099}.tar``, several joined with ``::``), a list of shard paths/URLs, or a list
of run folders / index.json files (several genaug runs trained on together).

Several runs: their shards are concatenated in the order given (index.json positions run on from one
run to the next). Two runs may hold the same sample keys (the same images built twice, e.g. with the
mask and the noise method), so each sample's key is prefixed with its run's path relative to the runs'
common folder (``runs/mask`` and ``runs/noise`` give ``mask/<key>`` and ``noise/<key>``): keys stay
unique, and the pair draws (seeded by the key) of the two copies differ. The same run listed twice is
refused. Each run's manifest.json is checked on its own (an unfinished run is warned about by name).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Sequence

from webdataset.shardlists import expand_urls

from genaug.format import INDEX, INDEX_KIND, index_urls, is_index_document, is_remote
from genaug.runstatus import read_build_status, unstarted_build

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ShardIndex:
    urls: tuple[str, ...]  # shard paths or URLs, in index order
    nsamples: tuple[int, ...] | None  # samples per shard (from index.json), None when unknown
    name: str  # the index's name, or a description of the source
    filesizes: tuple[int | None, ...] | None = None  # bytes per shard (index.json), None when unknown
    md5sums: tuple[str | None, ...] | None = None  # md5 per shard (index.json), None when unknown
    key_prefixes: tuple[str, ...] | None = None  # per shard, prepended to sample keys (several runs)

    @property
    def total(self) -> int | None:
        return None if self.nsamples is None else sum(self.nsamples)

    def key_prefix(self) -> dict[str, str]:
        """{url: prefix} for the shards whose keys get a run prefix (empty for a single source)."""
        return {} if self.key_prefixes is None else dict(zip(self.urls, self.key_prefixes, strict=True))

def warn_if_unfinished(folder: Path) -> None:
    """Log a warning when the manifest.json in `folder` says its build did not complete: the shards
    are then only those finished so far. Not an error: training on part of a build can be intended."""
    status = read_build_status(folder)
    if status is not None and not status.finished:
        log.warning("%s: %s. Loading only the %d finished shard(s).", folder, status.problem(), status.shards_done)


def _empty_folder_message(folder: str) -> str:
    status = unstarted_build(folder)
    if status is None:
        return f"folder {folder!r} has neither index.json nor *.tar shards"
    return (f"folder {folder!r}: the genaug build in it has not finished any shard yet (manifest.json status "
            f"{status.status!r}: it was interrupted before its first shard, or is still running); rerun the "
            "same genaug build command to resume it, then load the folder")


def read_index(path: str | os.PathLike) -> ShardIndex:
    """Read a wids-shard-index-v1 file; relative shard urls are resolved against its folder."""
    path = Path(path)
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"index file {str(path)!r} does not exist; pass the --out folder of "
                                "`genaug build` or its index.json") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); is it a genaug index.json?") from err
    if not is_index_document(index):
        raise ValueError(f"{str(path)!r} is not a {INDEX_KIND} file (missing __kind__ or shardlist)")
    urls = index_urls(index, path.parent)
    entries = index["shardlist"]
    sizes = [int(entry["nsamples"]) for entry in entries]
    filesizes = [int(entry["filesize"]) if entry.get("filesize") is not None else None for entry in entries]
    md5s = [str(entry["md5sum"]) if entry.get("md5sum") else None for entry in entries]
    if not urls:
        raise ValueError(f"{str(path)!r} lists no shards")
    warn_if_unfinished(path.parent)
    return ShardIndex(tuple(urls), tuple(sizes), str(index.get("name", path.parent.name)), tuple(filesizes),
                      tuple(md5s))


def _is_run(item: str) -> bool:
    return item.endswith(".json") or os.path.isdir(item)


def _run_prefixes(items: Sequence[str]) -> list[str]:
    """Each run's folder relative to the runs' common folder: unique for distinct folders."""
    folders = [os.path.realpath(os.path.dirname(i) if i.endswith(".json") else i) for i in items]
    for position, folder in enumerate(folders):
        if folder in folders[:position]:
            raise ValueError(f"run {items[position]!r} is listed twice (as {items[folders.index(folder)]!r}); "
                             "list each run once")
    common = os.path.commonpath(folders)
    return [os.path.relpath(f, common) for f in folders]  # "." for a run that holds the others


def resolve_runs(items: Sequence[str]) -> ShardIndex:
    """Several run folders or index files as one :class:`ShardIndex`, keys prefixed per run."""
    parts = [resolve_shards(item) for item in items]
    prefixes, urls = _run_prefixes(items), [u for part in parts for u in part.urls]
    if len(set(urls)) != len(urls):
        raise ValueError("two of the runs list the same shard file; list each run once")
    known = all(p.nsamples is not None for p in parts)

    def joined(field):
        return tuple(v for p in parts for v in (getattr(p, field) or (None,) * len(p.urls))) if known else None

    return ShardIndex(tuple(urls), joined("nsamples"), " + ".join(p.name for p in parts),
                      joined("filesizes"), joined("md5sums"),
                      tuple(f"{prefix}/" for p, prefix in zip(parts, prefixes, strict=True) for _ in p.urls))


def resolve_shards(source: str | os.PathLike | Sequence[str]) -> ShardIndex:
    """Turn a path, folder, brace pattern or list into a :class:`ShardIndex` (validated, non-empty)."""
    if isinstance(source, (list, tuple)):
        items = [os.fspath(u) for u in source]
        runs = [_is_run(i) for i in items]
        if items and all(runs):
            return resolve_runs(items) if len(items) > 1 else resolve_shards(items[0])
        if any(runs):
            raise ValueError(f"{items[runs.index(True)]!r} is a run folder or index file but other items of the "
                             "list are shard files; pass either a list of runs or a list of .tar shards")
        urls = items
        name = f"{len(urls)} shards"
    else:
        text = os.fspath(source)
        if text.endswith(".json"):
            return read_index(text)
        if os.path.isdir(text):
            if os.path.exists(os.path.join(text, INDEX)):
                return read_index(os.path.join(text, INDEX))
            urls = sorted(str(p) for p in Path(text).glob("*.tar"))
            if not urls:
                raise FileNotFoundError(_empty_folder_message(text))
            log.info("no index.json in %s: using its %d .tar files (length unknown)", text, len(urls))
            warn_if_unfinished(Path(text))
        else:
            urls = expand_urls(text)
        name = text
    if not urls:
        raise ValueError(f"no shards in {source!r}")
    missing = [u for u in urls if not is_remote(u) and not os.path.exists(u)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} shard(s) not found, first: {missing[0]!r}; check the "
                                "path or brace pattern (e.g. shards/shard-{0000..0009}.tar)")
    return ShardIndex(tuple(urls), None, name)
