"""`genaug inspect`: summarise and verify genaug shards (library part; genaug/cli/inspect.py prints).

``inspect_shards(paths, verify)`` returns a JSON-serialisable report: per shard the sample count,
member fields, methods/presets, image sizes, labels, scores, its stats file and recorded errors,
plus totals, each run folder's build status (manifest.json) and, with ``verify``, a list of problems
(every image decoded, every pair and json checked against docs/contracts.md, stats
nsamples/filesize/md5 compared with the tar, an unfinished build).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import statistics
import tarfile
from collections import Counter
from pathlib import Path
from typing import BinaryIO, Sequence

from PIL import Image, UnidentifiedImageError

from genaug.build.preprocess import exif_orientation
from genaug.format import (
    AUG_MEMBERS,
    CLS,
    JSON,
    JSON_FIELDS,
    LATER_JSON_FIELDS,
    REAL,
    expand_paths,
    find_shards,
    iter_tar_stream,
)
from genaug.runcheck import Measured, check_run, run_folders
from genaug.runerrors import errors_for, load_run_errors, reason_kind
from genaug.runstatus import BuildStatus, read_build_status, unstarted_build

log = logging.getLogger(__name__)

_IMAGE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError)


class InspectError(ValueError):
    """A path given to inspect that cannot be used; the message names it."""


def resolve_shards(paths: Sequence[str]) -> list[Path]:
    """Shard files from files, folders (their shard-*.tar, else *.tar, in order) and brace patterns.
    A folder of a build interrupted before its first shard gives none (inspect_shards reports it)."""
    found: list[Path] = []
    for item, path in _expand(paths):
        if path.is_dir():
            tars = find_shards(path)
            if not tars and unstarted_build(path) is None:
                raise InspectError(f"{item}: folder holds no .tar shards")
            found.extend(tars)
        elif path.is_file():
            found.append(path)
        else:
            raise InspectError(f"{item}: no such shard file or folder")
    return found


def _expand(paths: Sequence[str]) -> list[tuple[str, Path]]:
    return [(item, Path(item).expanduser()) for item in expand_paths(paths)]


class _HashingReader:
    """Read-only wrapper that hashes everything read, so one pass both parses and checksums."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class ShardSummary:
    """Aggregates of one shard, filled sample by sample (memory: counters and score lists only)."""

    def __init__(self, path: Path, verify: bool) -> None:
        self.path, self.verify = path, verify
        self.nsamples = 0
        self.fields: Counter = Counter()
        self.methods: Counter = Counter()
        self.presets: Counter = Counter()
        self.aug_sizes: Counter = Counter()
        self.orig_short_sides: list[int] = []
        self.labels: Counter = Counter()
        self.scores: dict[str, list[float]] = {}
        self.problems: list[str] = []
        self.genaug_samples = 0  # samples with a json or aug member (genaug output)
        self._keys: set[str] = set()
        self._sample_problem: list[bool] = []  # per entry of problems: about one sample?

    @property
    def is_genaug(self) -> bool:
        """False for a shard whose samples have neither json nor aug members (e.g. input shards)."""
        return self.nsamples == 0 or self.genaug_samples > 0

    def problem(self, key: str | None, text: str) -> None:
        self.problems.append(f"{self.path.name}{f' [{key}]' if key else ''}: {text}")
        self._sample_problem.append(key is not None)

    def finish(self) -> None:
        """After the last sample: a shard that is not genaug output gets one problem (with verify)
        instead of one per sample for the members genaug would have written."""
        if self.is_genaug:
            return
        self.problems = [p for p, per_sample in zip(self.problems, self._sample_problem) if not per_sample]
        self._sample_problem = [False] * len(self.problems)
        if self.verify:
            fields = ", ".join(sorted(self.fields)) or "none"
            self.problem(None, f"not genaug shards (no json/aug members; fields: {fields}): inspect checks the "
                               "output of genaug build; to augment these shards, pass them to genaug build --data")

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        self.nsamples += 1
        present = set(fields) | set(getattr(fields, "oversized", {}))  # oversized members: named, not read
        self.fields.update(present)
        if JSON in present or any(f in present for f in AUG_MEMBERS):
            self.genaug_samples += 1
        if key in self._keys:
            self.problem(key, "duplicate key in the shard")
        self._keys.add(key)
        for reason in getattr(fields, "oversized", {}).values():  # not read (genaug.limits)
            self.problem(key, reason)
        meta = self._read_json(key, fields.get(JSON))
        aug_name = next((f for f in AUG_MEMBERS if f in fields), None)
        if aug_name is None:
            self.problem(key, f"no aug image (expected one of {', '.join(AUG_MEMBERS)})")
        else:
            size = _image_size(fields[aug_name], full=self.verify)
            if isinstance(size, str):
                self.problem(key, f"{aug_name} does not decode: {size}")
            else:
                self.aug_sizes[f"{size[0]}x{size[1]}"] += 1
        if REAL not in fields:
            self.problem(key, "no real.jpg")
        elif self.verify:
            self._check_real(key, fields[REAL], meta)
        self._check_label(key, fields.get(CLS), meta)
        if meta is not None:
            self._collect_meta(meta)

    def _read_json(self, key: str, raw: bytes | None) -> dict | None:
        if raw is None:
            self.problem(key, "no json")
            return None
        try:
            meta = json.loads(raw)
        except ValueError as err:
            self.problem(key, f"json does not parse: {err}")
            return None
        if not isinstance(meta, dict):
            self.problem(key, "json is not an object")
            return None
        if self.verify:
            missing = [f for f in JSON_FIELDS if f not in meta and f not in LATER_JSON_FIELDS]
            if missing:
                self.problem(key, f"json lacks field(s) {', '.join(missing)}")
            if "key" in meta and meta["key"] != key:
                self.problem(key, f"json key {meta['key']!r} differs from the member key")
        return meta

    def _check_real(self, key: str, data: bytes, meta: dict | None) -> None:
        size = _image_size(data, full=True, upright=True)
        if isinstance(size, str):
            self.problem(key, f"real.jpg does not decode: {size}")
            return
        if meta is None or not isinstance(meta.get("orig_size"), list):
            return
        if list(size) != meta["orig_size"]:
            self.problem(key, f"real.jpg is {size[0]}x{size[1]} (EXIF-transposed) but json orig_size is "
                              f"{meta['orig_size']}")
        box = meta.get("crop_box")
        if "crop_box" in meta and not (isinstance(box, list) and len(box) == 4 and 0 <= box[0] < box[2] <= size[0]
                and 0 <= box[1] < box[3] <= size[1]):
            self.problem(key, f"crop_box {box} is not inside the {size[0]}x{size[1]} real image")

    def _check_label(self, key: str, cls: bytes | None, meta: dict | None) -> None:
        label = meta.get("label") if meta else _cls_label(cls)  # no genaug json: the cls member
        self.labels["unlabelled" if label is None else label] += 1
        if not self.verify or meta is None:
            return
        if cls is None:
            if label is not None:
                self.problem(key, f"json label {label} but no cls member")
            return
        text = cls.decode("ascii", errors="replace").strip()
        if text != str(label):
            self.problem(key, f"cls {text!r} does not match json label {label!r}")

    def _collect_meta(self, meta: dict) -> None:
        self.methods[str(meta.get("method"))] += 1
        self.presets[str(meta.get("preset"))] += 1
        orig = meta.get("orig_size")
        if isinstance(orig, list) and len(orig) == 2:
            self.orig_short_sides.append(min(orig))
        for name, value in (meta.get("scores") or {}).items():
            if isinstance(value, (int, float)):
                self.scores.setdefault(name, []).append(float(value))

    def report(self) -> dict:
        labelled = {k: v for k, v in self.labels.items() if k != "unlabelled"}
        return {
            "shard": str(self.path),
            "genaug": self.is_genaug,
            "nsamples": self.nsamples,
            "fields": dict(sorted(self.fields.items())),
            "methods": dict(self.methods),
            "presets": dict(self.presets),
            "aug_sizes": dict(self.aug_sizes),
            "orig_short_side": _range(self.orig_short_sides),
            "labels": {"labelled": sum(labelled.values()), "unlabelled": self.labels.get("unlabelled", 0),
                       "classes": len(labelled), "min": min(labelled, default=None),
                       "max": max(labelled, default=None)},
            "scores": summarise_scores(self.scores),
            "problems": len(self.problems),
        }


