"""Run files in ``--out`` and resume: manifest.json, errors.jsonl, index.json, the resume fingerprint,
the --out lock and the discovery of done shards (each checked by genaug.build.shard.done_stats).

Each ``shard-XXXX.json`` stats file is the done-marker of its shard and carries that shard's
skipped inputs, so errors.jsonl and index.json are rewritten from the stats files after every
shard: a rerun never duplicates lines, and a killed run leaves them consistent with its shards.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from genaug.build.shard import done_stats, read_json, remove_temp_files, write_json_atomic, write_text_atomic
from genaug.errors import ConfigError
from genaug.format import ERROR_FIELDS, ERRORS, INDEX, MANIFEST, index_document, parse_shard_file, shard_name

log = logging.getLogger(__name__)

FINGERPRINT_VERSION = 4  # bump when shard content for the same settings changes (4: source_rel and source_meta in
# the sample json; counter-based decode noise; CUDA compute chunk 40, TF32 encoder convolutions under --precision auto
# and channels_last VQGAN on CUDA)


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


def check_previous_build(out: Path, overwrite: bool, fingerprint: str, inputs: Mapping[str, Any]) -> None:
    """Refuse a different configuration (`fingerprint` of `inputs`) in an existing --out unless
    --overwrite (changes nothing)."""
    previous = _previous_build(out)
    if overwrite or previous is None:
        return
    old_fingerprint, old_inputs = previous
    if old_fingerprint == fingerprint:
        log.info("resuming the build in %s", out)
        return
    if old_fingerprint is None:
        detail = "shard files of an unknown build"
    else:
        changed = differing_settings(old_inputs, inputs) if old_inputs else []
        how = "; ".join(describe_differences(old_inputs, inputs)) if changed else ""
        detail = "a build with different settings" + (f" (differs in: {', '.join(changed)}; {how})" if changed else "")
    raise ConfigError(
        f"--out {out} already holds {detail}; pass --overwrite to replace it, or choose another --out"
    )


def prepare_out(out: Path, overwrite: bool, fingerprint: str) -> dict[int, dict]:
    """Clear the previous build (--overwrite) or its temp files; return the stats of the complete shards."""
    if overwrite and _previous_build(out) is not None:
        log.info("--overwrite: removed %d file(s) of the previous build in %s", clear_run_files(out), out)
    remove_temp_files(out)
    return done_shards(out, fingerprint)


def done_shards(out: Path, fingerprint: str, only: Callable[[int], bool] | None = None) -> dict[int, dict]:
    """Stats of the shards that are complete and intact; removes the leftovers of incomplete ones.
    `only`: look at (and remove) only the shards whose index it accepts (one rank's share)."""
    files = _shard_files(out)
    if only is not None:
        files = {kind: [p for p in paths if only(parse_shard_file(p.name)[0])] for kind, paths in files.items()}
    done: dict[int, dict] = {}
    for path in files["json"]:
        index = parse_shard_file(path.name)[0]
        tar = out / shard_name(index)
        stats = done_stats(out, index, fingerprint)
        if stats is not None:
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


def write_errors(out: Path, stats: list[dict]) -> int:
    """Rewrite errors.jsonl from the stats files (atomically); return the number of lines."""
    lines = [json.dumps({k: error.get(k) for k in ERROR_FIELDS}, sort_keys=True) + "\n"
             for shard in stats for error in shard.get("errors", [])]
    write_text_atomic(out / ERRORS, "".join(lines))
    return len(lines)


def remove_temp_files_quietly(out: Path) -> None:
    """Remove the run's temporary files after a failure; an error doing so is only logged."""
    try:
        remove_temp_files(out)
    except OSError as err:
        log.warning("cannot remove the temporary files in %s: %s", out, err)


def write_index(out: Path, stats: list[dict]) -> None:
    write_json_atomic(out / INDEX, index_document(out.name, stats))


def write_manifest(out: Path, manifest: Mapping[str, Any], tag: str = "") -> None:
    write_json_atomic(out / MANIFEST, dict(manifest), tag=tag)


def write_run_files(out: Path, stats: Iterable[dict]) -> None:
    """Rewrite errors.jsonl and index.json from the stats of the complete shards."""
    ordered = sorted(stats, key=lambda s: int(s["shard"]))
    write_errors(out, ordered)
    write_index(out, ordered)


def fingerprint_of(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint_inputs(config: Any, method: Any, options: Mapping[str, Any],
                       data: Sequence[str], weights_sha256: Mapping[str, str], device_type: str) -> dict:
    """The settings that change shard content. Batch size, workers and the device index do not; the
    device type does (CPU and CUDA kernels differ in the last float bits, so a resume on the other
    type would mix shards that an uninterrupted run would not have written)."""
    output_options = {o.name: options[o.name] for o in method.options if o.affects_output}
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "method": config.method,
        "preset": config.preset,
        "options": output_options,
        "data": list(data),
        "limit": config.limit,
        "seed": config.seed,
        "shard_size": config.shard_size,
        "aug_format": config.aug_format,
        "quality": config.quality,
        "precision": config.precision,
        "weights_sha256": dict(sorted(weights_sha256.items())),
        "scores": list(config.scores),
        "device_type": device_type,
    }


def differing_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


_UNSET = object()


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 8) -> list[str]:
    """'name: <old> in --out, <new> now' per differing setting; settings that are mappings (options,
    weights_sha256) are compared entry by entry, e.g. 'options.amplitude: 3 in --out, 5 now'."""
    lines = []
    for name in differing_settings(old, new):
        before, after = old.get(name, _UNSET), new.get(name, _UNSET)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            lines += [f"{name}.{sub}: {_shown(before.get(sub, _UNSET))} in --out, {_shown(after.get(sub, _UNSET))} now"
                      for sub in differing_settings(before, after)]
        else:
            lines.append(f"{name}: {_shown(before)} in --out, {_shown(after)} now")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def _shown(value: Any, width: int = 80) -> str:
    text = "unset" if value is _UNSET else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
