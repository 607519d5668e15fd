"""The run files of a build spread over several ranks: per-rank state files, and the merge.

Each rank writes its shards and their stats files (``shard-XXXX.json``, which carry the shard's
skipped inputs and timings) exactly as a single process does, plus one state file
``.genaug-dist/rank-R-of-W.json`` (status, the number of inputs it enumerated, its device and
timings). Nobody else writes ``errors.jsonl``, ``index.json`` or a complete ``manifest.json`` while
ranks run. `merge_run` writes them once every shard exists, from the stats files in shard order:
the same code path and the same content as a single-process build, so errors.jsonl and index.json
are byte-identical to one; the manifest differs only in per-run fields (timings, start/finish
times, the device, and a ``distributed`` section with the per-rank figures).

`merge_run` is called by rank 0 after all ranks met at the end (torchrun, srun), or by
``genaug finalize OUT`` for ranks that never meet (job arrays).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from genaug.build import runfiles
from genaug.build.pipeline import BuildError, BuildSummary
from genaug.build.shard import read_json, write_json_atomic
from genaug.errors import ConfigError
from genaug.format import MANIFEST, shard_name, stats_name

log = logging.getLogger(__name__)

STATE_DIR = ".genaug-dist"  # per-rank state and lock files of a distributed build, inside --out
RUN_IDENTITY = "run.json"  # fingerprint and world size of the ranks holding --out
RUNNING, DONE = "running", "done"


def state_dir(out: Path) -> Path:
    return Path(out) / STATE_DIR


def rank_state_path(out: Path, rank: int, world_size: int) -> Path:
    return state_dir(out) / f"rank-{rank}-of-{world_size}.json"


def write_rank_state(out: Path, state: dict) -> None:
    write_json_atomic(rank_state_path(out, state["rank"], state["world_size"]), state)


def read_identity(out: Path) -> dict | None:
    return read_json(state_dir(out) / RUN_IDENTITY)


def write_identity(out: Path, fingerprint: str, world_size: int) -> None:
    write_json_atomic(state_dir(out) / RUN_IDENTITY, {"config_fingerprint": fingerprint, "world_size": world_size})


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def finalize(out: str | Path) -> BuildSummary:
    """``genaug finalize OUT``: write the run files of a build whose ranks have all finished.
    Refused while any rank (or another build) still writes to `out`."""
    out = Path(out).expanduser().resolve()
    if not out.is_dir():
        raise ConfigError(f"OUT {out}: no such folder; give the --out of the distributed build")
    try:
        with runfiles.exclusive(out):
            return merge_run(out)
    except ConfigError as err:
        if "another genaug build is writing there" in str(err):
            raise ConfigError(f"{out}: ranks of the build are still writing there; run genaug finalize "
                              "once every rank has ended") from err
        raise


def _manifest_of(out: Path) -> dict:
    manifest = read_json(out / MANIFEST)
    if not manifest or "config_fingerprint" not in manifest:
        raise ConfigError(f"{out}: no manifest.json of a genaug build; give the --out of the build")
    return manifest


def _finished_ranks(out: Path, fingerprint: str) -> tuple[int, list[dict]]:
    """(world size, state of every rank that finished) of the distributed build in `out`."""
    identity = read_identity(out)
    if not identity or identity.get("config_fingerprint") != fingerprint:
        raise ConfigError(f"{out}: no distributed build state ({STATE_DIR}/{RUN_IDENTITY}) for the build in "
                          "manifest.json; rerun the genaug build command to finish the build")
    world = int(identity["world_size"])
    states = [read_json(rank_state_path(out, r, world)) for r in range(world)]
    done = [s for s in states if s and s.get("status") == DONE and s.get("config_fingerprint") == fingerprint]
    if not done:
        raise BuildError(f"{out}: none of the {world} ranks has finished yet; run them all "
                         f"(genaug build ... --rank R --world-size {world}), then genaug finalize {out}")
    return world, done


def _complete_stats(out: Path, fingerprint: str, nshards: int, world: int) -> list[dict]:
    """The stats of shards 0..nshards-1; BuildError naming the missing ones and their ranks."""
    stats, missing = [], []
    for index in range(nshards):
        doc = read_json(out / stats_name(index))
        tar = out / shard_name(index)
        if (doc and doc.get("config_fingerprint") == fingerprint and tar.is_file()
                and tar.stat().st_size == doc.get("filesize")):
            stats.append(doc)
        else:
            missing.append(index)
    if missing:
        owners = sorted({i % world for i in missing})
        shown = ", ".join(shard_name(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise BuildError(
            f"{out}: {len(missing)} of {nshards} shard(s) are not done ({shown}; rank(s) {owners} of {world}); "
            f"the build is unfinished: rerun those ranks, or the same genaug build command with any number "
            f"of processes, then finalize again"
        )
    return stats


def merge_run(out: Path) -> BuildSummary:
    """Write errors.jsonl, index.json and the complete manifest.json of the distributed build in `out`
    once all its shards exist (the caller holds the lock or knows that all ranks have finished)."""
    manifest = _manifest_of(out)
    fingerprint = manifest["config_fingerprint"]
    world, done = _finished_ranks(out, fingerprint)
    totals = sorted({int(s["inputs_total"]) for s in done})
    if len(totals) > 1:
        raise BuildError(f"{out}: the ranks enumerated different numbers of inputs ({totals}): the data changed "
                         "while they ran; rerun the genaug build command")
    shard_size = int(manifest["config"]["shard_size"])
    stats = _complete_stats(out, fingerprint, math.ceil(totals[0] / shard_size), world)
    runfiles.write_run_files(out, stats)
    summary, manifest = _merged_manifest(out, manifest, stats, done, world)
    runfiles.write_manifest(out, manifest)
    for path in state_dir(out).glob("*.json"):  # the lock files stay: ranks may still hold them
        path.unlink(missing_ok=True)
    log.info("run files written for %d shards of %d ranks in %s", len(stats), world, out)
    return summary


def _merged_manifest(out: Path, manifest: dict, stats: list[dict], done: list[dict],
                     world: int) -> tuple[BuildSummary, dict]:
    first = min(done, key=lambda s: s["rank"])
    started = min(float(s["started_unix"]) for s in done)
    now = time.time()
    samples = sum(int(s["nsamples"]) for s in stats)
    model_s = sum(float(s["timings_s"]["model"]) for s in stats)
    counts = {
        "inputs": sum(int(s.get("ninputs", 0)) for s in stats),
        "samples": samples,
        "errors": sum(int(s["nerrors"]) for s in stats),
        "shards": len(stats),
        "shards_resumed": sum(int(s["shards_resumed"]) for s in done),
        "empty_shards": sum(1 for s in stats if int(s["nsamples"]) == 0),
    }
    config = dict(manifest["config"], device=first["device"])
    per_rank = ("rank", "device", "device_name", "startup_s", "wall_s", "inputs", "shards_built",
                "shards_resumed", "images_per_s")
    merged = dict(
        manifest, config=config, status="complete", counts=counts, started_at=_utc(started),
        finished_at=_utc(now), wall_time_s=round(now - started, 3),
        timing={
            "batch1_ms_per_image": first["batch1_ms_per_image"],
            "batch_ms_per_image": round(1000.0 * model_s / samples, 3) if samples else None,
            "batch_size": config["batch_size"], "device": first["device"], "device_name": first["device_name"],
        },
        distributed={"world_size": world, "launcher": first["launcher"],
                     "ranks": [{k: s.get(k) for k in per_rank} for s in sorted(done, key=lambda s: s["rank"])]},
    )
    wall = now - started
    ran = sum(int(s["inputs"]) for s in done)
    summary = BuildSummary(out=out, wall_s=wall, images_per_s=ran / wall if wall > 0 else 0.0, **counts)
    return summary, merged


def rank_summary(out: Path, state: dict, own: list[dict]) -> BuildSummary:
    """What one rank did (its own shards), for a rank that does not write the run files."""
    return BuildSummary(
        out=out, inputs=sum(int(s.get("ninputs", 0)) for s in own), samples=sum(int(s["nsamples"]) for s in own),
        errors=sum(int(s["nerrors"]) for s in own), shards=len(own), shards_resumed=int(state["shards_resumed"]),
        empty_shards=sum(1 for s in own if int(s["nsamples"]) == 0),
        wall_s=float(state["wall_s"]), images_per_s=float(state["images_per_s"]),
    )

