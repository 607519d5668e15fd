"""GenCL positive pairs from genaug shards for any contrastive trainer.

    from torch.utils.data import DataLoader
    from genaug.loader import GenCLWebDataset
    dataset = GenCLWebDataset("shards/", gamma=0.5, seed=0)          # index.json, folder, pattern or list
    loader = DataLoader(dataset, batch_size=256, num_workers=8)
    for (view1, view2), label, key in loader: ...

See docs/loader.md for the pair rule, transforms, DDP and the trainer adapters.
"""

from genaug.loader.adapters import ADAPTERS, SoloLearnAdapter, get_adapter
from genaug.loader.mapstyle import GenCLMapDataset
from genaug.loader.pairs import GenCLPairs, PairStats
from genaug.loader.shardindex import ShardIndex, read_index, resolve_shards
from genaug.loader.streaming import GenCLWebDataset, distributed_info
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
    "PairStats",
    "ShardIndex",
    "SoloLearnAdapter",
    "TG_PRESETS",
    "distributed_info",
    "generative_transform",
    "get_adapter",
    "read_index",
    "real_transform",
    "resolve_shards",
    "vicreg_views",
]
