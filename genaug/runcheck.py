"""`genaug inspect --verify`: a run folder checked against its own records (manifest.json, index.json,
the shard-XXXX.json stats files).

Every shard that index.json or a stats file lists must be present; index.json and the stats files must
list the same shards with the same sizes, md5 sums and sample counts; the tars that inspect read must
match both (size, md5, samples); a finished build (manifest status "complete") must have index.json and
the shard and sample counts its manifest records. Each mismatch is one problem line naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from genaug.runstatus import COMPLETE, MANIFEST

INDEX = "index.json"
_STATS = re.compile(r"shard-(\d+)\.json")
RECORD_FIELDS = ("filesize", "md5sum", "nsamples")


@dataclasses.dataclass(frozen=True)
class Measured:
    """What inspect found reading a tar."""

    filesize: int
    md5sum: str
    nsamples: int


def _load(path: Path, problems: list[str]) -> dict | None:
    """The JSON object in `path`; None (and a problem unless it is missing) otherwise."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        problems.append(f"{path}: unreadable ({err})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: not a JSON object")
        return None
    return value


def _index_entries(folder: Path, problems: list[str]) -> dict[str, dict] | None:
    """index.json's shardlist by url; None when there is no index.json."""
    doc = _load(folder / INDEX, problems)
    if doc is None:
        return None
    shardlist = doc.get("shardlist")
    if not isinstance(shardlist, list) or not all(isinstance(s, dict) and isinstance(s.get("url"), str)
                                                  for s in shardlist):
        problems.append(f"{folder / INDEX}: no valid shardlist (a list of {{url, nsamples, filesize, md5sum}})")
        return {}
    return {s["url"]: s for s in shardlist}


def _stats_files(folder: Path, problems: list[str]) -> dict[str, dict]:
    """The stats of every shard-XXXX.json in `folder`, by the name of its tar."""
    found = {}
    for path in sorted(folder.iterdir()):
        match = _STATS.fullmatch(path.name)
        if match:
            stats = _load(path, problems)
            found[f"shard-{match.group(1)}.tar"] = stats or {}
    return found


def _compare(what: str, record: dict, actual: dict, problems: list[str]) -> None:
    for name in RECORD_FIELDS:
        if name in record and name in actual and record[name] != actual[name]:
            problems.append(f"{what} {name} is {record[name]!r} but {actual['_from']} has {actual[name]!r}")


def _compare_entry(index_path: Path, name: str, entry: dict, stats: dict | None, actual: dict | None,
                   problems: list[str]) -> None:
    """index.json's entry against the tar as read (when the stats file agrees with it or is absent: a
    stats file that does not is already a problem of its own), else against the stats file."""
    what = f"{index_path} entry {name}:"
    if actual is None:
        if stats is not None:
            _compare(what, entry, {**stats, "_from": "its stats file"}, problems)
        return
    if stats is None or all(stats.get(f, actual[f]) == actual[f] for f in RECORD_FIELDS):
        _compare(what, entry, {**actual, "_from": "the tar"}, problems)


def check_run(folder: Path, measured: dict[str, Measured]) -> list[str]:
    """Problems of run folder `folder` against its records; `measured`: tar name -> what inspect read."""
    problems: list[str] = []
    manifest = _load(folder / MANIFEST, problems)
    index = _index_entries(folder, problems)
    stats = _stats_files(folder, problems)
    finished = isinstance(manifest, dict) and manifest.get("status") == COMPLETE
    if index is None and finished:
        problems.append(f"{folder}: {INDEX} is missing, but manifest.json says the build is complete")
    listed = set(stats) | set(index or {})
    for name in sorted(listed):
        tar = folder / name
        if not tar.is_file():
            where = " and ".join(w for w, has in ((INDEX, name in (index or {})), ("its stats file", name in stats))
                                 if has)
            problems.append(f"{tar}: missing, but {where} list(s) it")
            continue
        actual = dataclasses.asdict(measured[name]) if name in measured else None
        if index is not None and name not in index:
            problems.append(f"{tar}: has a stats file but is not listed in {INDEX}")
        if name not in stats:
            problems.append(f"{tar}: listed in {INDEX} but has no stats file {name[:-4]}.json")
        if index is not None and name in index:
            _compare_entry(folder / INDEX, name, index[name], stats.get(name), actual, problems)
    if finished:
        _check_counts(folder, manifest, stats, problems)
    return problems


def _check_counts(folder: Path, manifest: dict, stats: dict[str, dict], problems: list[str]) -> None:
    """A complete manifest's counts.shards / counts.samples against the stats files."""
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    samples = sum(int(s.get("nsamples", 0)) for s in stats.values() if isinstance(s.get("nsamples"), int))
    for name, actual in (("shards", len(stats)), ("samples", samples)):
        recorded = counts.get(name)
        if isinstance(recorded, int) and recorded != actual:
            problems.append(f"{folder / MANIFEST}: counts.{name} is {recorded} but the stats files give {actual}")

