"""Resolve what the user points the loader at into a list of shard URLs (and sizes when known).

Accepted: an ``index.json`` (wids-shard-index-v1; relative urls resolve against its folder), a folder
(its ``index.json``, else its ``*.tar`` files in name order), a brace pattern
(``shards/shard-{0000..0099}.tar``, several joined with ``::``), or a list of paths/URLs.
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

    @property
    def total(self) -> int | None:
        return None if self.nsamples is None else sum(self.nsamples)


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
    sizes = [int(entry["nsamples"]) for entry in index["shardlist"]]
    if not urls:
        raise ValueError(f"{str(path)!r} lists no shards")
    warn_if_unfinished(path.parent)
    return ShardIndex(tuple(urls), tuple(sizes), str(index.get("name", path.parent.name)))


def resolve_shards(source: str | os.PathLike | Sequence[str]) -> ShardIndex:
    """Turn a path, folder, brace pattern or list into a :class:`ShardIndex` (validated, non-empty)."""
    if isinstance(source, (list, tuple)):
        urls = [str(u) for u in source]
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
