"""The shard contract in code: member and field names, file names, the index document, and the readers
every part of genaug shares (docs/contracts.md describes the same; tests/test_format.py keeps them equal).

The build writes with these names, the loader, ``genaug inspect``, ``genaug report`` and the contact
sheet read with them; nothing else declares them. No torch, no PIL: importing this module is cheap.
"""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

from genaug import limits

# ---- members of one sample ------------------------------------------------------------------------
REAL = "real.jpg"  # the real image (original bytes when an RGB JPEG)
JSON = "json"  # the sample's metadata
CLS = "cls"  # ASCII integer label, only when labelled
AUG_FORMATS = ("jpg", "png", "webp")  # encodings of the augmented image (--aug-format)
AUG_MEMBERS = tuple(f"aug.{fmt}" for fmt in AUG_FORMATS)  # members that may hold the generative image


def aug_member(aug_format: str) -> str:
    """``"aug.jpg"`` for ``--aug-format jpg``."""
    if aug_format not in AUG_FORMATS:
        raise ValueError(f"aug format {aug_format!r}: choose one of {list(AUG_FORMATS)}")
    return f"aug.{aug_format}"


def find_aug(fields: Iterable[str]) -> str | None:
    """The aug member among a sample's `fields`, or None."""
    present = set(fields)
    return next((name for name in AUG_MEMBERS if name in present), None)


# fields of each sample's json (all required; "scores" is added only with --scores)
JSON_FIELDS = ("key", "source", "source_rel", "label", "wnid", "class_index", "orig_size", "orig_mode",
               "orig_format", "exif_transposed", "crop_box", "resolution", "resample", "method", "preset",
               "weights_sha256", "seed", "run_seed", "edit", "genaug_version")
OPTIONAL_JSON_FIELDS = ("scores", "source_meta")  # scores: only with --scores; source_meta: only when kept
LATER_JSON_FIELDS = ("source_rel",)  # written since resume-fingerprint version 4: older shards lack them

# ---- run folder files ------------------------------------------------------------------------------
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
INDEX = "index.json"
INDEX_KIND = "wids-shard-index-v1"
ERROR_FIELDS = ("key", "path", "reason", "shard")  # one errors.jsonl line
STATS_FIELDS = ("shard", "nsamples", "nerrors", "ninputs", "filesize", "md5sum", "sha256", "config_fingerprint",
                "batch_size", "num_workers", "device", "device_name", "timings_s", "images_per_s", "errors")
STAGES = ("read_decode", "model", "encode", "write")  # stats timings_s keys besides "wall" (and "scores")
TMP_SUFFIX = ".tmp"  # a file being written: ".shard-0000.tar.tmp"
SPOOL_SUFFIX = ".spool"  # member payloads of a shard being filled: ".shard-0000.tar.spool"

_SHARD_FILE = re.compile(r"^shard-(\d{4,})\.(tar|json)$")
_NUMBER = re.compile(r"(\d+)")


def shard_name(index: int) -> str:
    """``shard-0000.tar`` for chunk 0; the number grows past 9999 (``shard-10000.tar``)."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard-{index:04d}.tar"


def stats_name(index: int) -> str:
    """``shard-0000.json``: the stats file, the shard's done-marker."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard-{index:04d}.json"


def parse_shard_file(name: str) -> tuple[int, str] | None:
    """``"shard-0012.json"`` -> ``(12, "json")``; None for any other name."""
    match = _SHARD_FILE.match(name)
    return (int(match.group(1)), match.group(2)) if match else None


def is_stats_file(name: str) -> bool:
    parsed = parse_shard_file(name)
    return parsed is not None and parsed[1] == "json"


def shard_number(path: str | Path) -> int | None:
    """The number of a shard file (the last run of digits in its stem: ``shard-0012.tar`` -> 12)."""
    numbers = _NUMBER.findall(Path(path).name.split(".", 1)[0])
    return int(numbers[-1]) if numbers else None


def shard_order(path: Path) -> tuple[int, str]:
    """Sort key of shard files: by number, then name."""
    number = shard_number(path)
    return (-1 if number is None else number, Path(path).name)


def find_shards(folder: Path) -> list[Path]:
    """The shards of a run folder in order: its ``shard-*.tar``, else any ``*.tar``; [] when none."""
    folder = Path(folder)
    return sorted(folder.glob("shard-*.tar"), key=shard_order) or sorted(folder.glob("*.tar"), key=shard_order)


