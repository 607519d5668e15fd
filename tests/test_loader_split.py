"""Issue 11 (defects 1 and 5): how an epoch is split over ranks and DataLoader workers, and whether
``len(loader)`` equals the batches actually delivered in every mode the loader offers."""

import collections
import itertools
import logging

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from genaug.loader import GenCLMapDataset, GenCLWebDataset
from genaug.loader.pairs import PairStats
from genaug.loader.plan import split_counts
from genaug.testing.shardfactory import make_shards, sample_key

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 2-core box

N = 22  # 5 shards: 5, 5, 5, 5, 2 samples
SIZE = 8


class KeyOnly:
    """A pair rule that only reports which sample it got (the split is what is tested here, and the real
    rule's transforms would make the grid slow); the tar reading, plan and DataLoader are the real ones."""

    seed = 0

    def __init__(self):
        self.stats = PairStats()

    def __call__(self, sample, epoch=0, index=-1):
        return {"views": (torch.zeros(1), torch.zeros(1)), "label": index, "key": sample["__key__"],
                "index": index, "generative": False}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("split")
    make_shards(out, n_samples=N, shard_size=5, real_size=(16, 20))
    return out


def _run(dataset, batch_size, workers, drop_last):
    """(len(loader) or None when unknown, batches delivered, keys delivered) for one rank."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, drop_last=drop_last)
    batches = [list(keys) for _, _, keys in loader]
    try:
        length = len(loader)
    except TypeError:  # a stream without index.json or samples_per_epoch has no length
        length = None
    return length, len(batches), [k for b in batches for k in b]


@pytest.mark.parametrize("workers", [0, 2, 4, 7])
@pytest.mark.parametrize("source", ["folder", "pattern"])
def test_one_process_any_workers_reads_the_dataset_exactly_once(shards, source, workers):
    """Defect 1: no DDP, more workers than shards: no error, every sample exactly once, deterministic."""
    target = shards if source == "folder" else str(shards / "shard-{0000..0004}.tar")
    runs = []
    for _ in range(2):
        dataset = GenCLWebDataset(target, image_size=SIZE, seed=5, shuffle_buffer=4)
        runs.append(_run(dataset, 3, workers, False)[2])
    assert sorted(runs[0]) == sorted(sample_key(i, True) for i in range(N))
    assert runs[0] == runs[1]


def test_one_shard_four_workers_real_pairs(tmp_path):
    """The README case: the quickstart's one shard of 8 samples, num_workers=4, the real pair rule."""
    make_shards(tmp_path / "one", n_samples=8, shard_size=8, real_size=(16, 20))
    dataset = GenCLWebDataset(tmp_path / "one", gamma=0.5, image_size=SIZE)
    keys = [k for (v1, v2), _, batch in DataLoader(dataset, batch_size=4, num_workers=4) for k in batch]
    assert sorted(keys) == sorted(sample_key(i, True) for i in range(8))
    counts = dataset.stats.as_dict()
    assert counts["generative"] + counts["real"] + counts["fallback"] == 8


MODES = {  # name -> dataset options (besides rank/world/batch)
    "indexed": dict(),
    "indexed-cap": dict(samples_per_epoch=6),
    "resampled": dict(resampled=True, samples_per_epoch=13),
    "resampled-default": dict(resampled=True),
    "no-index-quota": dict(samples_per_epoch=9, source="pattern"),
}


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [4, 16])
@pytest.mark.parametrize("workers", [0, 3])
@pytest.mark.parametrize("world", [1, 3])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_streaming_len_equals_batches_delivered(shards, mode, world, workers, batch_size, drop_last):
    """Defect 5, streaming: len(loader) == batches delivered on every rank, and every rank runs the same
    number of steps (ranks emulated with the rank/world_size arguments)."""
    options = dict(MODES[mode])
    source = str(shards / "shard-{0000..0004}.tar") if options.pop("source", None) else shards
    steps = set()
    for rank in range(world):
        dataset = GenCLWebDataset(source, pairs=KeyOnly(), rank=rank, world_size=world, batch_size=batch_size,
                                  shuffle_buffer=3, **options)
        length, delivered, keys = _run(dataset, batch_size, workers, drop_last)
        assert length == delivered, (rank, length, delivered)
        if not drop_last:
            assert len(keys) == len(dataset)
        steps.add(delivered)
    assert len(steps) == 1


