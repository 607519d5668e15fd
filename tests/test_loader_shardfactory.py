"""The test shard factory writes the format of docs/contracts.md."""

import io
import json
import tarfile

import pytest
from PIL import Image

from genaug.testing.shardfactory import AUG_SIZE, make_shards, sample_key


def _members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_layout_index_and_stats(tmp_path):
    paths = make_shards(tmp_path, n_samples=10, shard_size=4)
    assert [p.name for p in paths] == ["shard-0000.tar", "shard-0001.tar", "shard-0002.tar"]
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["__kind__"] == "wids-shard-index-v1" and index["wids_version"] == 1
    assert [s["nsamples"] for s in index["shardlist"]] == [4, 4, 2]
    for entry, path in zip(index["shardlist"], paths):
        stats = json.loads(path.with_suffix(".json").read_text())
        assert entry["md5sum"] == stats["md5sum"] and entry["filesize"] == path.stat().st_size
        assert entry["url"] == path.name == f"shard-{stats['shard']:04d}.tar"
    members = _members(paths[0])
    key = sample_key(0, True)
    assert set(members) >= {f"{key}.real.jpg", f"{key}.aug.jpg", f"{key}.cls", f"{key}.json"}
    meta = json.loads(members[f"{key}.json"])
    real = Image.open(io.BytesIO(members[f"{key}.real.jpg"]))
    assert list(real.size) == meta["orig_size"] and meta["key"] == key
    assert Image.open(io.BytesIO(members[f"{key}.aug.jpg"])).size == (AUG_SIZE, AUG_SIZE)
    assert int(members[f"{key}.cls"]) == meta["label"]


def test_deterministic_and_options(tmp_path):
    a = make_shards(tmp_path / "a", n_samples=3, seed=3)
    b = make_shards(tmp_path / "b", n_samples=3, seed=3)
    assert a[0].read_bytes() == b[0].read_bytes()
    bad = sample_key(1, False)
    paths = make_shards(tmp_path / "c", n_samples=3, labelled=False, aug_format="png",
                        broken_aug_keys=[bad], missing_aug_keys=[sample_key(2, False)])
    members = _members(paths[0])
    assert not any(name.endswith(".cls") for name in members)
    with pytest.raises(OSError):
        Image.open(io.BytesIO(members[f"{bad}.aug.png"])).load()
    assert f"{sample_key(2, False)}.aug.png" not in members
    with pytest.raises(ValueError, match="gif"):
        make_shards(tmp_path / "d", aug_format="gif")
