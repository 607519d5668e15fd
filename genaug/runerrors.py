"""A run's errors.jsonl read back for `genaug inspect`: the lines of each run folder, and one shard's count,
reason kinds and examples."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

from genaug.format import ERRORS, parse_shard_file

log = logging.getLogger(__name__)


def load_run_errors(folders: set[Path]) -> dict[Path, list[dict]]:
    """errors.jsonl lines per run folder (folders without one are left out)."""
    found = {}
    for folder in sorted(folders):
        path = folder / ERRORS
        if not path.is_file():
            continue
        lines = []
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    log.warning("%s line %d is not JSON; ignored", path, lineno)
        found[folder] = [e for e in lines if isinstance(e, dict)]
    return found


def _shard_number(value) -> int | None:
    """The shard index of an errors.jsonl `shard` value: 3, "3", "shard-0003" or "shard-0003.tar"."""
    if isinstance(value, int):
        return value
    match = re.search(r"(\d+)", str(value))
    return int(match.group(1)) if match else None


def errors_for(path: Path, errors: list[dict]) -> dict:
    parsed = parse_shard_file(path.name)
    number = parsed[0] if parsed else None
    mine = [e for e in errors if number is not None and _shard_number(e.get("shard")) == number]
    return {"count": len(mine), "reasons": dict(Counter(reason_kind(e.get("reason", "")) for e in mine)),
            "examples": [{k: e.get(k) for k in ("key", "path", "reason")} for e in mine[:3]]}


def reason_kind(reason: str) -> str:
    """The general part of an error reason ("image too small: 8x8 px ..." -> "image too small")."""
    return re.split(r"[:(]", str(reason), maxsplit=1)[0].strip() or "unknown"
