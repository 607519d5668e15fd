"""Streaming GenCL pairs from genaug shards with webdataset's tar reader.

Stages per epoch (in each DataLoader worker): shard list -> seeded shard shuffle (same permutation on
every rank) -> this rank's and worker's share (genaug.loader.plan: sample ranges with an index.json,
whole shards or every n-th sample without) -> tar members (size-capped, counts checked:
genaug.loader.tarread) grouped as webdataset groups them -> ``wds.shuffle`` buffer -> decode + pair
rule (after the shuffle, so the buffer holds compressed bytes) -> adapter.

``resampled=True`` draws shards with replacement instead (like ``wds.ResampledShards``) and stops
each rank after ``samples_per_epoch`` samples (like ``.with_epoch``).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from typing import Callable, Iterator, Mapping

import torch
import webdataset as wds

from genaug.loader.adapters import get_adapter
from genaug.loader.pairs import GenCLPairs
from genaug.loader.plan import Segment, WorkerPlan, indexed_plan, per_rank, shard_plan, split_counts
from genaug.loader.shardindex import ShardIndex, resolve_shards
from genaug.loader.tarread import drop_oversized, segment_samples
from genaug.loader.verify import verify_mode, verify_shards
from genaug.seeding import sample_seed

log = logging.getLogger(__name__)

PAIR_ERRORS = (KeyError, OSError, ValueError, SyntaxError)  # a bad sample: handed to `handler`


def distributed_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): explicit values, else torch.distributed, else $RANK/$WORLD_SIZE, else (0, 1)."""
    if rank is None and world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if rank is None or world_size is None:
        raise ValueError(f"rank={rank}, world_size={world_size}: give both or neither")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}: need world_size >= 1 and 0 <= rank < world_size")
    return int(rank), int(world_size)


