"""Random access to GenCL pairs over an index.json: ``len()`` and ``dataset[i]``.

Index ``i`` counts samples in index.json order (shard by shard, tar order inside a shard). The first
access to a shard scans its tar headers once (member names, data offsets and sizes; no payload is
read), then each item is a few ``seek`` + ``read`` calls. Works with any sampler, including
``DistributedSampler``.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import tarfile
from typing import Callable

import torch

from genaug.format import group_members, is_remote
from genaug.loader.adapters import get_adapter
from genaug.loader.pairs import GenCLPairs
from genaug.loader.shardindex import resolve_shards
from genaug.loader.tarread import OversizedMember, ShardMismatchError, drop_oversized, member_cap
from genaug.loader.verify import verify_shards

log = logging.getLogger(__name__)

Member = tuple[int, int]  # (data offset in the tar, size in bytes)


def scan_tar(path: str) -> list[tuple[str, dict[str, Member]]]:
    """[(key, {extension: (offset, size)})] in tar order; key/extension split at the first '.' of the
    file name (the directory stays in the key), as webdataset groups members."""
    with tarfile.open(path, "r:") as tar:
        members = ((info.name, (info.offset_data, info.size)) for info in tar if info.isfile())
        return list(group_members(members, lower=False))


class GenCLMapDataset(torch.utils.data.Dataset):
    """GenCL pairs by index. source: index.json, a folder holding one, or a list of them (local files only).

    pairs / pair options / adapter / verify: as for :class:`genaug.loader.GenCLWebDataset`.
    Call ``set_epoch(e)`` each epoch for fresh pair draws (with persistent workers, do it before the
    DataLoader is created or the workers keep the old epoch).
    """

    def __init__(self, source, *, pairs: GenCLPairs | None = None, adapter="default", verify="size",
                 **pair_options):
        if pairs is not None and pair_options:
            raise ValueError(f"give either pairs= or pair options, not both (got {sorted(pair_options)})")
        index = resolve_shards(source)
        if index.nsamples is None:
            raise ValueError(f"{source!r} has no index.json; the map-style dataset needs one for its length "
                             "(use GenCLWebDataset for plain shard lists)")
        if any(is_remote(url) for url in index.urls):
            raise ValueError("GenCLMapDataset reads local shards only; use GenCLWebDataset for remote urls")
        verify_shards(index, verify)
        self.prefixes = index.key_prefixes
        self.pairs = pairs if pairs is not None else GenCLPairs(**pair_options)
        self.adapter: Callable = get_adapter(adapter)
        self.urls, self.sizes = index.urls, index.nsamples
        self.starts = list(itertools.accumulate(self.sizes, initial=0))
        self.epoch = 0
        self._tables: dict[int, list[tuple[str, dict[str, Member]]]] = {}

    @property
    def stats(self):
        return self.pairs.stats

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.starts[-1]

    def _table(self, shard: int) -> list[tuple[str, dict[str, Member]]]:
        if shard not in self._tables:
            table = scan_tar(self.urls[shard])
            if len(table) != self.sizes[shard]:
                raise ShardMismatchError(f"{self.urls[shard]!r} holds {len(table)} samples but index.json says "
                                 f"{self.sizes[shard]}; rebuild the index (genaug build --resume)")
            self._tables[shard] = table
        return self._tables[shard]

    def raw_sample(self, index: int) -> dict:
        """The undecoded sample ``{"__key__", "__url__", ext: bytes}`` at ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        shard = bisect.bisect_right(self.starts, index) - 1
        key, members = self._table(shard)[index - self.starts[shard]]
        prefix = "" if self.prefixes is None else self.prefixes[shard]
        sample = {"__key__": prefix + key, "__url__": self.urls[shard]}
        cap = member_cap()
        with open(self.urls[shard], "rb") as stream:
            for ext, (offset, size) in members.items():
                if size > cap:  # not read: see genaug.loader.tarread
                    sample[ext] = OversizedMember(f"{key}.{ext}", size, cap)
                    continue
                stream.seek(offset)
                sample[ext] = stream.read(size)
        return sample

    def __getitem__(self, index: int):
        index = int(index)
        sample = self.raw_sample(index)
        return self.adapter(self.pairs(drop_oversized(sample), epoch=self.epoch, index=index % len(self)))
