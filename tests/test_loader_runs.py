"""Issue 9 item 5: several run folders (or index files) loaded together, keys unique, warnings per run."""

import json
import logging

import pytest
import torch
from torch.utils.data import DataLoader

from genaug.loader import GenCLMapDataset, GenCLWebDataset, resolve_shards
from genaug.testing.shardfactory import make_shards, sample_key

SIZE = 8


@pytest.fixture
def runs(tmp_path):
    """Two runs of the same 6 images (same keys, as the mask and the noise method would give) and one of
    4 other images."""
    make_shards(tmp_path / "runs" / "mask", n_samples=6, shard_size=4, real_size=(16, 20))
    make_shards(tmp_path / "runs" / "noise", n_samples=6, shard_size=3, real_size=(16, 20), seed=1)
    make_shards(tmp_path / "other", n_samples=4, shard_size=4, labelled=False, real_size=(16, 20))
    return tmp_path


def _sources(runs, kind):
    folders = [runs / "runs" / "mask", runs / "runs" / "noise"]
    if kind == "index":
        return [str(f / "index.json") for f in folders]
    if kind == "mixed":
        return [str(folders[0]), str(folders[1] / "index.json")]
    return folders  # Path objects, as a user would pass them


@pytest.mark.parametrize("kind", ["folder", "index", "mixed"])
def test_two_runs_with_the_same_keys_stay_distinct(runs, kind):
    sources = _sources(runs, kind)
    index = resolve_shards(sources)
    assert len(index.urls) == 4 and index.total == 12
    streamed = list(GenCLWebDataset(sources, image_size=SIZE, adapter="dict", shuffle_buffer=0,
                                    shuffle_shards=False))
    expected = {f"{run}/{sample_key(i, True)}" for run in ("mask", "noise") for i in range(6)}
    assert {item["key"] for item in streamed} == expected and len(streamed) == 12
    assert sorted(item["index"] for item in streamed) == list(range(12))  # positions run on across runs
    mapped = GenCLMapDataset(sources, image_size=SIZE, adapter="dict")
    assert len(mapped) == 12
    for item in streamed:
        twin = mapped[item["index"]]
        assert twin["key"] == item["key"] and all(torch.equal(a, b) for a, b in zip(twin["views"], item["views"]))
    # the same image in two runs is two samples with their own pair draws
    one, two = mapped[0], mapped[6]
    assert one["key"].split("/")[1] == two["key"].split("/")[1]
    assert not torch.equal(one["views"][1], two["views"][1])


def test_prefix_is_the_path_below_the_common_folder(runs):
    index = resolve_shards([runs / "runs" / "mask", runs / "other"])
    assert set(index.key_prefixes) == {"runs/mask/", "other/"}
    keys = {k for *_, k in GenCLWebDataset([runs / "runs" / "mask", runs / "other"], image_size=SIZE)}
    assert "other/img_00003" in keys and f"runs/mask/{sample_key(5, True)}" in keys


def test_single_run_in_a_list_keeps_plain_keys(runs):
    keys = {k for *_, k in GenCLWebDataset([runs / "other"], image_size=SIZE)}
    assert keys == {f"img_{i:05d}" for i in range(4)}


def test_runs_train_together_through_workers_and_ranks(runs):
    sources = [runs / "runs" / "mask", runs / "runs" / "noise", runs / "other"]
    seen = []
    for rank in range(2):
        dataset = GenCLWebDataset(sources, image_size=SIZE, rank=rank, world_size=2, batch_size=4)
        loader = DataLoader(dataset, batch_size=4, num_workers=2)
        keys = [k for *_, batch in loader for k in batch]
        assert len(keys) == len(dataset) == 8 and len(loader) == 2
        seen += keys
    assert len(set(seen)) == 16


@pytest.mark.parametrize("twice", ["same-folder", "folder-and-index"])
def test_a_run_listed_twice_is_refused(runs, twice):
    mask = runs / "runs" / "mask"
    second = mask if twice == "same-folder" else mask / "index.json"
    with pytest.raises(ValueError, match="listed twice"):
        GenCLWebDataset([mask, second])


def test_runs_and_tar_files_are_not_mixed(runs):
    with pytest.raises(ValueError, match="either a list of runs or a list of .tar shards"):
        resolve_shards([str(runs / "other"), str(runs / "runs" / "mask" / "shard-0000.tar")])


def test_unfinished_warning_is_per_run(runs, caplog):
    manifest = runs / "runs" / "noise" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc.update(status="running", config={"limit": 9, "shard_size": 3})
    manifest.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="genaug"):
        dataset = GenCLWebDataset(_sources(runs, "folder"), image_size=SIZE)
    warnings = [r.getMessage() for r in caplog.records if "build not finished" in r.getMessage()]
    assert len(warnings) == 1 and "noise" in warnings[0] and "mask" not in warnings[0]
    assert len(dataset) == 12


def test_verification_covers_every_run(runs):
    with open(runs / "runs" / "noise" / "shard-0001.tar", "ab") as handle:
        handle.write(b"\0" * 512)
    with pytest.raises(ValueError, match="1 of 4 shard.*noise/shard-0001.tar"):
        GenCLMapDataset(_sources(runs, "folder"))