# ---- index.json --------------------------------------------------------------------------------------
def index_document(name: str, shards: Iterable[dict]) -> dict:
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


def is_index_document(document: Any) -> bool:
    return isinstance(document, dict) and document.get("__kind__") == INDEX_KIND and "shardlist" in document


def index_urls(document: dict, base: Path) -> list[str]:
    """The shard urls of an index document; relative ones resolved against `base` (the index's folder)."""
    urls = []
    for entry in document["shardlist"]:
        url = str(entry["url"])
        urls.append(url if is_remote(url) or os.path.isabs(url) else str(Path(base) / url))
    return urls


# ---- urls and tar members ------------------------------------------------------------------------------
def is_remote(url: str) -> bool:
    """A URL that webdataset opens (``scheme://...`` or ``pipe:...``), not a local path."""
    return "://" in url or url.startswith("pipe:")


def split_member(name: str) -> tuple[str, str] | None:
    """A tar member name -> (sample key, field), as WebDataset groups members: key = path up to the first
    '.' of the file name, field = the rest; None for names without a field (or hidden files)."""
    folder, _, base = name.rpartition("/")
    if "." not in base or base.startswith("."):
        return None
    stem, field = base.split(".", 1)
    return (f"{folder}/{stem}" if folder else stem), field


def group_members(members: Iterable[tuple[str, Any]], lower: bool = True,
                  load: Callable[[Any], Any] | None = None) -> Iterator[tuple[str, dict]]:
    """(key, {field: value}) per sample from (member name, value) pairs in tar order: consecutive
    members with the same key form one sample (`lower`: field names in lower case). `load`: turns a
    value into the stored one, called only after the previous sample was handed out (so a member that
    cannot be read loses no complete sample before it)."""
    key, fields = None, {}
    for name, value in members:
        split = split_member(name)
        if split is None:
            continue
        member_key, field = split
        if member_key != key and key is not None:
            yield key, fields
            fields = {}
        key = member_key
        fields[field.lower() if lower else field] = value if load is None else load(value)
    if key is not None:
        yield key, fields


class SampleFields(dict):
    """{field: bytes} of one tar sample; ``oversized`` maps the fields that were not read because their
    member is over the size limit (genaug.limits.MAX_MEMBER_BYTES) to the reason."""

    def __init__(self) -> None:
        super().__init__()
        self.oversized: dict[str, str] = {}


class _NotRead(str):
    """The reason a member was not read (in place of its bytes, until the sample is handed out)."""


def iter_tar_stream(fileobj: IO[bytes], max_member_bytes: int | None = None) -> Iterator[tuple[str, SampleFields]]:
    """(key, {field: bytes}) per sample of a tar read sequentially from `fileobj`. A member over
    `max_member_bytes` (default genaug.limits.MAX_MEMBER_BYTES) is not read (the stream skips its data in
    small blocks, so memory does not follow it): it is named in ``fields.oversized`` instead."""
    limit = limits.MAX_MEMBER_BYTES if max_member_bytes is None else max_member_bytes

    def load(member: tarfile.TarInfo) -> bytes | _NotRead:
        too_big = limits.oversize_reason(member.size, f"tar member {member.name}", limit)
        return _NotRead(too_big) if too_big is not None else tar.extractfile(member).read()

    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        members = ((m.name, m) for m in tar if m.isfile())
        for key, fields in group_members(members, load=load):
            sample = SampleFields()
            for field, value in fields.items():
                if isinstance(value, _NotRead):
                    sample.oversized[field] = str(value)
                else:
                    sample[field] = value
            yield key, sample


def iter_tar_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) per sample of the tar at `url` (a path or a webdataset.gopen URL)."""
    if is_remote(url):
        import webdataset  # lazily: it imports torch, which decode workers do not need

        stream = webdataset.gopen(url, "rb")
    else:
        stream = open(url, "rb")
    with stream:
        yield from iter_tar_stream(stream)


def expand_paths(paths: Sequence[str]) -> list[str]:
    """Brace-expand each given path or pattern, in order."""
    import braceexpand

    return [item for given in paths for item in braceexpand.braceexpand(str(given))]
