"""Streaming GenCL pairs from genaug shards with webdataset's tar reader.

Stages per epoch (in each DataLoader worker): shard list -> seeded shard shuffle (same permutation on
every rank) -> split by node (``urls[rank::world_size]``, as ``wds.split_by_node``) -> split by
worker (as ``wds.split_by_worker``) -> ``wds.tarfile_to_samples`` -> ``wds.shuffle`` buffer ->
decode + pair rule (after the shuffle, so the buffer holds compressed bytes) -> adapter.

``resampled=True`` draws shards with replacement instead (like ``wds.ResampledShards``) and stops
each rank after ``samples_per_epoch`` samples (like ``.with_epoch``), so all ranks run the same
number of batches; use it for DDP when shards do not divide evenly.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from typing import Callable, Iterator, Mapping

import torch
import webdataset as wds

from genaug.loader.adapters import get_adapter, needs_index
from genaug.loader.pairs import GenCLPairs
from genaug.loader.shardindex import ShardIndex, resolve_shards
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

    source: index.json, shard folder, brace pattern or list (see genaug.loader.shardindex).
    pairs: a :class:`GenCLPairs`; or give its options here (gamma, seed, image_size, tg, ...).
    adapter: 'default' ((v1, v2), label, key) | 'solo-learn' | 'lightly' | 'vicreg' | 'dict' | callable.
    shuffle_shards / shuffle_buffer: shard permutation per epoch and sample buffer size (0 = off).
    resampled / samples_per_epoch: shards with replacement, exactly samples_per_epoch per rank per
    epoch (default: index total // world_size); without resampled, samples_per_epoch is a cap.
    rank / world_size: explicit DDP position (default: torch.distributed, then $RANK/$WORLD_SIZE).
    handler: webdataset error handler for unreadable tars and samples (default: raise).
    """

    def __init__(self, source, *, pairs: GenCLPairs | None = None, adapter="default",
                 shuffle_shards: bool = True, shuffle_buffer: int = 1000, resampled: bool = False,
                 samples_per_epoch: int | None = None, rank: int | None = None,
                 world_size: int | None = None, handler: Callable = wds.reraise_exception,
                 **pair_options):
        super().__init__()
        if pairs is not None and pair_options:
            raise ValueError(f"give either pairs= or pair options, not both (got {sorted(pair_options)})")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer={shuffle_buffer}: use 0 (no shuffling) or a positive size")
        self.pairs = pairs if pairs is not None else GenCLPairs(**pair_options)
        self.adapter = get_adapter(adapter)
        self.index: ShardIndex = resolve_shards(source)
        if needs_index(self.adapter) and self.index.sizes is None:
            raise ValueError(f"{self.index.name!r}: remote shards without an index.json give no sample indexes, "
                             "and solo-learn selects negatives by index; point the loader at the build's "
                             "index.json")
        self.rank, self.world_size = distributed_info(rank, world_size)
        self.shuffle_shards, self.shuffle_buffer = shuffle_shards, int(shuffle_buffer)
        self.resampled, self.handler = resampled, handler
        self.samples_per_epoch = self._samples_per_epoch(samples_per_epoch)
        self.epoch = 0
        self._starts = None
        if self.index.sizes is not None:  # index.json, or counted local tars: exact, unique indexes
            starts = itertools.accumulate(self.index.sizes, initial=0)
            self._starts = dict(zip(self.index.urls, starts))
        if not resampled and len(self.index.urls) % self.world_size:
            log.warning("%d shards over %d ranks: ranks get unequal sample counts (a DDP step may hang at the "
                        "end of the epoch); use resampled=True", len(self.index.urls), self.world_size)

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

    def rank_urls(self) -> list[str]:
        """This rank's shards this epoch (non-resampled mode)."""
        return self.epoch_urls()[self.rank :: self.world_size]

    def __len__(self) -> int:
        """Samples this rank yields per epoch: samples_per_epoch (a cap when not resampled) or index.json."""
        if self.resampled:
            return self.samples_per_epoch
        if self.index.nsamples is None:
            if self.samples_per_epoch is not None:
                return self.samples_per_epoch
            raise TypeError(f"length of {self.index.name!r} is unknown: point the loader at index.json or "
                            "pass samples_per_epoch")
        sizes = dict(zip(self.index.urls, self.index.nsamples))
        exact = sum(sizes[u] for u in self.rank_urls())
        return exact if self.samples_per_epoch is None else min(exact, self.samples_per_epoch)

    def _worker_urls(self, worker: int, n_workers: int) -> Iterator[str]:
        if self.resampled:
            rng = random.Random(sample_seed(self.pairs.seed, f"{self.rank}/{worker}", f"resample/{self.epoch}"))
            urls = self.epoch_urls()
            return (rng.choice(urls) for _ in itertools.count())
        n_urls, needed = len(self.index.urls), self.world_size * n_workers
        if n_urls < needed:
            raise ValueError(
                f"{n_urls} shard(s) cannot feed {self.world_size} rank(s) x {n_workers} DataLoader worker(s) "
                f"= {needed} readers: some would get no data and DDP would hang. Use num_workers <= "
                f"{max(1, n_urls // self.world_size)}, resampled=True, or rebuild with a smaller --shard-size")
        return iter(self.rank_urls()[worker::n_workers])

    def _worker_quota(self, worker: int, n_workers: int) -> int | None:
        """This worker's share of samples_per_epoch (the shares of a rank's workers sum to it)."""
        if self.samples_per_epoch is None:
            return None
        total = self.samples_per_epoch
        return total // n_workers + (worker < total % n_workers)

    def raw_samples(self, worker: int = 0, n_workers: int = 1) -> Iterator[dict]:
        """Undecoded samples of this rank/worker in shuffled order, with ``__index__`` (-1 if unknown)."""
        urls = self._worker_urls(worker, n_workers)
        samples = wds.tarfile_to_samples(handler=self.handler)({"url": u} for u in urls)
        samples = self._with_index(samples)
        if self.shuffle_buffer > 1:
            rng = random.Random(sample_seed(self.pairs.seed, f"{self.rank}/{worker}", f"buffer/{self.epoch}"))
            samples = wds.shuffle(self.shuffle_buffer, min(self.shuffle_buffer, 100), rng=rng)(samples)
        return samples

    def _with_index(self, samples: Iterator[dict]) -> Iterator[dict]:
        """Annotate index.json positions (a resampled shard drawn twice in a row wraps around)."""
        sizes = {} if self.index.sizes is None else dict(zip(self.index.urls, self.index.sizes))
        url, position = None, 0
        for sample in samples:
            if sample["__url__"] != url:
                url, position = sample["__url__"], 0
            start = None if self._starts is None else self._starts.get(url)
            sample["__index__"] = -1 if start is None else start + position % max(1, sizes[url])
            position += 1
            yield sample

    def __iter__(self) -> Iterator:
        worker, n_workers = worker_info()
        quota = self._worker_quota(worker, n_workers)
        items = self._pairs(self.raw_samples(worker, n_workers))
        if quota is not None:
            items = itertools.islice(items, quota)
        for item in items:
            yield self.adapter(item)

    def _pairs(self, samples: Iterator[Mapping]) -> Iterator[dict]:
        for sample in samples:
            try:
                yield self.pairs(sample, epoch=self.epoch, index=sample["__index__"])
            except PAIR_ERRORS as err:
                log.warning("sample %s from %s: %s", sample.get("__key__"), sample.get("__url__"), err)
                if not self.handler(err):
                    return

