"""Read genaug run folders for the report: shards in order, manifest, per-shard stats, decoded pairs.

A pair is (real, aug) where real is the model's view of the real image: decoded, EXIF-transposed,
cropped to the json ``crop_box`` and resized to the aug image's size (``genaug.contact_sheet.real_view``,
the same preprocessing as the model input).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tarfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from genaug.contact_sheet import real_view
from genaug.format import AUG_MEMBERS, JSON, MANIFEST, REAL, find_shards, iter_tar_samples, shard_order

log = logging.getLogger(__name__)

_PAIR_ERRORS = (OSError, SyntaxError, EOFError, ValueError, KeyError, TypeError, UnidentifiedImageError)


class ReportInputError(ValueError):
    """The report's inputs cannot be used; the message names the path and what to do."""


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """One build output folder (or a subset of its shards)."""

    path: Path  # folder holding the shards
    shards: tuple[Path, ...]  # tar files, in shard order
    manifest: dict  # manifest.json ({} when absent)
    stats: tuple[dict, ...]  # shard-XXXX.json stats of these shards, where present
    recorded: Mapping[str, int] = dataclasses.field(default_factory=dict)  # shard name -> stats nsamples

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)


@dataclasses.dataclass
class Pair:
    key: str
    shard: str  # shard file name
    meta: dict  # the sample's json
    real: np.ndarray  # (H, W, 3) uint8, model view of the real image at the aug size
    aug: np.ndarray  # (H, W, 3) uint8


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.warning("%s: unreadable, ignored (%s)", path, err)
        return {}
    return document if isinstance(document, dict) else {}


def discover(paths: Sequence[str | Path]) -> list[RunFolder]:
    """Group the given folders / tar files into run folders; raise ReportInputError on bad paths."""
    if not paths:
        raise ReportInputError("no shards given: pass a build output folder or shard .tar files")
    by_folder: dict[Path, list[Path]] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            tars = find_shards(path)
            if not tars:
                raise ReportInputError(f"{path}: no .tar shards in this folder; pass a genaug build --out folder")
            by_folder.setdefault(path, []).extend(tars)
        elif path.is_file() and path.suffix == ".tar":
            by_folder.setdefault(path.parent, []).append(path)
        else:
            raise ReportInputError(f"{path}: not a folder or .tar shard (does it exist?)")
    runs = []
    for folder, tars in by_folder.items():
        shards = tuple(sorted(set(tars), key=shard_order))
        by_shard = {t.name: _read_json(t.with_suffix(".json")) for t in shards}
        stats = tuple(s for s in by_shard.values() if s)
        recorded = {name: s["nsamples"] for name, s in by_shard.items()
                    if isinstance(s.get("nsamples"), int) and not isinstance(s["nsamples"], bool)}
        runs.append(RunFolder(folder, shards, _read_json(folder / MANIFEST), stats, recorded))
    return runs


def _decode_pair(key: str, fields: dict[str, bytes]) -> tuple[dict, np.ndarray, np.ndarray]:
    """(meta, real, aug) or ValueError/OSError with the reason."""
    aug_field = next((f for f in AUG_MEMBERS if f in fields), None)
    missing = [name for name, ok in (("aug", aug_field), (REAL, REAL in fields),
                                      ("json", JSON in fields)) if not ok]
    if missing:
        raise ValueError(f"incomplete sample: no {', '.join(missing)}")
    meta = json.loads(fields[JSON])
    with Image.open(io.BytesIO(fields[aug_field])) as raw:
        aug = raw.convert("RGB")
    real = real_view(fields[REAL], meta, aug.size)
    return meta, np.array(real, dtype=np.uint8), np.array(aug, dtype=np.uint8)  # writable copies


def _is_whole(fields: dict[str, bytes]) -> bool:
    return REAL in fields and JSON in fields and any(f in fields for f in AUG_MEMBERS)


def _shard_problem(shard: Path, reason: str, errors: list[dict], warn: bool) -> None:
    if warn:
        log.warning("%s: %s", shard.name, reason)
    errors.append({"key": None, "shard": shard.name, "reason": reason})


def _shard_samples(shard: Path, expected: int | None, errors: list[dict],
                   warn: bool = True) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The samples of `shard` up to where it stops being readable. A truncated or damaged tar is
    recorded in `errors` as {key: None, shard, reason}; so is a tar read to its end that holds fewer
    samples than `expected` (its stats file's nsamples): a shard cut exactly at a member boundary
    looks like a clean end of archive to tarfile. A trailing incomplete sample (what such a cut
    leaves) does not count as read. Nothing is checked when the caller stops early."""
    read, last_whole = 0, True
    try:
        for key, fields in iter_tar_samples(str(shard)):
            read, last_whole = read + 1, _is_whole(fields)
            yield key, fields
    except (tarfile.TarError, OSError) as err:
        _shard_problem(shard, f"unreadable shard ({type(err).__name__}: {err}); the rest of it was left out; "
                       "check it with `genaug inspect --verify`, or rerun the build to rewrite it", errors, warn)
        return
    whole = read - (not last_whole)
    if expected is not None and whole < expected:
        _shard_problem(shard, f"read {whole} of {expected} samples recorded in its stats file; the shard is "
                       "damaged — rerun the build or genaug inspect --verify", errors, warn)


def iter_pairs(run: RunFolder, errors: list[dict], limit: int | None = None,
               keys: set[str] | None = None, warn: bool = True) -> Iterator[Pair]:
    """Decoded pairs of `run` in shard order (at most `limit`; only `keys` if given).

    Samples that cannot be decoded are skipped and recorded in `errors` as {key, shard, reason}; a
    shard that stops being readable, or that holds fewer samples than its stats file records, is
    recorded once, with key None (the rest of it is skipped). warn=False: record without logging
    (for a second pass over shards already read and reported).
    """
    count = 0
    for shard in run.shards:
        for key, fields in _shard_samples(shard, run.recorded.get(shard.name), errors, warn):
            if (limit is not None and count >= limit) or (keys is not None and count >= len(keys)):
                return
            if keys is not None and key not in keys:
                continue
            try:
                meta, real, aug = _decode_pair(key, fields)
            except _PAIR_ERRORS as err:
                reason = f"{type(err).__name__}: {err}"
                if warn:
                    log.warning("%s [%s]: left out of the report: %s", shard.name, key, reason)
                errors.append({"key": key, "shard": shard.name, "reason": reason})
                continue
            count += 1
            yield Pair(key, shard.name, meta, real, aug)
