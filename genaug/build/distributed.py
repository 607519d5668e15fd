"""One rank of a build spread over several processes: torchrun, srun, or job-array tasks.

Shard i is input chunk i whatever the world size, so who builds it does not change its bytes. Rank
r builds the chunks i with ``i % world_size == r`` (genaug.build.ranks): every rank walks the whole input
*listing* (it needs the positions), but passes over the other ranks' chunks without reading or
decoding their images, exactly as a resume passes over finished shards. Each rank writes its shards
and their stats files; the run files are merged in shard order afterwards (genaug.build.finalize).

Ranks of torchrun and srun meet twice through a gloo process group (no GPU collective): right after
start-up (so a missing rank is noticed in minutes, not after hours of work) and at the end, where
rank 0 waits for all others (FINISH_TIMEOUT) and writes the run files. A rank that dies breaks the
final barrier at once (its sockets close): the others finish their own shards first, then stop and
leave the run unfinished for a rerun with any world size. Job-array ranks (--rank/--world-size)
never meet; ``genaug finalize OUT`` merges once they are all done.

The lock on --out: every rank holds a shared lock on the folder (a single-process build takes it
exclusively, so each refuses the other), the first rank records the run's fingerprint and world
size in ``.genaug-dist/run.json`` (a rank of another run is refused while any rank holds the
folder), and each rank holds ``.genaug-dist/rank-R.lock`` exclusively (a second copy is refused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterable, Iterator

from genaug.build import runfiles
from genaug.build.chunks import iter_batches
from genaug.build.config import BuildConfig, BuildSettings, create_out_dir, resolve
from genaug.build.finalize import (
    DONE,
    RUNNING,
    merge_run,
    rank_summary,
    read_identity,
    state_dir,
    write_identity,
    write_rank_state,
)
from genaug.build.manifest import manifest_document, utc_now
from genaug.build.pipeline import (
    BuildError,
    BuildSummary,
    Progress,
    _check_previous,
    _checked_editor,
    _Runner,
    drive,
    with_batch_size,
)
from genaug.build.probe import probe_batch1_ms, probe_plan
from genaug.build.ranks import Ranks, rank_device
from genaug.build.workers import make_executor
from genaug.device import device_name
from genaug.errors import ConfigError
from genaug.stopping import os_error_message

log = logging.getLogger(__name__)

RENDEZVOUS_TIMEOUT = datetime.timedelta(minutes=30)  # all ranks must have started within this
FINISH_TIMEOUT = datetime.timedelta(hours=72)  # rank 0 waits this long for the slowest rank to finish
_OWN_TEMP = re.compile(r"\.shard-(\d{4,})\.(?:tar|json)\.(?:tmp|spool)")


def run_rank(config: BuildConfig, ranks: Ranks, progress: Progress | None = None) -> BuildSummary:
    """Validate `config`, then build this rank's shards in `config.out`. Rank 0 of ranks that meet
    returns the summary of the whole build (it wrote the run files); other ranks return their own."""
    start_unix, start = time.time(), time.perf_counter()
    if config.overwrite:
        raise ConfigError(f"--overwrite with {ranks.world_size} ranks: the ranks cannot all clear --out safely; "
                          f"delete it first (rm -r {config.out}) and rerun without --overwrite")
    if ranks.meets:
        _check_rendezvous_env(ranks)
    settings = resolve(dataclasses.replace(config, device=rank_device(config.device, ranks)))
    out = settings.config.out
    editor = None
    if not out.is_dir():
        editor = _checked_editor(settings)
        create_out_dir(out)
    with joined(out, settings.fingerprint, ranks):
        _check_previous(settings)
        if editor is None:
            editor = _checked_editor(settings)
        group = _meet(ranks) if ranks.meets else None
        try:
            state, own = _rank_work(settings, editor, ranks, (start_unix, start), progress)
            if group is not None:
                _wait_for_all(group, ranks)
        except OSError as err:  # e.g. the disk is full: this rank's shard in progress was dropped
            raise BuildError(os_error_message(err)) from err
        finally:
            if group is not None:
                _leave()
        if group is not None and ranks.rank == 0:
            return merge_run(out)
    if not ranks.meets:
        log.info("%s done; once all %d ranks are done, run: genaug finalize %s", ranks.describe(),
                 ranks.world_size, out)
    return rank_summary(out, state, own)


def _check_rendezvous_env(ranks: Ranks) -> None:
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"{ranks.launcher} started this as rank {ranks.rank} of {ranks.world_size}, but ${' and $'.join(missing)} "
            "is not set, so the ranks cannot meet; export MASTER_ADDR (the first node) and MASTER_PORT in the job "
            "script (docs/build.md), or run the ranks as a job array with --rank/--world-size and genaug finalize"
        )


@contextlib.contextmanager
def joined(out: Path, fingerprint: str, ranks: Ranks):
    """Hold --out as one rank of the run (see the module doc); ConfigError when that is refused."""
    state_dir(out).mkdir(exist_ok=True)
    fds: list[int] = []
    try:
        folder = os.open(out, os.O_RDONLY)
        fds.append(folder)
        gate = os.open(state_dir(out) / "join.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fds.append(gate)
        fcntl.flock(gate, fcntl.LOCK_EX)  # one joining rank at a time: a short critical section
        try:
            _share_folder(out, folder, fingerprint, ranks)
            own = os.open(state_dir(out) / f"rank-{ranks.rank}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fds.append(own)
            try:
                fcntl.flock(own, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                raise ConfigError(f"--out {out}: rank {ranks.rank} of this build is already running there; "
                                  "stop the other copy or wait for it to end") from err
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _share_folder(out: Path, folder: int, fingerprint: str, ranks: Ranks) -> None:
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # held shared by ranks of a run, or exclusively by a single-process build
    else:
        write_identity(out, fingerprint, ranks.world_size)  # the first rank to arrive: the run is ours
    try:
        fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError as err:
        raise ConfigError(f"--out {out}: another genaug build is writing there; wait for it to end or choose "
                          "another --out") from err
    identity = read_identity(out) or {}
    if identity != {"config_fingerprint": fingerprint, "world_size": ranks.world_size}:
        other = identity.get("world_size", "?")
        same = identity.get("config_fingerprint") == fingerprint
        raise ConfigError(
            f"--out {out}: another distributed build ({other} ranks{'' if same else ', other settings'}) is writing "
            f"there; wait for it to end, or start this one with the same settings and number of processes"
        )


def _meet(ranks: Ranks):
    """Join the gloo process group of the ranks; returns the group used for the final barrier."""
    import torch.distributed as dist

    try:
        dist.init_process_group("gloo", init_method="env://", rank=ranks.rank, world_size=ranks.world_size,
                                timeout=RENDEZVOUS_TIMEOUT)
        return dist.new_group(backend="gloo", timeout=FINISH_TIMEOUT)
    except RuntimeError as err:
        raise BuildError(f"{ranks.describe()}: the ranks did not all start within {RENDEZVOUS_TIMEOUT} ({err}); "
                         "check the launcher's log of the other ranks, then rerun") from err


def _wait_for_all(group, ranks: Ranks) -> None:
    import torch.distributed as dist

    log.info("%s: own shards done; waiting for the other ranks", ranks.describe())
    try:
        dist.barrier(group=group)
    except RuntimeError as err:
        reason = str(err).splitlines()[0][:200]
        raise BuildError(
            f"{ranks.describe()}: finished its shards, but another rank stopped before finishing its own ({reason}); "
            "the build is left unfinished: rerun the same command, with any number of processes, to complete it"
        ) from err


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class _NotOwned:
    """The chunks iter_batches passes over: the other ranks' and this rank's finished ones."""

    def __init__(self, done: Iterable[int], ranks: Ranks) -> None:
        self.done = set(done)
        self.ranks = ranks

    def __contains__(self, chunk: int) -> bool:
        return chunk in self.done or not self.ranks.owns(chunk)


class _Counted:
    """The source's items, counting how many were listed (every rank lists them all)."""

    def __init__(self, items: Iterable) -> None:
        self.items = items
        self.listed = 0

    def __iter__(self) -> Iterator:
        for item in self.items:
            self.listed = item.index + 1
            yield item

    def total(self, limit: int | None) -> int:
        return self.listed if limit is None else min(self.listed, limit)


