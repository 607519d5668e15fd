"""GenCL positive pairs from genaug shards for any contrastive trainer.

    from torch.utils.data import DataLoader
    from genaug.loader import GenCLWebDataset
    dataset = GenCLWebDataset("shards/", gamma=0.5, seed=0, batch_size=256)  # folder(s), index.json, pattern, list
    loader = DataLoader(dataset, batch_size=256, num_workers=8)              # len(loader) exact
    for (view1, view2), label, key in loader: ...

See docs/loader.md for the pair rule, transforms, the epoch split over ranks and workers, shard
verification, several runs at once and the trainer adapters.
"""

from genaug.loader.adapters import ADAPTERS, get_adapter
from genaug.loader.mapstyle import GenCLMapDataset
from genaug.loader.pairs import GenCLPairs, PairStats
from genaug.loader.shardindex import ShardIndex, read_index, resolve_shards
from genaug.loader.streaming import GenCLWebDataset, distributed_info
from genaug.loader.tarread import MAX_MEMBER_BYTES, ShardMismatchError
from genaug.loader.transforms import (
    ABLATION_OPS,
    TG_PRESETS,
    generative_transform,
    real_transform,
    vicreg_views,
)

__all__ = [
    "ABLATION_OPS",
    "ADAPTERS",
    "GenCLMapDataset",
    "GenCLPairs",
    "GenCLWebDataset",
    "MAX_MEMBER_BYTES",
    "PairStats",
    "ShardIndex",
    "ShardMismatchError",
    "TG_PRESETS",
    "distributed_info",
    "generative_transform",
    "get_adapter",
    "read_index",
    "real_transform",
    "resolve_shards",
    "vicreg_views",
]
