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
from genaug.limits import read_file_capped, regular_file_problem

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
    source_rel: str | None = None  # `source` relative to --data (see Source.relative)
    source_meta: dict | None = None  # input-side text/JSON fields of a shard sample (see ShardSource)


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


def entry_kind(entry: os.DirEntry) -> tuple[str, str | None]:
    """("dir" | "file" | "other" | "error", reason) of a folder entry, following symlinks; never raises.

    "error": the entry cannot be stat'ed (a symlink loop, a dangling link, permission denied), with the
    reason; "other": not a regular file (FIFO, socket, device), with the reason; reading such an entry
    could block or never end, so it is recorded instead of read."""
    try:
        if entry.is_dir():
            return "dir", None
        mode = entry.stat().st_mode
    except OSError as err:
        if entry.is_symlink() and isinstance(err, FileNotFoundError):
            return "error", f"broken symlink (its target {_link_target(entry.path)} does not exist)"
        return "error", f"cannot stat: {err.strerror or err}"
    problem = regular_file_problem(mode)
    return ("file", None) if problem is None else ("other", problem)


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"


def walk_images(root: str, rel: str = "", seen: tuple = ()) -> Iterator[tuple[str, str, str | None]]:
    """(relative posix path, absolute path, None) of every image below `root`, depth first, each
    folder's entries sorted by name; symlinked folders are followed once (loops are cut). An entry named
    like an image that cannot be stat'ed or is not a regular file, and a subfolder that cannot be listed,
    give (its relative path, its path, the reason) and the walk goes on; an unreadable `root` raises OSError."""
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
        yield rel, folder, "symlink loop: the folder links back to one being walked (not followed again)"
        return
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        kind, reason = entry_kind(entry)
        if kind == "dir":
            yield from walk_images(root, child, seen + (ident,))
        elif is_image_name(entry.name):
            yield child, entry.path, reason  # reason None: a regular file, read in a worker
        elif kind == "error":  # any name: it may be a folder (e.g. a symlinked folder that loops)
            log.warning("cannot stat %s (%s); it is recorded as a skipped input", entry.path, reason)
            yield child, entry.path, reason


class Source:
    """Base class: subclasses set description/kind/labelled and implement _records()."""

    description: str  # one line for logs and the manifest
    kind: str  # "imagenet-folder" | "image-folder" | "file-list" | "shards" | "samples"
    labelled: bool  # True when items carry labels

    root: str  # what relative sources are relative to (the folder, or the list file's folder)

    def _records(self) -> Iterator[tuple]:
        """(key, source, label, wnid, data) per item, plus an error text as a 6th field for an item
        that stands for a problem of the source itself (recorded in errors.jsonl, never edited; None for
        others) and the item's source_meta as an optional 7th."""
        raise NotImplementedError

    def class_index(self, label: int | None, wnid: str | None) -> int | None:
        """ImageNet-1k class index of an item: by default its numeric label taken as one (0..999)."""
        return as_imagenet1k_index(label)

    def relative(self, source: str) -> str:
        """`source` relative to --data: the path below the folder (or, for a list, its list file's folder),
        posix-style."""
        return Path(os.path.relpath(source, self.root)).as_posix()

    def __iter__(self) -> Iterator[SourceItem]:
        for index, (key, source, label, wnid, data, *extra) in enumerate(self._records()):
            yield SourceItem(index=index, key=key, source=source, label=label, wnid=wnid, data=data,
                             class_index=self.class_index(label, wnid), error=extra[0] if extra else None,
                             source_rel=self.relative(source), source_meta=extra[1] if len(extra) > 1 else None)

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
                kind, reason = entry_kind(entry)
                if kind == "dir":
                    for rel, path, error in walk_images(class_dir, entry.name):
                        yield path_key(f"{wnid}/{rel}"), path, label, wnid, None, error
                elif is_image_name(entry.name) or kind == "error":
                    stem = os.path.splitext(entry.name)[0]
                    plain = stems[stem] == 1 and CLEAN_KEY.fullmatch(stem) and stem.startswith(f"{wnid}_")
                    key = stem if plain else path_key(f"{wnid}/{entry.name}")
                    yield key, entry.path, label, wnid, None, reason


def imagenet_classes(root: Path) -> list[str] | None:
    """Sorted class folder names if `root` looks like ImageNet-style class folders, else None.

    Rule: `root` holds no image files itself, has at least one (non-hidden) subfolder, and every
    subfolder directly holds at least one image file. Entries named like images that cannot be stat'ed
    or are not regular files count as image files; a subfolder that cannot be listed counts as a class
    (so labels do not depend on permissions; its items are recorded as errors by the build)."""
    classes = []
    for entry in _sorted_entries(str(root)):
        kind, _ = entry_kind(entry)
        if kind != "dir":
            if is_image_name(entry.name):
                return None
            continue
        try:
            with os.scandir(entry.path) as it:
                if not any(is_image_name(e.name) and entry_kind(e)[0] != "dir" for e in it):
                    return None
        except OSError as err:
            log.warning("cannot list %s (%s); taken as a class folder", entry.path, err.strerror or err)
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
        data = read_file_capped(item.source)
    except FileNotFoundError as err:
        if os.path.islink(item.source):
            raise BadInput(f"broken symlink (its target {_link_target(item.source)} does not exist)") from err
        raise BadInput(f"cannot read file: {err.strerror or err}") from err
    except OSError as err:
        raise BadInput(f"cannot read file: {err.strerror or err}") from err
    except ValueError as err:  # not a regular file, or over the member size limit (genaug.limits)
        raise BadInput(str(err)) from err
    if not data:
        raise BadInput("zero-byte file")
    return data
