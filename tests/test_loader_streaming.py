"""Streaming and map-style datasets: DDP splitting, workers, lengths, errors, adapters, determinism."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from genaug.loader import GenCLMapDataset, GenCLPairs, GenCLWebDataset, distributed_info, resolve_shards
from genaug.testing.shardfactory import make_shards, sample_key

SIZE = 16
N = 24


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    make_shards(out, n_samples=N, shard_size=4, broken_aug_keys=[sample_key(5, True)])
    return out


def _keys(dataset):
    return [key for _, _, key in dataset]


def test_sources_resolve_the_same_shards(shards):
    from_folder = resolve_shards(shards)
    assert from_folder.total == N and len(from_folder.urls) == 6
    assert resolve_shards(shards / "index.json").urls == from_folder.urls
    pattern = resolve_shards(str(shards / "shard-{0000..0005}.tar"))
    assert pattern.urls == from_folder.urls and pattern.nsamples is None
    with pytest.raises(FileNotFoundError, match="2 shard\\(s\\) not found, first: .*shard-0008.tar"):
        resolve_shards(str(shards / "shard-{0008..0009}.tar"))
    with pytest.raises(ValueError, match="wids-shard-index-v1"):
        bad = shards.parent / "bad.json"
        bad.write_text(json.dumps({"shardlist": []}))
        resolve_shards(bad)


def test_one_epoch_sees_every_sample_once_and_len_is_known(shards):
    dataset = GenCLWebDataset(shards, gamma=0.5, image_size=SIZE, shuffle_buffer=8)
    keys = _keys(dataset)
    assert sorted(keys) == sorted(sample_key(i, True) for i in range(N)) and len(dataset) == N
    assert keys != sorted(keys)  # shuffled
    counts = dataset.stats.as_dict()
    assert sum(counts.values()) == N and counts["generative"] > 0 and counts["real"] > 0
    dataset.set_epoch(1)
    assert _keys(dataset) != keys  # a new order each epoch


def test_two_ranks_disjoint_union_everything(shards):
    seen = []
    for rank in (0, 1):
        dataset = GenCLWebDataset(shards, image_size=SIZE, rank=rank, world_size=2)
        keys = _keys(dataset)
        assert len(keys) == len(dataset)
        seen.append(set(keys))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {sample_key(i, True) for i in range(N)}


def test_env_rank_is_read(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert distributed_info() == (1, 3)
    with pytest.raises(ValueError, match="rank=3, world_size=3"):
        distributed_info(3, 3)


def test_workers_split_shards_and_merge_counters(shards):
    dataset = GenCLWebDataset(shards, gamma=1.0, image_size=SIZE, rank=1, world_size=2)
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    keys = [k for _, _, batch_keys in loader for k in batch_keys]
    assert sorted(keys) == sorted(_keys(GenCLWebDataset(shards, image_size=SIZE, rank=1, world_size=2)))
    assert dataset.stats.as_dict()["generative"] + dataset.stats.as_dict()["fallback"] == len(keys)


def test_fewer_shards_than_readers_is_a_clear_error_in_the_main_process(shards):
    """Issue 11: the only real misconfiguration left (ranks that would get no shard: a split of whole shards,
    i.e. no index.json) is refused when the dataset is made, before any worker starts."""
    pattern = str(shards / "shard-{0000..0002}.tar")
    with pytest.raises(ValueError, match=r"3 shard\(s\) cannot feed 4 rank\(s\)"):
        GenCLWebDataset(pattern, image_size=SIZE, rank=0, world_size=4)
    # with index.json the ranks split samples: 6 shards feed 4 ranks x 2 workers, equal counts, no error
    counts = [sum(len(k) for *_, k in DataLoader(GenCLWebDataset(shards, image_size=SIZE, rank=r, world_size=4),
                                                 batch_size=2, num_workers=2)) for r in range(4)]
    assert counts == [6, 6, 6, 6]


def test_resampled_gives_equal_counts_per_rank(shards):
    counts = []
    for rank in range(4):
        dataset = GenCLWebDataset(shards, image_size=SIZE, rank=rank, world_size=4, resampled=True,
                                  samples_per_epoch=10, shuffle_buffer=0)
        counts.append(len(list(dataset)))
        assert len(dataset) == 10
    wide = GenCLWebDataset(shards, image_size=SIZE, resampled=True, samples_per_epoch=60, adapter="dict",
                           shuffle_buffer=0)
    for item in wide:  # shards are drawn with replacement, often twice in a row: indexes stay exact
        assert item["key"] == sample_key(item["index"], True)
    assert counts == [10, 10, 10, 10]


def test_item_is_independent_of_reader(shards):
    """The same key gives the same views whether streamed (any worker/buffer) or read by index."""
    options = dict(gamma=0.5, seed=3, image_size=SIZE)
    streamed = {key: views for views, _, key in GenCLWebDataset(shards, shuffle_buffer=5, **options)}
    mapped = GenCLMapDataset(shards / "index.json", **options)
    for index in (0, 5, 17, 23):
        views, _, key = mapped[index]
        assert key == sample_key(index, True)
        assert all(torch.equal(a, b) for a, b in zip(views, streamed[key]))


def test_mapstyle_len_random_access_and_errors(shards, tmp_path):
    dataset = GenCLMapDataset(shards, image_size=SIZE)
    assert len(dataset) == N and dataset[-1][2] == sample_key(N - 1, True)
    with pytest.raises(IndexError, match="index 24"):
        dataset[N]
    with pytest.raises(ValueError, match="no index.json"):
        GenCLMapDataset(str(shards / "shard-{0000..0001}.tar"))
    index = json.loads((shards / "index.json").read_text())
    index["shardlist"][0]["nsamples"] = 5
    (tmp_path / "index.json").write_text(json.dumps(index))
    (tmp_path / "shard-0000.tar").symlink_to(shards / "shard-0000.tar")
    with pytest.raises(ValueError, match="5 of 6 shard.* do not match.*shard-0001.tar: cannot be read"):
        GenCLMapDataset(tmp_path / "index.json")  # missing shards: refused up front (verify="size")
    for number in range(1, 6):
        (tmp_path / f"shard-{number:04d}.tar").symlink_to(shards / f"shard-{number:04d}.tar")
    with pytest.raises(ValueError, match="holds 4 samples but index.json says 5"):
        GenCLMapDataset(tmp_path / "index.json")[0]


def test_adapter_structures(shards):
    pairs = GenCLPairs(gamma=0.5, image_size=SIZE)
    dataset = GenCLMapDataset(shards, pairs=pairs)
    (v1, v2), label, key = dataset[6]
    assert v1.shape == v2.shape == (3, SIZE, SIZE) and label == 2 and key == sample_key(6, True)
    index, views, target = GenCLMapDataset(shards, pairs=pairs, adapter="solo-learn")[6]
    assert index == 6 and isinstance(views, list) and len(views) == 2 and target == 2
    views, label, filename = GenCLMapDataset(shards, pairs=pairs, adapter="lightly")[6]
    assert isinstance(views, list) and label == 2 and filename == key
    item = GenCLMapDataset(shards, pairs=pairs, adapter="vicreg")[6]
    assert len(item) == 2 and len(item[0]) == 2 and item[1] == 2
    streamed = next(iter(GenCLWebDataset(shards, pairs=pairs, adapter="solo-learn", shuffle_buffer=0,
                                         shuffle_shards=False)))
    assert streamed[0] == 0 and streamed[2] == 0
    with pytest.raises(ValueError, match="simclr"):
        GenCLMapDataset(shards, adapter="simclr")
    with pytest.raises(ValueError, match="pairs= or pair options"):
        GenCLWebDataset(shards, pairs=pairs, gamma=0.3)


def test_batches_collate(shards):
    loader = DataLoader(GenCLMapDataset(shards, image_size=SIZE, adapter="solo-learn"), batch_size=8)
    index, (v1, v2), target = next(iter(loader))
    assert v1.shape == (8, 3, SIZE, SIZE) and index.tolist() == list(range(8)) and target.dtype == torch.int64


def test_unknown_length_and_resampled_without_size_are_explained(shards):
    pattern = str(shards / "shard-{0000..0001}.tar")
    with pytest.raises(TypeError, match="length of .* is unknown"):
        len(GenCLWebDataset(pattern, image_size=SIZE))
    with pytest.raises(ValueError, match="resampled=True needs samples_per_epoch"):
        GenCLWebDataset(pattern, image_size=SIZE, resampled=True)
    assert len(GenCLWebDataset(pattern, image_size=SIZE, resampled=True, samples_per_epoch=6)) == 6


def test_bad_sample_raises_by_default_and_is_skipped_with_a_handler(shards, tmp_path):
    import io
    import tarfile

    import webdataset as wds

    good = shards / "shard-0000.tar"
    bad = tmp_path / "bad.tar"
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            if member.name.startswith(sample_key(1, True)) and member.name.endswith("real.jpg"):
                continue  # sample 1 loses its real image
            dst.addfile(member, io.BytesIO(src.extractfile(member).read()))
    with pytest.raises(KeyError, match=sample_key(1, True)):
        list(GenCLWebDataset([str(bad)], image_size=SIZE, shuffle_buffer=0))
    with pytest.warns(UserWarning, match="has no real.jpg"):
        kept = _keys(GenCLWebDataset([str(bad)], image_size=SIZE, shuffle_buffer=0, handler=wds.warn_and_continue))
    assert len(kept) == 3 and sample_key(1, True) not in kept


def test_samples_per_epoch_caps_a_plain_stream(shards):
    capped = GenCLWebDataset(shards, image_size=SIZE, samples_per_epoch=5)
    assert len(capped) == 5 and len(list(capped)) == 5
    assert len(GenCLWebDataset(shards, image_size=SIZE, samples_per_epoch=500)) == N


def test_resampled_ranks_run_equal_batches_through_workers(shards):
    batches = []
    for rank in range(2):
        dataset = GenCLWebDataset(shards, image_size=SIZE, rank=rank, world_size=2, resampled=True,
                                  samples_per_epoch=9, shuffle_buffer=4)
        loader = DataLoader(dataset, batch_size=3, num_workers=2)
        sizes = [len(keys) for _, _, keys in loader]
        assert sum(sizes) == 9
        batches.append(len(sizes))
    assert batches[0] == batches[1]