class _FirstEvent:
    """Notes when the first batch of this rank is ready to go (the end of its start-up)."""

    def __init__(self, events: Iterator) -> None:
        self.events = events
        self.at: float | None = None

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        event = next(self.events)
        if self.at is None:
            self.at = time.perf_counter()
        return event


def _remove_own_temp_files(out: Path, ranks: Ranks) -> None:
    """Temporary files of this rank's shards (another rank may be writing its own right now)."""
    for path in out.glob(".shard-*"):
        match = _OWN_TEMP.fullmatch(path.name)
        if match and ranks.owns(int(match.group(1))):
            path.unlink(missing_ok=True)


def _rank_work(settings: BuildSettings, editor, ranks: Ranks, started: tuple[float, float],
               progress: Progress | None) -> tuple[dict, list[dict]]:
    """Build this rank's missing shards; returns its final state document and its shards' stats."""
    settings = with_batch_size(settings, editor)
    out, config = settings.config.out, settings.config
    _remove_own_temp_files(out, ranks)
    done = runfiles.done_shards(out, settings.fingerprint, only=ranks.owns)
    state = {"config_fingerprint": settings.fingerprint, "rank": ranks.rank, "world_size": ranks.world_size,
             "launcher": ranks.launcher, "status": RUNNING, "device": str(settings.device),
             "device_name": device_name(settings.device), "started_unix": started[0], "shards_resumed": len(done)}
    write_rank_state(out, state)
    state["batch1_ms_per_image"] = round(probe_batch1_ms(editor, settings.device, config.seed,
                                                                **probe_plan(settings.device)), 3)
    runfiles.write_manifest(out, manifest_document(settings, editor, status="running", started_at=utc_now()),
                            tag=f".rank{ranks.rank}")
    if progress is not None:
        progress.start(None)
    pool = make_executor(config.num_workers)
    runner = _Runner(settings, editor, pool, progress)
    runner.merge_later = True
    runner.stats.update(done)
    listing = _Counted(settings.source)
    events = _FirstEvent(iter_batches(listing, config.shard_size, config.batch_size, config.limit,
                                      _NotOwned(done, ranks)))
    drive(runner, pool, events)
    wall = time.perf_counter() - started[1]
    own = sorted(runner.stats.values(), key=lambda s: int(s["shard"]))
    state.update(status=DONE, inputs_total=listing.total(config.limit), inputs=runner.inputs,
                 shards_built=len(own) - len(done), wall_s=round(wall, 3),
                 startup_s=round((events.at or time.perf_counter()) - started[1], 3),
                 images_per_s=round(runner.inputs / wall, 3) if wall > 0 else 0.0)
    write_rank_state(out, state)
    log.info("%s: %d shard(s) built, %d resumed, %d inputs in %.1f s", ranks.describe(), state["shards_built"],
             len(done), runner.inputs, wall)
    return state, own
