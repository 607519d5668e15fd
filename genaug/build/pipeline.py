"""`genaug build`: stream inputs -> decode workers -> editor on the device -> encode workers -> shards.

Input chunk i (``shard_size`` inputs in source order) becomes ``shard-{i:04d}.tar``. Batches never
span chunks, so a finished chunk is one atomic unit that resume can skip without decoding. CPU work
overlaps the model: decode tasks for the next batches (also of the next chunk) and encode tasks of
the previous ones run in the worker pool while the editor works; both windows are bounded, so
memory does not grow with the number of inputs.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import logging
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator, Protocol

from genaug.build import runfiles
from genaug.build.batches import (
    EditorError,
    class_problem,
    finish_edit,
    make_members,
    model_input,
    run_info,
    start_edit,
)
from genaug.build.chunks import _Batch, _ChunkEnd, count_inputs_in_background, iter_batches
from genaug.build.config import BuildConfig, BuildSettings, ConfigError, create_out_dir, resolve
from genaug.build.devicedecode import decode_on_device
from genaug.build.editor import make_editor
from genaug.build.finisher import ShardFinisher
from genaug.build.manifest import manifest_document, shard_facts, timing, utc_now
from genaug.build.probe import probe_batch1_ms, probe_plan
from genaug.build.shard import ShardRun
from genaug.build.workers import decode_batch, encode_batch, make_executor
from genaug.methods.editing import AUTO_BATCH, auto_batch_size
from genaug.stopping import Terminated, os_error_message

log = logging.getLogger(__name__)

# errors.jsonl and index.json are rewritten from all stats files after a shard at most this often (and
# always at the end, on a stop, and by a resume): rewriting them after every shard made runs of many
# small shards quadratic (2,500 shards: most of the run's time)
RUN_FILES_EVERY_S = 10.0

__all__ = ["BuildConfig", "BuildError", "ConfigError", "BuildSummary", "Progress", "run_build"]


class BuildError(RuntimeError):
    """The build stopped (e.g. the editor failed); completed shards stay valid and resumable."""


class Progress(Protocol):
    """What the build reports progress to (the CLI wraps tqdm). It may also have
    ``set_total(total: int)``, called from a counting thread once the number of inputs is known."""

    def start(self, total: int | None) -> None: ...

    def update(self, n: int) -> None: ...


@dataclasses.dataclass(frozen=True)
class BuildSummary:
    """Counts of a finished build, for the CLI to print."""

    out: Path  # output folder
    inputs: int  # inputs covered by the shards (this run and resumed ones)
    samples: int  # pairs written
    errors: int  # inputs skipped (listed in errors.jsonl)
    shards: int  # shards in the output
    shards_resumed: int  # shards found complete and skipped
    empty_shards: int  # shards with no sample (every input of the chunk skipped)
    wall_s: float  # seconds this run took
    images_per_s: float  # inputs of this run per second


class _Runner:
    """The main loop: keeps decode and encode tasks in flight and writes finished batches in order. The
    editor's output of a batch is waited for (and its params read) only after the next batch has been
    handed to the editor (`edit_lag` batches later), so a CUDA device never idles on the host within a
    shard; on the CPU the editor has finished when it returns, and the bytes are the same either way."""

    edit_lag = 1  # batches handed to the editor before the oldest one is waited for (0: wait at once)

    def __init__(self, settings: BuildSettings, editor, pool: cf.Executor, progress: Progress | None):
        self.settings = settings
        self.config = settings.config
        self.editor = editor
        self.pool = pool
        self.progress = progress
        self.info = run_info(settings)
        self.facts = shard_facts(settings)
        self.input = model_input(settings.preset, editor)  # how the decode workers resize, classes accepted
        workers = max(1, self.config.num_workers)
        self.decode_window = 2 * workers + 1  # decoded batches in flight
        self.encode_window = workers + 1  # model outputs waiting for encode
        self.shards: dict[int, ShardRun] = {}
        self.in_flight = collections.deque()  # (ShardRun, EditInFlight | None, n inputs): edited, not yet waited for
        self.pending = collections.deque()  # (ShardRun, EditedBatch | None, encode future | None, n inputs)
        self.stats: dict[int, dict] = {}  # shard index -> stats of every complete shard (small)
        self.inputs = 0
        self._mark = time.perf_counter()  # end of the previous shard: a shard's wall time starts here
        self._run_files_at = float("-inf")  # when errors.jsonl and index.json were last rewritten
        self.merge_later = False  # True when several ranks share --out (genaug.build.finalize merges the run files)
        self.finisher = ShardFinisher()  # closes full shards off this thread

    def run(self, events: Iterator[_Batch | _ChunkEnd]) -> None:
        queue = collections.deque()

        def top_up() -> None:
            in_flight = sum(isinstance(e, _Batch) for e, _ in queue)
            while in_flight < self.decode_window:
                event = next(events, None)
                if event is None:
                    return
                future = None
                if isinstance(event, _Batch):
                    future = self.pool.submit(decode_batch, event.items, self.input.resolution, self.input.resample,
                                              self.settings.decode_device is not None)
                    in_flight += 1
                queue.append((event, future))

        top_up()
        while queue:
            event, future = queue.popleft()
            top_up()
            shard = self._shard(event.chunk)
            if isinstance(event, _ChunkEnd):
                self._finish_shard(shard)
            else:
                decoded, seconds = future.result()
                shard.timings["read_decode"] += seconds
                if self.settings.decode_device is not None:  # the JPEGs the workers left undecoded
                    start = time.perf_counter()
                    decoded = decode_on_device(decoded, self.input.resolution, self.input.resample,
                                               self.settings.decode_device)
                    shard.timings["read_decode"] += time.perf_counter() - start
                self._edit(shard, decoded)
        self._collect_finished(block=True)
        self.finisher.close()

    def _shard(self, chunk: int) -> ShardRun:
        if chunk not in self.shards:
            self.shards[chunk] = ShardRun(self.config.out, chunk, start=self._mark, facts=self.facts)
        return self.shards[chunk]

    def _edit(self, shard: ShardRun, decoded: list) -> None:
        shard.inputs += len(decoded)
        decoded = [self._check_class(shard.unique(d)) for d in decoded]
        for bad in (d for d in decoded if d.prepared is None):
            shard.add_error(bad)
        good = [d for d in decoded if d.prepared is not None]
        flight = None
        if good:
            try:
                flight = start_edit(self.editor, good, self.settings, shard)
            except EditorError as err:
                raise BuildError(str(err)) from err
        self.in_flight.append((shard, flight, len(decoded)))
        while len(self.in_flight) > self.edit_lag:  # the device already has the next batch when we wait
            self._complete_edit()

    def _complete_edit(self) -> None:
        """The oldest batch in flight: wait for its host copy, read its params, hand it to the encoders."""
        shard, flight, ninputs = self.in_flight.popleft()
        edited, future = None, None
        if flight is not None:
            try:
                edited = finish_edit(flight, self.settings, shard)
            except EditorError as err:
                raise BuildError(str(err)) from err
            future = self.pool.submit(encode_batch, edited.aug, self.config.aug_format, self.config.quality)
        self.pending.append((shard, edited, future, ninputs))
        while len(self.pending) > self.encode_window:
            self._write_next()

    def _check_class(self, decoded):
        """`decoded`, or a skipped copy of it when its class cannot condition the editor."""
        if decoded.prepared is None:
            return decoded
        reason = class_problem(decoded.item, self.settings.label_options, self.input.num_classes)
        return decoded if reason is None else dataclasses.replace(decoded, prepared=None, reason=reason)

    def _write_next(self) -> None:
        shard, edited, future, ninputs = self.pending.popleft()
        if edited is not None:
            encoded, seconds = future.result()
            shard.timings["encode"] += seconds
            start = time.perf_counter()
            for sample, aug_bytes in zip(edited.samples, encoded):
                key, members = make_members(sample, aug_bytes, self.info)
                shard.add(key, members)
            shard.timings["write"] += time.perf_counter() - start
        if self.progress is not None:
            self.progress.update(ninputs)

    def _finish_shard(self, shard: ShardRun) -> None:
        """Write the shard's last samples here, then close it on the finisher thread (see finisher.py)."""
        while self.in_flight:
            self._complete_edit()
        while self.pending:
            self._write_next()
        self.finisher.submit(shard)
        self.inputs += shard.inputs
        del self.shards[shard.index]
        self._mark = time.perf_counter()
        self._collect_finished(block=False)

    def _collect_finished(self, block: bool) -> None:
        finished = self.finisher.collect(block)
        for shard, stats in finished:
            self.stats[shard.index] = stats
            log.info("%s: %d samples, %d skipped, %.1f images/s", shard.name,
                     stats["nsamples"], stats["nerrors"], stats["images_per_s"])
        if finished and time.perf_counter() - self._run_files_at >= RUN_FILES_EVERY_S:
            self.write_run_files()

    def write_run_files(self) -> None:
        if self.merge_later:
            return
        runfiles.write_run_files(self.config.out, self.stats.values())
        self._run_files_at = time.perf_counter()

    def abort(self) -> None:
        """Drop the shards being written; bring errors.jsonl and index.json up to the finished ones."""
        self.finisher.close()  # shards already handed over finish (valid); those being filled are dropped
        try:  # record the shards that finished meanwhile in the run files, as if they had finished inline
            self._collect_finished(block=True)
        except OSError as err:  # a second failure (e.g. the disk is still full) must not hide the first
            log.warning("while stopping: a finished shard could not be recorded: %s", err)
        for shard in self.shards.values():
            shard.abort()
        try:
            self.write_run_files()
        except OSError as err:  # e.g. the disk is full: a rerun rewrites them
            log.warning("cannot update errors.jsonl and index.json in %s: %s", self.config.out, err)