def _cls_label(cls: bytes | None) -> int | None:
    """The integer label of a `cls` member (ASCII digits), None when absent or not an integer."""
    text = cls.decode("ascii", errors="replace").strip() if cls is not None else ""
    return int(text) if text.isdigit() else None


def _range(values: list[int]) -> dict | None:
    return {"min": min(values), "max": max(values)} if values else None


def summarise_scores(scores: dict[str, list[float]]) -> dict:
    return {name: {"n": len(v), "mean": statistics.fmean(v), "median": statistics.median(v)}
            for name, v in sorted(scores.items()) if v}


def _image_size(data: bytes, full: bool, upright: bool = False) -> tuple[int, int] | str:
    """(width, height) of encoded `data`, decoding it fully when `full`; the error text otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if full:
                image.load()
            width, height = image.size
            if upright and exif_orientation(image) in (5, 6, 7, 8):  # these orientations swap the axes
                return height, width
            return width, height
    except UnidentifiedImageError:
        return "not a recognised image"
    except _IMAGE_ERRORS as err:
        return str(err) or type(err).__name__


def inspect_shards(paths: Sequence[str], verify: bool = False) -> dict:
    """Report on the shards named by `paths` (see resolve_shards); verify: decode and check all."""
    shards = resolve_shards(paths)
    run_errors = load_run_errors({p.parent for p in shards})
    reports, problems, scores = [], [], {}
    measured: dict[Path, dict[str, Measured]] = {}
    for path in shards:
        summary = ShardSummary(path, verify)
        digest = _read_into(summary)
        summary.finish()
        stats = _read_stats(path, summary)
        if verify and stats is not None and digest is not None:
            _compare_stats(summary, stats, digest)
        if digest is not None:
            measured.setdefault(path.parent, {})[path.name] = Measured(digest[0], digest[1], summary.nsamples)
        report = summary.report()
        report["stats"] = _stats_digest(stats)
        report["errors"] = errors_for(path, run_errors.get(path.parent, []))
        reports.append(report)
        problems.extend(summary.problems)
        for name, values in summary.scores.items():
            scores.setdefault(name, []).extend(values)
    builds = _build_statuses({p.parent for p in shards} | {p for _, p in _expand(paths) if p.is_dir()})
    if verify:
        problems.extend(f"{b.folder}: {b.problem()}" for b in builds if not b.finished)
        for folder in run_folders({p for _, p in _expand(paths) if p.is_dir()}, shards):
            problems.extend(check_run(folder, measured.get(folder, {})))
    all_errors = [e for errors in run_errors.values() for e in errors]
    totals = {
        "shards": len(reports),
        "nsamples": sum(r["nsamples"] for r in reports),
        "methods": dict(sum((Counter(r["methods"]) for r in reports), Counter())),
        "presets": dict(sum((Counter(r["presets"]) for r in reports), Counter())),
        "errors_recorded": len(all_errors),
        "error_reasons": dict(Counter(reason_kind(e.get("reason", "")) for e in all_errors).most_common()),
        "scores": summarise_scores(scores),
        "problems": len(problems),
    }
    return {"verified": verify, "shards": reports, "totals": totals, "problems": problems,
            "builds": [{"folder": str(b.folder), "status": b.status, "finished": b.finished,
                        "shards_done": b.shards_done, "shards_expected": b.shards_expected,
                        "summary": b.describe()} for b in builds]}


def _build_statuses(folders: set[Path]) -> list[BuildStatus]:
    """manifest.json status of each run folder that has one (see genaug.runstatus)."""
    return [status for status in map(read_build_status, sorted(folders)) if status is not None]


def _read_into(summary: ShardSummary) -> tuple[int, str, str] | None:
    """Feed every sample of the shard to `summary`; (filesize, md5, sha256) of the tar, None if unreadable."""
    try:
        with open(summary.path, "rb") as raw:
            reader = _HashingReader(raw)
            for key, fields in iter_tar_stream(reader):
                summary.add(key, fields)
            reader.drain()
    except (tarfile.TarError, OSError) as err:
        summary.problem(None, f"not a readable tar: {err}")
        return None
    return reader.size, reader.md5.hexdigest(), reader.sha256.hexdigest()


def _read_stats(path: Path, summary: ShardSummary) -> dict | None:
    stats_path = path.with_suffix(".json")
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if summary.verify and summary.is_genaug:
            summary.problem(None, f"no stats file {stats_path.name} (the shard is not marked done)")
        return None
    except (OSError, ValueError) as err:
        summary.problem(None, f"stats file {stats_path.name} is unreadable: {err}")
        return None
    return stats if isinstance(stats, dict) else None


def _compare_stats(summary: ShardSummary, stats: dict, digest: tuple[int, str, str]) -> None:
    """nsamples, filesize and md5sum must be in the stats file and match; sha256 must match if there."""
    size, md5, sha256 = digest
    checks = (("nsamples", summary.nsamples), ("filesize", size), ("md5sum", md5), ("sha256", sha256))
    for name, actual in checks:
        if name not in stats:
            if name != "sha256":
                summary.problem(None, f"stats file lacks {name}")
        elif stats[name] != actual:
            summary.problem(None, f"stats {name} is {stats[name]!r} but the tar has {actual!r}")


def _stats_digest(stats: dict | None) -> dict | None:
    if stats is None:
        return None
    keep = ("nsamples", "nerrors", "filesize", "md5sum", "device", "device_name", "batch_size", "images_per_s")
    return {k: stats[k] for k in keep if k in stats}
