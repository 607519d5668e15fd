"""Unit tests of the shard writer: determinism, ustar headers, atomic rename, index.json."""

import hashlib
import json
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
import webdataset as wds

from genaug.build.shard import ShardWriter, file_digests, remove_temp_files, write_json_atomic
from genaug.format import INDEX_KIND, index_document, parse_shard_file, shard_name


def _samples(seed: int, n: int = 5) -> list[tuple[str, dict[str, bytes]]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        key = f"k{int(rng.integers(0, 10**6)):06d}_{i}"
        members = {
            "real.jpg": rng.bytes(int(rng.integers(1, 3000))),
            "aug.png": rng.bytes(int(rng.integers(1, 3000))),
            "cls": str(i % 3).encode(),
            "json": json.dumps({"key": key, "i": i}).encode(),
        }
        out.append((key, members))
    return out


def _write(out_dir, samples, index=0):
    with ShardWriter(out_dir, index) as writer:
        for key, members in samples:
            writer.add(key, members)
        return writer.close()


def test_same_samples_give_identical_bytes_in_any_order(tmp_path):
    samples = _samples(seed=3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    info_a = _write(tmp_path / "a", samples)
    info_b = _write(tmp_path / "b", list(reversed(samples)))
    data_a, data_b = info_a.path.read_bytes(), info_b.path.read_bytes()
    assert data_a == data_b
    assert info_a.md5sum == hashlib.md5(data_a).hexdigest()
    assert info_a.sha256 == hashlib.sha256(data_a).hexdigest()
    assert info_a.filesize == len(data_a) and info_a.nsamples == len(samples)
    assert file_digests(info_a.path) == (info_a.filesize, info_a.md5sum)
    # a changed payload changes the bytes
    changed = [(k, {**m, "cls": b"9"}) if i == 2 else (k, m) for i, (k, m) in enumerate(samples)]
    (tmp_path / "c").mkdir()
    assert _write(tmp_path / "c", changed).path.read_bytes() != data_a


def test_members_are_plain_ustar_sorted_with_fixed_metadata(tmp_path):
    samples = _samples(seed=5)
    info = _write(tmp_path, samples)
    raw = info.path.read_bytes()
    assert raw[257:263] == b"ustar\x00"  # POSIX ustar magic of the first header
    with tarfile.open(info.path) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert len(names) == 4 * len(samples)
        for m in members:
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
            assert m.isreg() and not m.pax_headers
        expected = {f"{k}.{ext}": data for k, ms in samples for ext, data in ms.items()}
        assert {m.name: tar.extractfile(m).read() for m in members} == expected


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
def test_gnu_tar_lists_the_shard(tmp_path):
    samples = _samples(seed=7, n=3)
    info = _write(tmp_path, samples)
    listed = subprocess.run(["tar", "-tf", str(info.path)], check=True, capture_output=True, text=True).stdout.split()
    assert listed == sorted(f"{k}.{ext}" for k, ms in samples for ext in ms)


def test_webdataset_reads_every_sample(tmp_path):
    samples = _samples(seed=11, n=6)
    info = _write(tmp_path, samples)
    got = {s["__key__"]: s for s in wds.WebDataset(str(info.path), shardshuffle=False)}
    assert set(got) == {k for k, _ in samples}
    for key, members in samples:
        for ext, data in members.items():
            assert got[key][ext] == data


def test_temp_name_then_rename_and_cleanup_on_error(tmp_path):
    writer = ShardWriter(tmp_path, 3)
    writer.add("a", {"json": b"{}"})
    assert not (tmp_path / "shard-0003.tar").exists()  # nothing under the final name while filling
    assert [p.name for p in tmp_path.iterdir()] == [".shard-0003.tar.spool"]
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-0003.tar"]

    with pytest.raises(KeyError):
        with ShardWriter(tmp_path, 4) as failing:
            failing.add("b", {"json": b"{}"})
            raise KeyError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-0003.tar"]


def test_bad_keys_and_duplicates_are_refused(tmp_path):
    with ShardWriter(tmp_path, 0) as writer:
        for bad in ("a.b", "a/b", ""):
            with pytest.raises(ValueError, match="invalid"):
                writer.add(bad, {"json": b"{}"})
        writer.add("a", {"json": b"{}"})
        with pytest.raises(ValueError, match="duplicate"):
            writer.add("a", {"json": b"{}"})
        writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_remove_temp_files_keeps_finished_files(tmp_path):
    for name in (".shard-0000.tar.tmp", ".shard-0001.tar.spool", ".index.json.tmp", "shard-0002.tar", "keep.tmp"):
        (tmp_path / name).write_bytes(b"x")
    removed = remove_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == [".index.json.tmp", ".shard-0000.tar.tmp", ".shard-0001.tar.spool"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tmp", "shard-0002.tar"]


def test_shard_names_grow_past_9999():
    assert shard_name(0) == "shard-0000.tar"
    assert shard_name(12345) == "shard-12345.tar"
    assert parse_shard_file("shard-12345.json") == (12345, "json")
    assert parse_shard_file("shard-0007.tar") == (7, "tar")
    assert parse_shard_file(".shard-0007.tar.tmp") is None
    assert parse_shard_file("shard-7.tar") is None


def test_index_document_is_wids_v1(tmp_path):
    stats = [
        {"shard": 1, "nsamples": 3, "filesize": 20480, "md5sum": "b" * 32, "extra": 1},
        {"shard": 0, "nsamples": 5, "filesize": 30720, "md5sum": "a" * 32},
    ]
    doc = index_document("run", stats)
    assert doc == {
        "__kind__": INDEX_KIND,
        "wids_version": 1,
        "name": "run",
        "shardlist": [
            {"url": "shard-0000.tar", "nsamples": 5, "filesize": 30720, "md5sum": "a" * 32},
            {"url": "shard-0001.tar", "nsamples": 3, "filesize": 20480, "md5sum": "b" * 32},
        ],
    }
    write_json_atomic(tmp_path / "index.json", doc)
    assert json.loads((tmp_path / "index.json").read_text()) == doc
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]