def run_build(config: BuildConfig, progress: Progress | None = None) -> BuildSummary:
    """Validate `config`, then build (or resume) the shards in `config.out`.

    Raises ConfigError before any work for bad settings, BuildError when the editor fails or an OS error
    (a full disk, an unreadable --out) stops it; KeyboardInterrupt / genaug.stopping.Terminated pass
    through after the manifest is marked interrupted.
    """
    start, started_at = time.perf_counter(), utc_now()
    settings = resolve(config)  # creates nothing
    out = settings.config.out
    try:
        if out.is_dir():  # lock it while checking, so a running build is refused before the model loads
            with runfiles.exclusive(out):
                _check_previous(settings)
                editor = _checked_editor(settings)
                return _build(settings, editor, start, started_at, progress)
        editor = _checked_editor(settings)
        create_out_dir(out)  # every check has passed: only now does --out exist
        with runfiles.exclusive(out):
            _check_previous(settings)  # another build may have made it meanwhile
            return _build(settings, editor, start, started_at, progress)
    except OSError as err:  # reading --out (lock, previous build) failed: nothing was written
        raise BuildError(os_error_message(err)) from err


def with_batch_size(settings: BuildSettings, editor) -> BuildSettings:
    """`settings` with --batch-size auto replaced by the number it becomes for `editor` (and recorded as such)."""
    if settings.config.batch_size != AUTO_BATCH:
        return settings
    batch_size = auto_batch_size(editor)
    log.info("--batch-size auto: %d (the editor's compute chunk x its chunk threads)", batch_size)
    return dataclasses.replace(settings, config=dataclasses.replace(settings.config, batch_size=batch_size))