def worker_info() -> tuple[int, int]:
    """(worker id, number of workers) inside a DataLoader worker, (0, 1) in the main process."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class GenCLWebDataset(torch.utils.data.IterableDataset):
    """GenCL positive pairs streamed from shards; use with ``torch.utils.data.DataLoader``.

    source: index.json, shard folder, brace pattern, list of shards, or list of run folders / index files.
    pairs: a :class:`GenCLPairs`; or give its options here (gamma, seed, image_size, tg, ...).
    adapter: 'default' ((v1, v2), label, key) | 'solo-learn' | 'lightly' | 'vicreg' | 'dict' | callable.
    shuffle_shards / shuffle_buffer: shard permutation per epoch and sample buffer size (0 = off).
    resampled / samples_per_epoch: shards with replacement, exactly samples_per_epoch per rank per
    epoch (default: index total // world_size); without resampled, samples_per_epoch is a cap with an
    index.json and an exact count without one (shards are read again when they run out).
    batch_size: the DataLoader's batch size (per rank); given, workers get whole batches so that
    ``len(loader)`` equals the batches delivered with any number of workers (see genaug.loader.plan).
    rank / world_size: explicit DDP position (default: torch.distributed, then $RANK/$WORLD_SIZE).
    verify: 'size' (default) | 'md5' | 'none': shards checked against index.json before the first step.
    handler: webdataset error handler for bad samples (default: raise). Shard-level faults always raise.
    """

    def __init__(self, source, *, pairs: GenCLPairs | None = None, adapter="default",
                 shuffle_shards: bool = True, shuffle_buffer: int = 1000, resampled: bool = False,
                 samples_per_epoch: int | None = None, rank: int | None = None,
                 world_size: int | None = None, batch_size: int | None = None, verify="size",
                 handler: Callable = wds.reraise_exception, **pair_options):
        super().__init__()
        if pairs is not None and pair_options:
            raise ValueError(f"give either pairs= or pair options, not both (got {sorted(pair_options)})")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer={shuffle_buffer}: use 0 (no shuffling) or a positive size")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size}: give the DataLoader's batch size (>= 1) or None")
        self.pairs = pairs if pairs is not None else GenCLPairs(**pair_options)
        self.adapter = get_adapter(adapter)
        self.verify = verify_mode(verify)
        self.index: ShardIndex = resolve_shards(source)
        self.rank, self.world_size = distributed_info(rank, world_size)
        self.shuffle_shards, self.shuffle_buffer = shuffle_shards, int(shuffle_buffer)
        self.resampled, self.handler = resampled, handler
        self.batch_size = None if batch_size is None else int(batch_size)
        self.samples_per_epoch = self._samples_per_epoch(samples_per_epoch)
        self.epoch = 0
        self._check_split()
        verify_shards(self.index, self.verify)
        self._prefix = self.index.key_prefix()
        self._sizes, self._starts = {}, {}
        if self.index.nsamples is not None:
            self._sizes = dict(zip(self.index.urls, self.index.nsamples, strict=True))
            starts = list(itertools.accumulate(self.index.nsamples, initial=0))[:-1]
            self._starts = dict(zip(self.index.urls, starts, strict=True))

    def _samples_per_epoch(self, samples_per_epoch: int | None) -> int | None:
        if samples_per_epoch is not None:
            if int(samples_per_epoch) < 1:
                raise ValueError(f"samples_per_epoch={samples_per_epoch}: must be >= 1 (samples per rank)")
            return int(samples_per_epoch)
        if self.resampled:
            if self.index.total is None:
                raise ValueError("resampled=True needs samples_per_epoch (samples per rank per epoch) when the "
                                 "source has no index.json")
            return max(1, self.index.total // self.world_size)
        return None

    def _check_split(self) -> None:
        """Refuse, here in the main process, a split that would starve a rank; warn when ranks may differ."""
        if self.resampled or self.index.nsamples is not None or self.world_size == 1:
            return  # with sample counts every rank gets the same number (plan.py); one rank never waits
        n_urls = len(self.index.urls)
        if n_urls < self.world_size:
            raise ValueError(
                f"{n_urls} shard(s) cannot feed {self.world_size} rank(s): without index.json the ranks split "
                "whole shards, so some would get no data and DDP would hang. Point the loader at the run's "
                "index.json (ranks then split samples), use resampled=True with samples_per_epoch, or "
                "rebuild with a smaller --shard-size")
        if self.samples_per_epoch is None:
            log.warning("%d shards over %d ranks without index.json: sample counts per rank are unknown and may "
                        "differ (a DDP step may hang at the end of the epoch); point the loader at index.json or "
                        "pass samples_per_epoch", n_urls, self.world_size)

    @property
    def stats(self):
        """Pair counters (generative / real / fallback), merged over DataLoader workers."""
        return self.pairs.stats

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (like DistributedSampler); workers pick it up when they start."""
        self.epoch = int(epoch)

    def epoch_urls(self) -> list[str]:
        """All shard urls in this epoch's order (identical on every rank)."""
        urls = list(self.index.urls)
        if self.shuffle_shards:
            random.Random(sample_seed(self.pairs.seed, "shards", f"epoch/{self.epoch}")).shuffle(urls)
        return urls

    def __len__(self) -> int:
        """Samples this rank yields per epoch (exact in every mode; see genaug.loader.plan)."""
        if self.resampled:
            return self.samples_per_epoch
        if self.index.nsamples is None:
            if self.samples_per_epoch is not None:
                return self.samples_per_epoch
            raise TypeError(f"length of {self.index.name!r} is unknown: point the loader at index.json or "
                            "pass samples_per_epoch")
        length = per_rank(self.index.total, self.world_size)
        return length if self.samples_per_epoch is None else min(length, self.samples_per_epoch)

    def worker_plan(self, worker: int = 0, n_workers: int = 1) -> WorkerPlan:
        """What this rank's DataLoader worker reads this epoch (resampled: its quota only)."""
        batch = self.batch_size or 1
        quota = None if self.samples_per_epoch is None else split_counts(self.samples_per_epoch, n_workers,
                                                                         batch)[worker]
        if self.resampled:
            return WorkerPlan((), quota)
        urls = self.epoch_urls()
        if self.index.nsamples is None:
            return shard_plan(urls, self.rank, self.world_size, worker, n_workers, quota, self._starts, self._sizes)
        return indexed_plan(urls, [self._sizes[u] for u in urls], [self._starts[u] for u in urls], self.rank,
                            self.world_size, worker, n_workers, batch, self.samples_per_epoch)

    def _segments(self, plan: WorkerPlan, worker: int) -> Iterator[Segment]:
        if not self.resampled:
            return iter(plan.segments)
        rng = random.Random(sample_seed(self.pairs.seed, f"{self.rank}/{worker}", f"resample/{self.epoch}"))
        urls = self.epoch_urls()
        return (Segment(u, start=self._starts.get(u), nsamples=self._sizes.get(u))
                for u in (rng.choice(urls) for _ in itertools.count()))

    def raw_samples(self, worker: int = 0, n_workers: int = 1, plan: WorkerPlan | None = None) -> Iterator[dict]:
        """Undecoded samples of this rank/worker in shuffled order, with ``__index__`` (-1 if unknown)."""
        plan = plan if plan is not None else self.worker_plan(worker, n_workers)
        samples = itertools.chain.from_iterable(segment_samples(s) for s in self._segments(plan, worker))
        if plan.stride > 1:
            samples = itertools.islice(samples, plan.offset, None, plan.stride)
        if self._prefix:
            samples = (dict(s, __key__=self._prefix[s["__url__"]] + s["__key__"]) for s in samples)
        if self.shuffle_buffer > 1:
            rng = random.Random(sample_seed(self.pairs.seed, f"{self.rank}/{worker}", f"buffer/{self.epoch}"))
            samples = wds.shuffle(self.shuffle_buffer, min(self.shuffle_buffer, 100), rng=rng)(samples)
        return samples

    def __iter__(self) -> Iterator:
        worker, n_workers = worker_info()
        plan = self.worker_plan(worker, n_workers)
        for item in self._items(plan, worker, n_workers):
            yield self.adapter(item)

    def _items(self, plan: WorkerPlan, worker: int, n_workers: int) -> Iterator[dict]:
        """Exactly plan.count pairs when it is set: a pass that ends short (samples skipped by the handler,
        or shards without index.json shorter than samples_per_epoch) is followed by another one."""
        produced = 0
        while plan.count is None or produced < plan.count:
            before = produced
            for item in self._pairs(self.raw_samples(worker, n_workers, plan)):
                yield item
                produced += 1
                if produced == plan.count:
                    return
            if plan.count is None or produced == before:
                if plan.count is not None:
                    log.error("worker %d of rank %d: no usable sample in its share; it yields %d of %d",
                              worker, self.rank, produced, plan.count)
                return
            log.info("worker %d of rank %d: share ran out after %d of %d samples; reading it again",
                     worker, self.rank, produced, plan.count)

    def _pairs(self, samples: Iterator[Mapping]) -> Iterator[dict]:
        for sample in samples:
            try:
                yield self.pairs(drop_oversized(sample), epoch=self.epoch, index=sample["__index__"])
            except PAIR_ERRORS as err:
                log.warning("sample %s from %s: %s", sample.get("__key__"), sample.get("__url__"), err)
                if not self.handler(err):
                    return
