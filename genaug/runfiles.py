"""Run files in ``--out``: manifest.json, errors.jsonl, index.json, and the resume state.

Each ``shard-XXXX.json`` stats file is the done-marker of its shard and carries that shard's
skipped inputs, so errors.jsonl and index.json are rewritten from the stats files after every
shard: a rerun never duplicates lines, and a killed run leaves them consistent with its shards.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from genaug.config import ConfigError, ResolvedBuild, differing_settings
from genaug.shards import (
    file_digests,
    index_document,
    parse_shard_file,
    remove_temp_files,
    shard_name,
    stats_name,
    write_json_atomic,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
INDEX = "index.json"
ERROR_FIELDS = ("key", "path", "reason", "shard")


@contextlib.contextmanager
def exclusive(out: Path):
    """Hold an exclusive lock on the --out folder itself (released by the kernel even on SIGKILL)."""
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise ConfigError(
                f"--out {out}: another genaug build is writing there; wait for it to end or choose another --out"
            ) from err
        yield
    finally:
        os.close(fd)


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable %s: %s", path, err)
        return None
    return value if isinstance(value, dict) else None


def _shard_files(out: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {"tar": [], "json": []}
    for path in sorted(out.iterdir()):
        parsed = parse_shard_file(path.name)
        if parsed:
            found[parsed[1]].append(path)
    return found


def _previous_build(out: Path) -> tuple[str | None, dict] | None:
    """(fingerprint, fingerprint inputs) of the build already in `out`; None when there is none."""
    manifest = read_json(out / MANIFEST)
    if manifest and "config_fingerprint" in manifest:
        return manifest["config_fingerprint"], manifest.get("fingerprint_inputs") or {}
    files = _shard_files(out)
    for path in files["json"]:
        stats = read_json(path)
        if stats and "config_fingerprint" in stats:
            return stats["config_fingerprint"], {}
    if files["tar"] or files["json"] or manifest is not None:
        return None, {}
    return None


def clear_run_files(out: Path) -> int:
    """Delete the shards and run files of a previous build (nothing else); return the count."""
    files = _shard_files(out)
    removed = 0
    for path in files["tar"] + files["json"] + [out / MANIFEST, out / ERRORS, out / INDEX]:
        if path.exists():
            path.unlink()
            removed += 1
    remove_temp_files(out)
    return removed


def check_previous_build(resolved: ResolvedBuild) -> None:
    """Refuse a different configuration in an existing --out unless --overwrite (changes nothing)."""
    out = resolved.config.out
    previous = _previous_build(out)
    if resolved.config.overwrite or previous is None:
        return
    fingerprint, inputs = previous
    if fingerprint == resolved.fingerprint:
        log.info("resuming the build in %s", out)
        return
    if fingerprint is None:
        detail = "shard files of an unknown build"
    else:
        changed = differing_settings(inputs, resolved.fingerprint_inputs) if inputs else []
        detail = "a build with different settings" + (f" (differs in: {', '.join(changed)})" if changed else "")
    raise ConfigError(
        f"--out {out} already holds {detail}; pass --overwrite to replace it, or choose another --out"
    )


def prepare_out(resolved: ResolvedBuild) -> dict[int, dict]:
    """Clear the previous build (--overwrite) or its temp files; return the stats of the complete shards."""
    out = resolved.config.out
    if resolved.config.overwrite and _previous_build(out) is not None:
        log.info("--overwrite: removed %d file(s) of the previous build in %s", clear_run_files(out), out)
    remove_temp_files(out)
    return done_shards(out, resolved.fingerprint)


def done_shards(out: Path, fingerprint: str, only: Callable[[int], bool] | None = None) -> dict[int, dict]:
    """Stats of the shards that are complete and intact; removes the leftovers of incomplete ones.
    `only`: look at (and remove) only the shards whose index it accepts (one rank's share)."""
    files = _shard_files(out)
    if only is not None:
        files = {kind: [p for p in paths if only(parse_shard_file(p.name)[0])] for kind, paths in files.items()}
    done: dict[int, dict] = {}
    for path in files["json"]:
        index = parse_shard_file(path.name)[0]
        stats = read_json(path)
        tar = out / shard_name(index)
        if stats and stats.get("config_fingerprint") == fingerprint and tar.is_file():
            if file_digests(tar) == (stats.get("filesize"), stats.get("md5sum")):
                done[index] = stats
                continue
        log.warning("shard %s is incomplete or damaged; it will be rebuilt", tar.name)
        path.unlink()
        tar.unlink(missing_ok=True)
    for tar in files["tar"]:
        index = parse_shard_file(tar.name)[0]
        if index not in done and tar.exists():
            log.info("removing %s: it has no stats file, so it never finished", tar.name)
            tar.unlink()
    return done


def write_stats(out: Path, stats: Mapping[str, Any]) -> None:
    write_json_atomic(out / stats_name(int(stats["shard"])), dict(stats))


def write_errors(out: Path, stats: list[dict]) -> int:
    """Rewrite errors.jsonl from the stats files (atomically); return the number of lines."""
    tmp = out / f".{ERRORS}.tmp"
    count = 0
    with open(tmp, "w", encoding="utf-8") as handle:
        for shard in stats:
            for error in shard.get("errors", []):
                handle.write(json.dumps({k: error.get(k) for k in ERROR_FIELDS}, sort_keys=True) + "\n")
                count += 1
    tmp.replace(out / ERRORS)
    return count


def write_index(out: Path, stats: list[dict]) -> None:
    write_json_atomic(out / INDEX, index_document(out.name, stats))


def write_manifest(out: Path, manifest: Mapping[str, Any], tag: str = "") -> None:
    write_json_atomic(out / MANIFEST, dict(manifest), tag=tag)


def write_run_files(out: Path, stats: Iterable[dict]) -> None:
    """Rewrite errors.jsonl and index.json from the stats of the complete shards."""
    ordered = sorted(stats, key=lambda s: int(s["shard"]))
    write_errors(out, ordered)
    write_index(out, ordered)