def _check_previous(settings: BuildSettings) -> None:
    config = settings.config
    runfiles.check_previous_build(config.out, config.overwrite, settings.fingerprint, settings.fingerprint_inputs)


def _checked_editor(settings: BuildSettings):
    """The editor, after the checks that need it (nothing in --out has changed yet)."""
    editor = make_editor(settings)
    try:
        model_input(settings.preset, editor)
    except EditorError as err:
        raise BuildError(str(err)) from err
    return editor


def _build(settings: BuildSettings, editor, start: float, started_at: str,
           progress: Progress | None) -> BuildSummary:
    """Every write of the run inside: an OS error anywhere (the first manifest write included) is one
    clean BuildError naming the file; the run's temporary files are removed."""
    settings = with_batch_size(settings, editor)
    out = settings.config.out
    manifest_written = False
    try:
        done = runfiles.prepare_out(out, settings.config.overwrite, settings.fingerprint)
        if done:
            log.info("%d shard(s) already complete in %s; skipping them", len(done), out)
        batch1_ms = probe_batch1_ms(editor, settings.device, settings.config.seed, **probe_plan(settings.device))
        runfiles.write_manifest(out, manifest_document(settings, editor, status="running", started_at=started_at))
        manifest_written = True
        runner = _run_shards(settings, editor, progress, done)
        return _finish(settings, editor, start, started_at, batch1_ms, runner, len(done))
    except OSError as err:  # e.g. the disk is full, or --out or the data became unreadable
        runfiles.remove_temp_files_quietly(out)
        raise BuildError(os_error_message(err)) from err
    except (KeyboardInterrupt, Terminated):  # Ctrl-C or SIGTERM: the current shard was dropped
        runfiles.remove_temp_files_quietly(out)
        if manifest_written:
            _mark_interrupted(settings, editor, started_at)
        raise


