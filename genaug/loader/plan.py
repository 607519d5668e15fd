"""Who reads what in one epoch: the split of a stream over DDP ranks and DataLoader workers.

A pure function of (shard list and sizes, epoch order, rank, world size, worker, workers, batch size),
computed the same way in the main process (for ``len``) and in each worker (for the data).

With sample counts known (an index.json), the epoch is one sequence of ``total`` positions (shards in
the epoch's order, samples in tar order). Rank ``r`` takes ``per_rank = ceil(total / world)``
consecutive positions from ``r * per_rank`` (wrapping to the start for the last rank: the padding of
``DistributedSampler``, at most ``world - 1`` repeated samples, none with one process), so every rank
runs the same number of steps however shards fall. Its workers take consecutive runs of *whole
batches* of that (:func:`split_counts`), so a DataLoader over them delivers exactly
``ceil(per_rank / batch_size)`` batches (``per_rank // batch_size`` with ``drop_last``), which is what
``len(loader)`` says. A worker whose run starts or ends inside a shard reads it and skips the samples
before its start (tar headers and bytes, no decoding).

With counts unknown (a brace pattern or list of tars), ranks take whole shards (``urls[rank::world]``);
a rank's workers take whole shards when it has at least as many as workers, else every worker reads
the rank's shards and keeps every ``n``-th sample (so surplus workers share the work instead of idling).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Segment:
    """Read ``take`` samples of shard ``url`` after skipping ``skip`` (``take=None``: to its end)."""

    url: str
    skip: int = 0
    take: int | None = None
    start: int | None = None  # index.json position of the shard's first sample (None: unknown)
    nsamples: int | None = None  # the shard's sample count from index.json (None: unknown)


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """One reader's share of an epoch: its segments, a modulo filter over their concatenated samples
    (keep sample ``j`` when ``j % stride == offset``), and how many samples it yields (None: all)."""

    segments: tuple[Segment, ...]
    count: int | None
    stride: int = 1
    offset: int = 0


def split_counts(total: int, parts: int, batch_size: int = 1) -> list[int]:
    """Sizes of ``parts`` consecutive chunks of ``total`` items, each a whole number of batches except
    one that also takes the remainder (< batch_size): batched separately, the chunks give
    ``total // batch_size`` full batches and at most one partial one, as one batched stream would."""
    if parts < 1 or batch_size < 1 or total < 0:
        raise ValueError(f"split_counts(total={total}, parts={parts}, batch_size={batch_size})")
    full, rest = divmod(total, batch_size)
    sizes = [(full // parts + (i < full % parts)) * batch_size for i in range(parts)]
    sizes[full % parts] += rest
    return sizes


def per_rank(total: int, world_size: int) -> int:
    """Samples each rank reads per epoch when counts are known (padded like DistributedSampler)."""
    return math.ceil(total / world_size)


def indexed_plan(urls: Sequence[str], sizes: Sequence[int], starts: Sequence[int], rank: int, world_size: int,
                 worker: int, n_workers: int, batch_size: int = 1, cap: int | None = None) -> WorkerPlan:
    """The worker's segments when every shard's count is known. ``urls``/``sizes``/``starts`` are in the
    epoch's order (``starts`` are index.json positions); ``cap`` limits the samples per rank."""
    total = sum(sizes)
    length = per_rank(total, world_size) if cap is None else min(per_rank(total, world_size), cap)
    counts = split_counts(length, n_workers, batch_size)
    first = rank * per_rank(total, world_size) + sum(counts[:worker])
    return WorkerPlan(tuple(_circular_segments(urls, sizes, starts, first, counts[worker])), counts[worker])


def _circular_segments(urls, sizes, starts, first: int, count: int):
    """Segments covering positions first, first+1, ... (count of them) of the epoch sequence, mod total."""
    total = sum(sizes)
    if count == 0 or total == 0:
        return
    bounds = list(itertools.accumulate(sizes, initial=0))
    position, left = first % total, count
    while left:
        end = min(total, position + left)
        for k, url in enumerate(urls):
            lo, hi = max(position, bounds[k]), min(end, bounds[k + 1])
            if lo < hi:
                yield Segment(url, lo - bounds[k], hi - lo, starts[k], sizes[k])
        left -= end - position
        position = 0


def shard_plan(urls: Sequence[str], rank: int, world_size: int, worker: int, n_workers: int,
               count: int | None = None, starts: Mapping[str, int] | None = None,
               sizes: Mapping[str, int] | None = None) -> WorkerPlan:
    """The worker's segments when the epoch is not split by counts (see the module doc); ``count``: its
    quota; ``starts`` / ``sizes``: per-shard index positions and sample counts where known."""
    starts, sizes = starts or {}, sizes or {}
    mine = [Segment(u, start=starts.get(u), nsamples=sizes.get(u)) for u in list(urls)[rank::world_size]]
    if len(mine) >= n_workers:
        return WorkerPlan(tuple(mine[worker::n_workers]), count)
    return WorkerPlan(tuple(mine), count, stride=n_workers, offset=worker)
