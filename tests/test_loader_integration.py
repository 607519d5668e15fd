"""The loader reads what the real pipeline (genaug build) writes."""

import json

import pytest
import torch
from imagefactory import make_imagenet_folder

from genaug.build.pipeline import BuildConfig, run_build
from genaug.loader import GenCLMapDataset, GenCLWebDataset
from genaug.testing import editors

SIZE = 16


pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=3, per_class=4)
    out = tmp_path_factory.mktemp("built")
    run_build(BuildConfig(method=editors.METHOD, out=out, data=(str(folder["train"]),), shard_size=5,
                          batch_size=3, num_workers=0, seed=7, options={"amplitude": 6}))
    return out


def test_stream_and_index_read_every_built_sample(built):
    index = json.loads((built / "index.json").read_text())
    total = sum(s["nsamples"] for s in index["shardlist"])
    streamed = GenCLWebDataset(built, gamma=1.0, image_size=SIZE, adapter="dict", real_region="crop_box")
    items = list(streamed)
    assert len(items) == total == len(streamed) > 0
    assert streamed.stats.as_dict() == {"generative": total, "real": 0, "fallback": 0}
    mapped = GenCLMapDataset(built, gamma=1.0, image_size=SIZE, adapter="dict", real_region="crop_box")
    assert len(mapped) == total
    by_key = {item["key"]: item for item in items}
    for position in range(total):
        item = mapped[position]
        twin = by_key[item["key"]]
        assert item["index"] == twin["index"] == position and item["label"] == twin["label"] >= 0
        assert all(torch.equal(a, b) for a, b in zip(item["views"], twin["views"]))
        assert item["views"][0].shape == (3, SIZE, SIZE)
