"""Whether the build in a run folder finished, from its manifest.json (read by inspect and the loader).

`genaug build` writes manifest.json with ``"status": "running"`` before the first shard, rewrites it with
``"status": "interrupted"`` when Ctrl-C or SIGTERM stops it, and with ``"status": "complete"`` (and
``counts``) at the end, so a build that was stopped (``"interrupted"``), crashed or was killed (``"running"``)
or is still going is not finished; its index.json then lists only the shards finished so far. Folders without a manifest, or manifests without a status (older builds, hand-made
shards), have an unknown status and are not flagged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

from genaug.format import MANIFEST, is_stats_file

log = logging.getLogger(__name__)

COMPLETE = "complete"


@dataclasses.dataclass(frozen=True)
class BuildStatus:
    folder: Path
    status: str | None  # manifest.json "status" ("running" | "interrupted" | "complete"); None when not recorded
    shards_done: int  # shards with a stats file (the done-marker) in the folder
    shards_expected: int | None  # complete: counts.shards; running: at most ceil(limit / shard_size)

    @property
    def finished(self) -> bool:
        """False only when the manifest says the build did not complete."""
        return self.status is None or self.status == COMPLETE

    def describe(self) -> str:
        if self.status is None:
            return "status unknown (manifest.json records none)"
        if self.finished:
            return f"complete ({self.shards_done} shard(s))"
        return self.problem()

    def problem(self) -> str:
        """The one-line explanation of an unfinished build (and what to do)."""
        of = f" of at most {self.shards_expected}" if self.shards_expected is not None else ""
        return (f"build not finished: {self.shards_done}{of} shard(s) done (manifest.json status "
                f"{self.status!r}: the build was interrupted or is still running); rerun the same "
                "genaug build command to resume")


def _expected_shards(manifest: dict) -> int | None:
    counts = manifest.get("counts")
    if manifest.get("status") == COMPLETE and isinstance(counts, dict) and isinstance(counts.get("shards"), int):
        return counts["shards"]
    config = manifest.get("config")
    if not isinstance(config, dict):
        return None
    limit, size = config.get("limit"), config.get("shard_size")
    if isinstance(limit, int) and isinstance(size, int) and limit > 0 and size > 0:
        return math.ceil(limit / size)
    return None


def read_build_status(folder: str | Path) -> BuildStatus | None:
    """The status of the build in `folder`; None when it has no readable manifest.json."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); the build's status is unknown", folder / MANIFEST, err)
        return None
    if not isinstance(manifest, dict):
        return None
    status = manifest.get("status")
    try:
        done = sum(1 for p in folder.iterdir() if is_stats_file(p.name))
    except OSError as err:
        log.warning("%s: cannot list the folder (%s); finished shards are not counted", folder, err)
        done = 0
    return BuildStatus(folder, str(status) if status is not None else None, done, _expected_shards(manifest))


def unstarted_build(folder: str | Path) -> BuildStatus | None:
    """The status of an unfinished build in `folder` that has written no shard yet (a build interrupted
    before its first shard leaves only manifest.json, status "running"); None otherwise."""
    folder = Path(folder)
    try:
        if any(folder.glob("*.tar")):
            return None
    except OSError:
        return None
    status = read_build_status(folder)
    return status if status is not None and not status.finished else None