def test_the_reported_resampled_case(shards):
    """WORLD_SIZE=3, len(ds)=85, batch 16, 2 workers, drop_last: len(loader) 5 and 5 batches arrive."""
    for rank in range(3):
        dataset = GenCLWebDataset(shards, pairs=KeyOnly(), resampled=True, samples_per_epoch=85, rank=rank,
                                  world_size=3, batch_size=16, shuffle_buffer=0)
        assert len(dataset) == 85
        assert _run(dataset, 16, 2, True)[:2] == (5, 5)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_split_samples_evenly_with_an_index(shards, world):
    """Ranks get ceil(N / world) samples each (padding like DistributedSampler): the union is the data set
    and at most world - 1 samples are read twice, whatever the shard sizes."""
    seen = collections.Counter()
    for rank in range(world):
        dataset = GenCLWebDataset(shards, pairs=KeyOnly(), rank=rank, world_size=world, shuffle_buffer=0)
        keys = [k for *_, k in dataset]
        assert len(keys) == len(dataset) == -(-N // world)
        seen.update(keys)
    assert set(seen) == {sample_key(i, True) for i in range(N)}
    assert sum(seen.values()) - N == world * -(-N // world) - N < world


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [4, 16])
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("world", [1, 3])
def test_mapstyle_len_equals_batches_delivered(shards, world, workers, batch_size, drop_last):
    """Defect 5, map-style with DistributedSampler (the rank given to the sampler)."""
    dataset = GenCLMapDataset(shards, pairs=KeyOnly())
    steps = set()
    for rank in range(world):
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=1)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                            drop_last=drop_last)
        delivered = sum(1 for _ in loader)
        assert len(loader) == delivered
        steps.add(delivered)
    assert len(steps) == 1


@pytest.mark.parametrize("total,parts,batch", [(85, 2, 16), (0, 3, 4), (7, 4, 1), (33, 3, 8), (5, 8, 16)])
def test_split_counts_whole_batches(total, parts, batch):
    sizes = split_counts(total, parts, batch)
    assert sum(sizes) == total and len(sizes) == parts
    assert sum(s % batch != 0 for s in sizes) <= 1
    assert sum(-(-s // batch) for s in sizes) == -(-total // batch)


def test_env_rank_gives_the_same_split(shards, monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    from_env = [k for *_, k in GenCLWebDataset(shards, pairs=KeyOnly(), shuffle_buffer=0)]
    explicit = [k for *_, k in GenCLWebDataset(shards, pairs=KeyOnly(), shuffle_buffer=0, rank=2, world_size=3)]
    assert from_env == explicit and len(from_env) == 8


def test_no_index_ddp_warns_in_the_main_process(shards, caplog):
    with caplog.at_level(logging.WARNING, logger="genaug"):
        GenCLWebDataset(str(shards / "shard-{0000..0004}.tar"), pairs=KeyOnly(), rank=0, world_size=2)
    assert any("sample counts per rank are unknown" in r.getMessage() for r in caplog.records)


def test_no_index_quota_is_exact_when_shards_run_short(shards):
    """Without index.json, samples_per_epoch is an exact count: shards are read again when they run out."""
    dataset = GenCLWebDataset(str(shards / "shard-{0000..0004}.tar"), pairs=KeyOnly(), samples_per_epoch=30,
                              shuffle_buffer=0)
    keys = [k for *_, k in dataset]
    assert len(keys) == len(dataset) == 30
    assert set(keys) == {sample_key(i, True) for i in range(N)}
    assert max(collections.Counter(keys).values()) == 2


def test_epochs_differ_and_indexes_are_exact(shards):
    dataset = GenCLWebDataset(shards, pairs=KeyOnly(), rank=1, world_size=2, shuffle_buffer=0, adapter="dict")
    first = [(item["key"], item["index"]) for item in dataset]
    dataset.set_epoch(1)
    second = [(item["key"], item["index"]) for item in dataset]
    assert first != second
    assert all(key == sample_key(index, True) for key, index in itertools.chain(first, second))
