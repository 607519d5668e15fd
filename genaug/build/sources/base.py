"""The common parts of input sources: `SourceItem`, the `Source` base, key rules, folder sources and
`read_item_bytes`. The kinds of --data and how one is picked are described in genaug/build/sources/__init__.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from genaug.build.preprocess import BadInput
from genaug.build.sources.imagenet import as_imagenet1k_index, imagenet1k_index

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff",
                            ".ppm", ".pgm", ".pbm", ".pnm"})  # file-name suffixes taken as images
# image fields of input shards, in preference order; "real.jpg" reads genaug's own output shards
SHARD_IMAGE_FIELDS = ("jpg", "jpeg", "png", "webp", "real.jpg")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
KEY_HASH_BYTES = 5  # 10 hex digits appended to slug keys
SLUG_MAX = 60  # characters of the path kept in a slug key (its tail)
CLEAN_KEY = re.compile(r"[A-Za-z0-9_-]{1,80}")
WNID_KEY = re.compile(r"(n\d{8})_[A-Za-z0-9_-]+")
LABEL = re.compile(r"\d+")  # a label in a list file or a cls field: a non-negative integer
ENV_DATA = "GENAUG_DATA"
SHARD_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)  # an input shard that breaks



class SourceError(ValueError):
    """A --data value that cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class SourceItem:
    index: int  # position in the deterministic order (0-based); chunk = index // shard_size
    key: str  # unique, deterministic, no '.' and no '/'
    source: str  # file path, or "<shard url>#<member key>" for shard sources
    label: int | None  # class index, None when the source is unlabelled
    wnid: str | None  # class folder name (ImageNet synset id) when known
    data: bytes | None  # bytes already in hand (shard sources); None -> read `source` in a worker
    class_index: int | None = None  # ImageNet-1k class index (0..999) when known (see module doc)
    error: str | None = None  # set: the item is a recorded problem of the source (e.g. a broken input shard)