def _run_shards(settings: BuildSettings, editor, progress: Progress | None, done: dict[int, dict]) -> _Runner:
    """Build the shards not in `done`; the runner (its stats) when all are written."""
    if progress is not None:
        progress.start(settings.config.limit)
        progress.update(sum(int(s.get("ninputs", 0)) for s in done.values()))
        count_inputs_in_background(settings.source, settings.config.limit, progress)
    pool = make_executor(settings.config.num_workers)
    runner = _Runner(settings, editor, pool, progress)
    runner.stats.update(done)
    events = iter_batches(iter(settings.source), settings.config.shard_size, settings.config.batch_size,
                          settings.config.limit, set(done))
    drive(runner, pool, events)
    return runner


def drive(runner: _Runner, pool: cf.Executor, events: Iterator[_Batch | _ChunkEnd]) -> None:
    """Run `events` through `runner`: a dead worker becomes BuildError, any failure drops the shards being
    filled, and the worker pool is always shut down."""
    try:
        runner.run(events)
    except BrokenProcessPool as err:
        runner.abort()
        raise BuildError(f"a worker process died ({err}); it may have run out of memory: try fewer "
                         f"--num-workers. Completed shards are valid; rerun to resume") from err
    except BaseException:
        runner.abort()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _mark_interrupted(settings: BuildSettings, editor, started_at: str) -> None:
    """On Ctrl-C or SIGTERM: manifest.json status "interrupted" (best effort: the disk may be the problem)."""
    try:
        document = manifest_document(settings, editor, status="interrupted", started_at=started_at,
                                     stopped_at=utc_now())
        runfiles.write_manifest(settings.config.out, document)
    except OSError as err:
        log.warning("cannot mark manifest.json interrupted: %s", err)


def _finish(settings: BuildSettings, editor, start: float, started_at: str, batch1_ms: float, runner: _Runner,
            resumed: int) -> BuildSummary:
    out = settings.config.out
    stats = sorted(runner.stats.values(), key=lambda s: int(s["shard"]))
    runfiles.write_run_files(out, stats)
    wall = time.perf_counter() - start
    counts = {
        "inputs": sum(int(s.get("ninputs", 0)) for s in stats),
        "samples": sum(int(s["nsamples"]) for s in stats),
        "errors": sum(int(s["nerrors"]) for s in stats),
        "shards": len(stats),
        "shards_resumed": resumed,
        "empty_shards": sum(1 for s in stats if int(s["nsamples"]) == 0),
    }
    runfiles.write_manifest(out, manifest_document(
        settings, editor, status="complete", started_at=started_at, finished_at=utc_now(),
        wall_time_s=round(wall, 3), counts=counts, timing=timing(settings, batch1_ms, stats),
    ))
    summary = BuildSummary(out=out, wall_s=wall, images_per_s=runner.inputs / wall if wall > 0 else 0.0, **counts)
    log.info("build finished in %.1f s: %d pairs, %d inputs skipped, %d shards (%d resumed, %d empty) in %s",
             wall, summary.samples, summary.errors, summary.shards, summary.shards_resumed, summary.empty_shards, out)
    return summary
