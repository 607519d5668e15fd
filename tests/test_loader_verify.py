"""Issue 12 (defects 3 and 4), loader side: shards checked against index.json before training, sample counts
checked while reading, corrupt image bytes falling back, and no tar member read whole above the cap."""

import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch
import webdataset as wds

from genaug.loader import GenCLMapDataset, GenCLWebDataset, tarread
from genaug.loader.tarread import ShardMismatchError
from genaug.testing.shardfactory import add_big_member, make_shards, sample_key

SIZE = 8
N = 12  # 3 shards of 4 samples


def _members(path):
    with tarfile.open(path) as tar:
        return tar.getmembers()


def cut_at_sample_boundary(path):
    """Drop the last sample: the file ends at the header of its first member (a clean member boundary)."""
    members = _members(path)
    last_key = members[-1].name.split(".")[0]
    first = next(m for m in members if m.name.startswith(last_key))
    os.truncate(path, first.offset)


def cut_inside_a_sample(path):
    """End the file right after the last sample's real.jpg (its other members are lost)."""
    member = next(m for m in reversed(_members(path)) if m.name.endswith("real.jpg"))
    os.truncate(path, member.offset_data + -(-member.size // 512) * 512)


def cut_mid_member(path):
    member = _members(path)[-2]
    os.truncate(path, member.offset_data + member.size // 2)


def append_block(path):
    with open(path, "ab") as handle:
        handle.write(b"\0" * 512)


def flip_image_bit(path):
    member = next(m for m in _members(path) if m.name.endswith("aug.jpg"))
    with open(path, "r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x10]))


def change_label(path):
    member = next(m for m in _members(path) if m.name.endswith(".cls"))
    with open(path, "r+b") as handle:
        handle.seek(member.offset_data)
        handle.write(b"9")


def delete(path):
    path.unlink()


SIZE_CHANGES = [cut_at_sample_boundary, cut_inside_a_sample, cut_mid_member, append_block, delete]
SAME_SIZE = [flip_image_bit, change_label]


@pytest.fixture
def run(tmp_path):
    make_shards(tmp_path / "run", n_samples=N, shard_size=4, real_size=(16, 20))
    return tmp_path / "run"


@pytest.mark.parametrize("dataset", [GenCLWebDataset, GenCLMapDataset])
@pytest.mark.parametrize("damage", SIZE_CHANGES + SAME_SIZE, ids=lambda f: f.__name__)
def test_damaged_shard_is_refused_before_training(run, damage, dataset):
    """verify='size' (default) refuses every size change on every rank before the first step; 'md5' also
    refuses same-size damage (a flipped bit, a changed label)."""
    damage(run / "shard-0001.tar")
    modes = ["size", "md5"] if damage in SIZE_CHANGES else ["md5"]
    for mode in modes:
        for rank in range(3):  # every rank checks every shard, so all stop alike
            kwargs = dict(rank=rank, world_size=3) if dataset is GenCLWebDataset else {}
            with pytest.raises(ShardMismatchError, match=r"1 of 3 shard\(s\) do not match.*shard-0001.tar"):
                dataset(run, image_size=SIZE, verify=mode, **kwargs)
    if damage in SAME_SIZE:  # the cheap default lets it through: that is what md5 is for
        assert len(dataset(run, image_size=SIZE)) == N


@pytest.mark.parametrize("handler", [wds.reraise_exception, wds.warn_and_continue])
@pytest.mark.parametrize("damage", [cut_at_sample_boundary, cut_mid_member], ids=lambda f: f.__name__)
def test_unverified_short_shard_still_fails_when_read(run, damage, handler):
    """verify='none': the count check while reading still refuses a short shard, whatever the handler
    (skipping it would give this rank fewer steps than the others)."""
    damage(run / "shard-0002.tar")
    dataset = GenCLWebDataset(run, image_size=SIZE, verify="none", shuffle_shards=False, handler=handler)
    with pytest.raises(ShardMismatchError, match="shard-0002.tar.*(holds 3 samples but index.json says 4|truncated)"):
        list(dataset)


@pytest.mark.parametrize("claimed", [3, 5])
def test_count_disagreeing_with_index_is_an_error(run, claimed):
    """A shard of the right size holding more or fewer samples than index.json says."""
    index = json.loads((run / "index.json").read_text())
    index["shardlist"][1]["nsamples"] = claimed
    (run / "index.json").write_text(json.dumps(index))
    with pytest.raises(ShardMismatchError, match=f"shard-0001.tar' holds 4 samples but index.json says {claimed}"):
        list(GenCLWebDataset(run, image_size=SIZE, shuffle_shards=False, shuffle_buffer=0))
    with pytest.raises(ShardMismatchError, match=f"holds 4 samples but index.json says {claimed}"):
        GenCLMapDataset(run, image_size=SIZE)[5]


@pytest.mark.parametrize("verify", [False, "none", None])
def test_verify_off(run, verify):
    append_block(run / "shard-0000.tar")  # harmless extra zero block: readable, but the size differs
    assert len(list(GenCLWebDataset(run, image_size=SIZE, verify=verify))) == N


def test_bad_verify_value_names_the_choices(run):
    with pytest.raises(ValueError, match="verify='sha1'.*'size'.*'md5'.*'none'"):
        GenCLWebDataset(run, verify="sha1")


def test_corrupt_image_bytes_fall_back_and_are_counted(tmp_path):
    """Undecodable aug bytes inside an intact shard: a real pair, counted as fallback (kept from before)."""
    bad = [sample_key(2, True), sample_key(7, True)]
    make_shards(tmp_path / "run", n_samples=8, shard_size=4, broken_aug_keys=bad, real_size=(16, 20))
    dataset = GenCLWebDataset(tmp_path / "run", gamma=1.0, image_size=SIZE, verify="md5")
    assert len(list(dataset)) == 8
    assert dataset.stats.as_dict() == {"generative": 6, "real": 0, "fallback": 2}


@pytest.mark.parametrize("field", ["aug.jpg", "real.jpg", "json"])
@pytest.mark.parametrize("reader", ["stream", "map"])
def test_member_over_the_cap_is_not_read(tmp_path, monkeypatch, field, reader, caplog):
    monkeypatch.setattr(tarread, "MAX_MEMBER_BYTES", 4096)
    make_shards(tmp_path / "run", n_samples=2, shard_size=2, real_size=(16, 20))
    shard = tmp_path / "run" / "shard-0000.tar"
    add_big_member(shard, "big_00009", field, 1 << 20)
    if reader == "stream":
        dataset = GenCLWebDataset([str(shard)], gamma=1.0, image_size=SIZE, adapter="dict", shuffle_buffer=0,
                                  handler=wds.warn_and_continue)
        with pytest.warns(UserWarning) if field == "real.jpg" else _nothing():
            items = list(dataset)
    else:
        (tmp_path / "run" / "index.json").write_text(json.dumps({
            "__kind__": "wids-shard-index-v1", "name": "big",
            "shardlist": [{"url": "shard-0000.tar", "nsamples": 3}]}))
        dataset = GenCLMapDataset(tmp_path / "run", gamma=1.0, image_size=SIZE, adapter="dict")
        if field == "real.jpg":
            with pytest.raises(ValueError, match="big_00009.real.jpg.*over the cap of 4096 bytes"):
                dataset[2]
            return
        items = [dataset[i] for i in range(3)]
    keys = [item["key"] for item in items]
    if field == "real.jpg":
        assert keys == [sample_key(0, True), sample_key(1, True)]
    else:
        assert keys[-1] == "big_00009" and not items[-1]["generative"]  # the aug image was not read (or absent)
        assert dataset.stats.as_dict()["fallback"] == 1  # gamma=1: no (readable) aug image -> a real pair
    assert any("over the cap of 4096 bytes per member" in r.getMessage() for r in caplog.records) or field == "real.jpg"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_memory_stays_flat_with_a_huge_member(tmp_path):
    """A 600 MiB member (over the 256 MiB cap) in a shard: streaming it keeps the reader's peak RSS far
    below the member's size (the member is skipped in the tar stream, never read)."""
    make_shards(tmp_path / "run", n_samples=2, shard_size=2, real_size=(16, 20))
    shard = tmp_path / "run" / "shard-0000.tar"
    add_big_member(shard, "big_00009", "aug.jpg", 600 << 20)
    code = (
        "import resource, sys\n"
        "from genaug.loader import GenCLWebDataset\n"
        "ds = GenCLWebDataset([sys.argv[1]], gamma=1.0, image_size=8, shuffle_buffer=0)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "n = sum(1 for _ in ds)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(n, before, after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(shard)], capture_output=True, text=True, check=True)
    count, before, after = (int(v) for v in out.stdout.split())
    print(f"peak RSS before/after streaming a shard with a 600 MiB member: {before / 1024:.0f} / "
          f"{after / 1024:.0f} MiB")
    assert count == 3 and (after - before) < 64 * 1024  # KiB: grew by far less than the member


@pytest.mark.parametrize("compress", [False, True])
def test_plain_or_gzip_tar_streams_alike(run, tmp_path, compress):
    """The reader seeks over members of local files and streams pipes; a gzip tar named .tar reads too."""
    import gzip

    data = (run / "shard-0000.tar").read_bytes()
    target = tmp_path / "copy.tar"
    target.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    keys = [k for *_, k in GenCLWebDataset([str(target)], image_size=SIZE, shuffle_buffer=0)]
    piped = [k for *_, k in GenCLWebDataset([f"pipe:cat {target}"], image_size=SIZE, shuffle_buffer=0)]
    assert keys == piped == [sample_key(i, True) for i in range(4)]


def break_real_image(path):
    """Overwrite the start of the first real.jpg (same size: verify='size' passes, decoding fails)."""
    member = next(m for m in _members(path) if m.name.endswith("real.jpg"))
    with open(path, "r+b") as handle:
        handle.seek(member.offset_data)
        handle.write(b"not a jpeg at all")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("workers", [0, 2])
def test_skipped_samples_keep_the_step_count(run, workers):
    """A bad sample skipped by the handler is made up (the worker reads its share again), so every rank
    still delivers len(dataset) samples and len(loader) batches."""
    break_real_image(run / "shard-0001.tar")
    steps = set()
    for rank in range(2):
        dataset = GenCLWebDataset(run, image_size=SIZE, rank=rank, world_size=2, batch_size=2,
                                  handler=wds.warn_and_continue)
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers)
        keys = [k for *_, batch in loader for k in batch]
        assert len(keys) == len(dataset) == 6
        assert sample_key(4, True) not in keys  # the broken sample is never served
        steps.add(len(loader))
    assert steps == {3}