def slug_key(text: str, hashed: str | None = None) -> str:
    """`text` made key-safe ([A-Za-z0-9_-], tail of at most SLUG_MAX chars) plus '-' and 10 hex digits
    of blake2b(`hashed` or `text`), so distinct inputs keep distinct keys even when slugs coincide."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[-SLUG_MAX:].lstrip("_-") or "x"
    raw = hashed if hashed is not None else text
    digest = hashlib.blake2b(os.fsencode(raw), digest_size=KEY_HASH_BYTES).hexdigest()
    return f"{slug}-{digest}"


def path_key(relpath: str) -> str:
    """Key of a file at `relpath` (posix, relative to the source root): slug of the path without
    its suffix, plus a hash of the full relative path (suffix included)."""
    return slug_key(strip_suffix(relpath), hashed=relpath)


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _sorted_entries(folder: str) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def walk_images(root: str, rel: str = "", seen: tuple = ()) -> Iterator[tuple[str, str, str | None]]:
    """(relative posix path, absolute path, None) of every image below `root`, depth first, each
    folder's entries sorted by name; symlinked folders are followed once (loops are cut). A subfolder
    that cannot be listed gives (its relative path, its path, the reason) and the walk goes on; an
    unreadable `root` raises OSError."""
    folder = os.path.join(root, rel) if rel else root
    try:
        stat = os.stat(folder)
        entries = _sorted_entries(folder)
    except OSError as err:
        if not rel:
            raise
        log.warning("cannot list %s (%s); it is recorded as a skipped input", folder, err.strerror or err)
        yield rel, folder, f"cannot list folder: {err.strerror or err}"
        return
    ident = (stat.st_dev, stat.st_ino)
    if ident in seen:
        log.warning("skipping %s: symlink loop", folder)
        return
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        if entry.is_dir():
            yield from walk_images(root, child, seen + (ident,))
        elif is_image_name(entry.name) and (entry.is_file() or _is_dangling(entry)):
            yield child, entry.path, None  # a dangling symlink too: reading it records "broken symlink"


def _is_dangling(entry: os.DirEntry) -> bool:
    return entry.is_symlink() and not os.path.exists(entry.path)


class Source:
    """Base class: subclasses set description/kind/labelled and implement _records()."""

    description: str  # one line for logs and the manifest
    kind: str  # "imagenet-folder" | "image-folder" | "file-list" | "shards" | "samples"
    labelled: bool  # True when items carry labels

    def _records(self) -> Iterator[tuple]:
        """(key, source, label, wnid, data) per item, plus an error text as a 6th field for an item
        that stands for a problem of the source itself (recorded in errors.jsonl, never edited)."""
        raise NotImplementedError

    def class_index(self, label: int | None, wnid: str | None) -> int | None:
        """ImageNet-1k class index of an item: by default its numeric label taken as one (0..999)."""
        return as_imagenet1k_index(label)

    def __iter__(self) -> Iterator[SourceItem]:
        for index, (key, source, label, wnid, data, *error) in enumerate(self._records()):
            yield SourceItem(index=index, key=key, source=source, label=label, wnid=wnid, data=data,
                             class_index=self.class_index(label, wnid), error=error[0] if error else None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class ImageFolderSource(Source):
    """Every image below a folder, recursively, unlabelled; key = path_key(relative path)."""

    def __init__(self, root: Path, kind: str = "image-folder", named: str | None = None):
        self.root = str(root)
        self.kind = kind
        self.labelled = False
        self.description = f"{'bundled sample photos' if kind == 'samples' else 'image folder'} {root}"
        if next(walk_images(self.root), None) is None:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise SourceError(f"{named or f'--data {root}'}: no image files ({suffixes}) found in it or its subfolders")

    def _records(self):
        for rel, path, error in walk_images(self.root):
            yield path_key(rel), path, None, None, None, error


class ImageNetFolderSource(Source):
    """root/<class>/<file>: label = position of <class> among the sorted class folder names;
    class_index = ImageNet-1k index of the folder name (a wnid), None when it is not one.

    Key: the file stem when it follows the ImageNet naming '<wnid>_<id>' (key-safe, unique in its
    folder), e.g. n01440764_10026; otherwise path_key(<class>/<relative path>)."""

    kind = "imagenet-folder"
    labelled = True

    def __init__(self, root: Path, classes: list[str]):
        self.root = str(root)
        self.classes = classes
        self.description = f"ImageNet-style class folders {root} ({len(classes)} classes)"

    def class_index(self, label: int | None, wnid: str | None) -> int | None:
        return imagenet1k_index(wnid)

    def non_imagenet_classes(self) -> list[str]:
        """Class folder names that are not ImageNet-1k wnids (their items have no class_index)."""
        return [name for name in self.classes if imagenet1k_index(name) is None]

    def _records(self):
        for label, wnid in enumerate(self.classes):
            class_dir = os.path.join(self.root, wnid)
            try:
                entries = _sorted_entries(class_dir)
            except OSError as err:  # readable when the build started (imagenet_classes listed it)
                yield path_key(wnid), class_dir, label, wnid, None, f"cannot list folder: {err.strerror or err}"
                continue
            stems: dict[str, int] = {}
            for entry in entries:
                stem = os.path.splitext(entry.name)[0]
                stems[stem] = stems.get(stem, 0) + 1
            for entry in entries:
                if entry.is_dir():
                    for rel, path, error in walk_images(class_dir, entry.name):
                        yield path_key(f"{wnid}/{rel}"), path, label, wnid, None, error
                elif is_image_name(entry.name) and (entry.is_file() or _is_dangling(entry)):
                    stem = os.path.splitext(entry.name)[0]
                    plain = stems[stem] == 1 and CLEAN_KEY.fullmatch(stem) and stem.startswith(f"{wnid}_")
                    yield (stem if plain else path_key(f"{wnid}/{entry.name}")), entry.path, label, wnid, None


def imagenet_classes(root: Path) -> list[str] | None:
    """Sorted class folder names if `root` looks like ImageNet-style class folders, else None.

    Rule: `root` holds no image files itself, has at least one (non-hidden) subfolder, and every
    subfolder directly holds at least one image file."""
    classes = []
    for entry in _sorted_entries(str(root)):
        if entry.is_file() and is_image_name(entry.name):
            return None
        if entry.is_dir():
            with os.scandir(entry.path) as it:
                if not any(e.is_file() and is_image_name(e.name) for e in it):
                    return None
            classes.append(entry.name)
    return classes or None


def strip_suffix(path: str) -> str:
    head, _, name = path.rpartition("/")
    return f"{head}/{name.rsplit('.', 1)[0]}" if "." in name else path


def read_item_bytes(item: SourceItem) -> bytes:
    """The encoded image of `item`: the bytes in hand, else the file's bytes; BadInput if unusable."""
    if item.data is not None:
        if not item.data:
            raise BadInput("shard sample has no image bytes (no non-empty jpg/jpeg/png/webp/real.jpg field)")
        return item.data
    if item.error is not None:
        raise BadInput(item.error)
    try:
        with open(item.source, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as err:
        if os.path.islink(item.source):
            raise BadInput(f"broken symlink (its target {os.readlink(item.source)} does not exist)") from err
        raise BadInput(f"cannot read file: {err.strerror or err}") from err
    except OSError as err:
        raise BadInput(f"cannot read file: {err.strerror or err}") from err
    if not data:
        raise BadInput("zero-byte file")
    return data
