"""Bad inputs and bad settings never crash a build (QA round): broken input shards are recorded and the
build goes on, duplicate shards and keys are refused or recorded, a wids index.json is a shard input,
error messages name the value as given, and nothing in --out exists before every check has passed."""

from __future__ import annotations

import json
import os
import pickle
import tarfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from imagefactory import make_image_folder, make_wds_shards

from genaug.build.config import BuildConfig, ConfigError
from genaug.build.pipeline import run_build
from genaug.build.sources import open_source
from genaug.cli.main import main
from genaug.registry import REGISTRY, Preset, WeightFile
from genaug.testing import editors

TRUNCATED_AFTER = 2  # samples kept from the truncated shard


pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two good shards of 4 samples, a copy of shard 0 cut inside its 3rd sample, and a text file."""
    root = tmp_path_factory.mktemp("shards")
    made = make_wds_shards(root, n_shards=2, per_shard=4)
    good = Path(made["urls"][0])
    with tarfile.open(good) as tar:
        members = tar.getmembers()  # jpg, cls per sample
    cut = members[2 * TRUNCATED_AFTER].offset_data + 10
    truncated = root / "cut-0000.tar"
    truncated.write_bytes(good.read_bytes()[:cut])
    fake = root / "fake.tar"
    fake.write_text("hello, not a tar\n")
    return {**made, "truncated": str(truncated), "fake": str(fake), "root": root}


def _config(out, data, **kw) -> BuildConfig:
    return editors.build_config(out, data, **{"shard_size": 4, "batch_size": 2, "seed": 1, **kw})


def _errors(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "errors.jsonl").read_text().splitlines()]


def test_a_shard_truncated_mid_stream_is_recorded_and_the_build_goes_on(shards, tmp_path):
    data = [shards["truncated"], shards["urls"][1]]
    summary = run_build(_config(tmp_path / "a", data))
    assert summary.samples == TRUNCATED_AFTER + 4 and summary.errors == 1
    (error,) = _errors(tmp_path / "a")
    assert error["path"] == shards["truncated"] and error["shard"] == 0
    assert error["key"].startswith("cut-0000_input_error-") and "." not in error["key"]
    assert error["reason"].startswith(f"input shard truncated/corrupt after {TRUNCATED_AFTER} samples: ")
    samples = editors.read_samples(tmp_path / "a")
    assert set(shards["keys"][:TRUNCATED_AFTER] + shards["keys"][4:]) == set(samples)
    run_build(_config(tmp_path / "b", data, batch_size=3))  # the same order and chunks on every run
    assert editors.output_bytes(tmp_path / "a") == editors.output_bytes(tmp_path / "b")


@pytest.mark.parametrize("damage", ["cut-at-header", "bad-header", "concatenated"])
def test_a_shard_that_tarfile_would_end_silently_is_recorded(shards, tmp_path, damage):
    good = Path(shards["urls"][0]).read_bytes()
    with tarfile.open(shards["urls"][0]) as tar:
        third = tar.getmembers()[2 * TRUNCATED_AFTER].offset  # header of the 3rd sample's first member
    damaged = {"cut-at-header": good[:third],
               "bad-header": good[:third] + b"\x07" * 512 + good[third + 512:],
               "concatenated": good + Path(shards["urls"][1]).read_bytes()}[damage]
    path = tmp_path / "damaged.tar"
    path.write_bytes(damaged)
    summary = run_build(_config(tmp_path / "o", [str(path)]))
    kept = 4 if damage == "concatenated" else TRUNCATED_AFTER
    assert summary.samples == kept and summary.errors == 1
    (error,) = _errors(tmp_path / "o")
    assert error["reason"].startswith(f"input shard truncated/corrupt after {kept} samples: "), error


def test_an_unreadable_remote_shard_is_recorded_and_the_build_goes_on(shards, tmp_path):
    broken = f"pipe:cat {shards['root']}/no-such-shard.tar"
    summary = run_build(_config(tmp_path / "o", [shards["urls"][0], broken, shards["urls"][1]]))
    assert summary.samples == 8 and summary.errors == 1
    (error,) = _errors(tmp_path / "o")
    assert error["path"] == broken and error["reason"].startswith("input shard truncated/corrupt after 0 samples")


@pytest.mark.parametrize("how", ["alone", "second"])
def test_a_shard_that_is_no_tar_is_refused_before_any_work(shards, tmp_path, how):
    data = [shards["fake"]] if how == "alone" else [shards["urls"][0], shards["fake"]]
    with pytest.raises(ConfigError, match=r"shard .*fake\.tar is not a readable tar file"):
        run_build(_config(tmp_path / "o", data))
    assert not (tmp_path / "o").exists()
    args = [a for d in data for a in ("--data", d)]
    result = CliRunner().invoke(main, ["build", "--method", "test", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output and "fake.tar" in result.output
    assert "--data: --data" not in result.output


def test_a_shard_url_webdataset_cannot_open_is_refused_before_any_work(shards, tmp_path):
    with pytest.raises(ConfigError, match=r"s3://bucket/x-0000\.tar: webdataset cannot open s3:// URLs.*pipe:"):
        run_build(_config(tmp_path / "o", [shards["urls"][0], "s3://bucket/x-0000.tar"]))
    assert not (tmp_path / "o").exists()


def test_the_same_shard_given_twice_is_refused(shards, tmp_path):
    again = str(Path(shards["root"]) / ".." / Path(shards["root"]).name / Path(shards["urls"][0]).name)
    with pytest.raises(ConfigError, match="is given twice"):
        run_build(_config(tmp_path / "o", [shards["urls"][0], again]))
    assert not (tmp_path / "o").exists()


def test_a_duplicate_key_in_one_output_shard_is_recorded_and_skipped(shards, tmp_path):
    other = make_wds_shards(tmp_path / "copy", n_shards=1, per_shard=4, seed=5)  # the same keys, other images
    summary = run_build(_config(tmp_path / "o", [shards["urls"][0], other["urls"][0]], shard_size=8))
    assert summary.samples == 4 and summary.errors == 4
    for error in _errors(tmp_path / "o"):
        assert error["path"].startswith(other["urls"][0] + "#")
        assert error["reason"] == f"duplicate key, first seen in {shards['urls'][0]}#{error['key']}"
    samples = editors.read_samples(tmp_path / "o")
    assert all(json.loads(s["json"])["source"].startswith(shards["urls"][0]) for s in samples.values())


def test_a_wids_index_is_read_as_its_shards(shards, tmp_path):
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": "x",
             "shardlist": [{"url": Path(u).name, "nsamples": 4} for u in shards["urls"]]}
    path = Path(shards["root"]) / "index.json"
    path.write_text(json.dumps(index))
    source = open_source(str(path))
    assert source.kind == "shards" and [i.key for i in source] == shards["keys"]
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ConfigError, match=r"other\.json: not a wids shard index"):
        run_build(_config(tmp_path / "o", [str(tmp_path / "other.json")]))


def test_genaug_data_is_named_as_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAUG_DATA", "/nope")
    with pytest.raises(ConfigError) as err:
        run_build(BuildConfig(method=editors.METHOD, out=tmp_path / "o"))
    assert str(err.value).startswith("$GENAUG_DATA=/nope: no such file or folder")
    assert "--data" not in str(err.value).split(";")[0]


def test_a_dangling_symlink_is_recorded_not_dropped(tmp_path):
    folder = make_image_folder(tmp_path / "imgs", n=3, odd=False)
    os.symlink(tmp_path / "gone.jpg", folder["root"] / "link.jpg")
    summary = run_build(_config(tmp_path / "o", [str(folder["root"])]))
    assert summary.samples == 3 and summary.errors == 1
    (error,) = _errors(tmp_path / "o")
    assert error["path"] == str(folder["root"] / "link.jpg") and error["reason"].startswith("broken symlink")


def test_a_folder_that_cannot_be_listed_is_recorded_and_the_walk_goes_on(tmp_path, monkeypatch):
    from genaug.build.sources import base as sources

    folder = make_image_folder(tmp_path / "imgs", n=8, odd=False)  # root, a/, a/b/, c/, x/
    real = sources._sorted_entries

    def listing(path):
        if Path(path) == folder["root"] / "a" or Path(path) == tmp_path / "locked":
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(sources, "_sorted_entries", listing)
    summary = run_build(_config(tmp_path / "o", [str(folder["root"])]))
    under_a = [p for p in folder["good"] if (folder["root"] / "a") in p.parents]
    assert summary.samples == len(folder["good"]) - len(under_a) and summary.errors == 1
    (error,) = _errors(tmp_path / "o")
    assert error["path"] == str(folder["root"] / "a") and error["reason"] == "cannot list folder: Permission denied"
    (tmp_path / "locked").mkdir()
    with pytest.raises(ConfigError, match=r"--data .*locked: cannot read the folder .*Permission denied"):
        run_build(_config(tmp_path / "o2", [str(tmp_path / "locked")]))


def test_a_full_disk_stops_the_build_with_a_build_error_and_a_rerun_resumes(shards, tmp_path, monkeypatch):
    import errno

    from genaug.build.pipeline import BuildError
    from genaug.build.shard import ShardWriter

    data = [shards["urls"][0], shards["urls"][1]]
    run_build(_config(tmp_path / "ref", data))
    real_add = ShardWriter.add

    def add(self, key, members):
        if self.index == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real_add(self, key, members)

    monkeypatch.setattr(ShardWriter, "add", add)
    with pytest.raises(BuildError, match=r"No space left on device .*shard-0001\.tar.*and rerun"):
        run_build(_config(tmp_path / "o", data))
    assert (tmp_path / "o" / "shard-0000.json").exists()
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(ShardWriter, "add", real_add)
    assert run_build(_config(tmp_path / "o", data)).shards_resumed == 1
    assert editors.output_bytes(tmp_path / "o") == editors.output_bytes(tmp_path / "ref")


# ---- weights that cannot be loaded, and checks that need the editor --------------------------------------
def _load_weights(ctx):
    if ctx.options["amplitude"] == 99:
        raise KeyError("unexpected key in the weights_only unpickler")
    torch.load(ctx.weights["w"], map_location="cpu", weights_only=True)
    return editors.InvertNoiseEditor(ctx)


@pytest.fixture
def weighted_preset():
    preset = Preset(name="test-weighted", method=editors.METHOD, description="test preset with a weight file",
                    files=(WeightFile("w", "w.pt", "http://127.0.0.1:9/w.pt", None),), build=_load_weights)
    REGISTRY.register_preset(preset)
    yield preset
    REGISTRY.unregister_preset(preset.name)


def _zip_cut(path: Path) -> bytes:
    torch.save({"a": torch.zeros(4)}, path)
    return path.read_bytes()[:200]


@pytest.mark.parametrize("content,amplitude,error", [
    (b"garbage, not a torch file", 8, pickle.UnpicklingError),
    ("zip-cut", 8, RuntimeError),
    (b"garbage", 99, KeyError),
])
def test_weights_that_cannot_be_loaded_are_a_config_error_and_leave_no_out(
        weighted_preset, tmp_path, content, amplitude, error, shards):
    path = tmp_path / "w.pt"
    path.write_bytes(_zip_cut(tmp_path / "full.pt") if content == "zip-cut" else content)
    out = tmp_path / "out"
    config = _config(out, [shards["urls"][0]], preset=weighted_preset.name, weights=path,
                     options={"amplitude": amplitude})
    with pytest.raises(ConfigError) as err:
        run_build(config)
    text = str(err.value)
    assert str(path) in text and "test-weighted" in text and "--weights" in text
    assert isinstance(err.value.__cause__, error)
    assert not out.exists()


@pytest.mark.parametrize("seed,head", [(0, b""), (1, b"\x80\x02"), (2, b"\x80\x04\x95")])
def test_a_weight_load_error_never_repeats_torchs_weights_only_advice(weighted_preset, tmp_path, shards, seed, head):
    import random

    path = tmp_path / "w.pt"
    path.write_bytes(head + random.Random(seed).randbytes(500))
    config = _config(tmp_path / "out", [shards["urls"][0]], preset=weighted_preset.name, weights=path,
                     options={"amplitude": 8})
    with pytest.raises(ConfigError) as err:
        run_build(config)
    text = str(err.value)
    assert str(path) in text and "weights_only" not in text and "will likely succeed" not in text, text


def test_a_refused_option_value_leaves_no_out(shards, tmp_path):
    out = tmp_path / "new" / "out"
    result = CliRunner().invoke(main, ["build", "--method", "mask", "--preset", "maskgit-tiny", "--class-token",
                                       "fixed:5000", "--data", shards["urls"][0], "--out", str(out)])
    assert result.exit_code == 2 and "fixed:5000" in result.output, result.output
    assert not (tmp_path / "new").exists()


def test_a_genaug_run_is_an_input_through_its_index(shards, tmp_path):
    """A build's own index.json (shards with real.jpg / aug.* / json) feeds another build: the real images are read."""
    first = tmp_path / "first"
    run_build(_config(first, [shards["urls"][0]]))
    second = tmp_path / "second"
    summary = run_build(_config(second, [str(first / "index.json")]))
    assert summary.samples == 4 and summary.errors == 0
    keys = sorted(json.loads(s["json"])["key"] for s in editors.read_samples(second).values())
    assert keys == sorted(json.loads(s["json"])["key"] for s in editors.read_samples(first).values())


def test_a_build_that_skips_every_input_fails(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"not an image")
    result = CliRunner().invoke(main, ["build", "--method", editors.METHOD, "--data", str(folder),
                                       "--out", str(tmp_path / "o"), "--num-workers", "0"])
    assert result.exit_code == 1, result.output
    assert "no pairs written: all 2 inputs were skipped" in result.output
