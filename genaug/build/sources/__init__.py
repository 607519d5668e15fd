"""Input sources: where the images of a build come from, in a deterministic streaming order.

``open_source(data)`` picks the kind from what `data` is (rules in docs/inputs-and-inspect.md):

* ``None``: ``$GENAUG_DATA`` if set, else the photos bundled in ``genaug/samples`` (logged);
* a brace pattern (``x-{0000..0099}.tar``), a URL, a ``.tar`` file, or a list of them: WebDataset
  shards (``jpg``/``jpeg``/``png``/``webp`` image field, optional ``cls`` label);
* a directory that holds no images itself and whose every subfolder directly holds images:
  ImageNet-style class folders (label = index of the folder name in sorted order);
* any other directory: all images below it, recursively, unlabelled;
* a ``.json`` file: a wids shard index (its ``shardlist`` urls, relative to its folder; genaug.build.sources.shards);
* any other file: a text/CSV list of ``path[,label]`` lines (genaug.build.sources.filelist).

Each item also carries ``class_index``, its ImageNet-1k class index (what class-conditional editors
are given): the index of the folder's wnid among the 1000 ImageNet-1k wnids for class folders, the
numeric label itself for file lists and shards, None when unknown or outside 0..999.

Iteration streams: directories are listed one at a time (os.scandir, sorted by name), list files
and tars are read line by line / member by member, so memory does not grow with the dataset size.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path
from typing import Sequence

import braceexpand

from genaug.build.sources.base import (
    ENV_DATA,
    SHARD_SUFFIXES,
    ImageFolderSource,
    ImageNetFolderSource,
    Source,
    SourceError,
    SourceItem,
    imagenet_classes,
    is_image_name,
    read_item_bytes,
)
from genaug.build.sources.filelist import FileListSource
from genaug.build.sources.shards import ShardSource, read_wids_index
from genaug.format import is_remote

log = logging.getLogger(__name__)

__all__ = ["Source", "SourceError", "SourceItem", "open_source", "read_item_bytes", "expand_shards",
           "looks_like_shards", "bundled_samples_dir"]


def expand_shards(data: str | Sequence[str]) -> list[str]:
    """Brace-expand each pattern; keep the given order."""
    items = [data] if isinstance(data, str) else list(data)
    return [url for item in items for url in braceexpand.braceexpand(item)]


def looks_like_shards(value: str) -> bool:
    return ("{" in value and ".." in value) or is_remote(value) or value.lower().endswith(SHARD_SUFFIXES)


def bundled_samples_dir() -> Path:
    return Path(str(resources.files("genaug") / "samples"))


def open_source(data: str | Sequence[str] | None, kind: str | None = None) -> Source:
    """Open a --data value (see module doc). `kind` = "image-folder" forces an unlabelled recursive
    walk of a folder that would otherwise be taken as class folders. SourceError messages name the
    value as given (``--data X``, or ``$GENAUG_DATA=X`` when it came from the environment)."""
    if kind not in (None, "image-folder"):
        raise SourceError(f"source kind {kind!r}: only 'image-folder' can be forced (or leave it unset)")
    if data is None or (not isinstance(data, str) and len(data) == 0):
        env = os.environ.get(ENV_DATA, "").strip()
        if env:
            log.info("--data not given: using $%s = %s", ENV_DATA, env)
            return _open_one(env, kind, f"${ENV_DATA}={env}")
        samples = bundled_samples_dir()
        log.info("--data not given and $%s unset: using the bundled sample photos in %s", ENV_DATA, samples)
        return ImageFolderSource(samples, kind="samples")
    if isinstance(data, str):
        return _open_one(data, kind, f"--data {data}")
    values = [str(v) for v in data]
    if len(values) == 1:
        return _open_one(values[0], kind, f"--data {values[0]}")
    bad = [v for v in values if not looks_like_shards(v)]
    if bad:
        raise SourceError(f"--data {bad[0]}: several --data values must all be shards (.tar files or "
                          "brace patterns); give a single folder or file list instead")
    return ShardSource(expand_shards(values), named="--data")


def _open_one(data: str, kind: str | None, named: str) -> Source:
    value = os.path.expanduser(data)
    if looks_like_shards(value):
        return ShardSource(expand_shards(value), named=named)
    path = Path(value)
    if not path.exists():
        raise SourceError(f"{named}: no such file or folder; give an image folder, ImageNet-style "
                          "class folders, a path[,label] list file, a wids index.json, or WebDataset shards")
    if path.is_dir():
        try:
            classes = None if kind == "image-folder" else imagenet_classes(path)
            return ImageNetFolderSource(path, classes) if classes else ImageFolderSource(path, named=named)
        except OSError as err:
            raise SourceError(f"{named}: cannot read the folder {err.filename or path} ({err.strerror or err}); "
                              "check its permissions") from err
    if is_image_name(path.name):
        raise SourceError(f"{named}: is a single image; give the folder holding it, or a list file")
    if path.suffix.lower() == ".json":
        return ShardSource(read_wids_index(path, named), named=named)
    return FileListSource(path, named=named)
