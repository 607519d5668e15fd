"""`genaug build` through click's CliRunner: a full run, and every validation error before any work."""

import json

import pytest
import torch
from click.testing import CliRunner
from imagefactory import make_image_folder, make_imagenet_folder

from genaug.cli.main import main
from genaug.testing import editors

pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=2, per_class=3)


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("plain"), n=3, odd=False)


def _run(*args):
    return CliRunner().invoke(main, ["build", *map(str, args)])


def test_build_writes_shards_and_prints_a_summary(folder, tmp_path):
    out = tmp_path / "out"
    result = _run("--method", "test", "--data", folder["train"], "--out", out, "--shard-size", 4,
                  "--batch-size", 2, "--num-workers", 0, "--amplitude", 3, "--aug-format", "webp", "--quality", 80)
    assert result.exit_code == 0, result.output
    n_good, n_bad = len(folder["good"]), len(folder["skipped"])
    assert f"{n_good} pairs written, {n_bad} inputs skipped" in result.output
    samples = editors.read_samples(out)
    assert len(samples) == n_good and all("aug.webp" in s for s in samples.values())
    assert all(json.loads(s["json"])["edit"]["amplitude"] == 3 for s in samples.values())
    errors = [json.loads(line)["path"] for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(errors) == sorted(map(str, folder["skipped"]))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"][:4] == ["genaug", "build", "--method", "test"]
    assert manifest["config"]["aug_format"] == "webp" and manifest["config"]["quality"] == 80
    verify = CliRunner().invoke(main, ["inspect", str(out), "--verify"])
    assert verify.exit_code == 0, verify.output

    again = _run("--method", "test", "--data", folder["train"], "--out", out, "--shard-size", 4,
                 "--num-workers", 0, "--amplitude", 3, "--aug-format", "webp", "--quality", 80, "--quiet")
    assert again.exit_code == 0 and again.output == ""


def test_default_batch_size_is_the_editors_compute_chunk(folder, tmp_path):
    """--batch-size auto (the default) runs whole compute chunks: 8 on the CPU for the tiny MaskGIT, one per
    chunk worker (CPU core), no padded chunk for a shard of 8; an explicit --batch-size auto gives the
    same bytes."""
    common = ("--method", "mask", "--preset", "maskgit-tiny", "--class-token", "random", "--num-iter", 2,
              "--data", folder["train"], "--shard-size", 8, "--num-workers", 0, "--device", "cpu", "--quiet")
    result = _run(*common, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    editor = manifest["editor"]
    auto = editor["compute_chunk"] * editor["chunk_workers"]
    assert editor["compute_chunk"] == 8 and editor["chunk_workers"] >= 1
    assert manifest["config"]["batch_size"] == auto == manifest["timing"]["batch_size"]
    stats = json.loads((tmp_path / "a" / "shard-0000.json").read_text())
    assert stats["batch_size"] == auto
    assert _run(*common, "--batch-size", "auto", "--out", tmp_path / "b").exit_code == 0
    assert (tmp_path / "a" / "shard-0000.tar").read_bytes() == (tmp_path / "b" / "shard-0000.tar").read_bytes()


def test_help_lists_the_registered_method_options():
    result = CliRunner().invoke(main, ["build", "--help"])
    assert result.exit_code == 0
    for flag in ("--amplitude", "--class-token", "--truncation", "--scores", "--shard-size"):
        assert flag in result.output


BAD_ARGS = [
    (["--method", "bogus"], "unknown method 'bogus'"),
    (["--method", "test", "--preset", "nope"], "unknown preset 'nope'"),
    (["--method", "test", "--preset", "maskgit-tiny"], "belongs to method 'mask'"),
    (["--method", "test", "--batch-size", "0"], "--batch-size 0"),
    (["--method", "test", "--batch-size", "big"], "'big' is neither auto nor an integer"),
    (["--method", "test", "--quality", "101"], "--quality 101"),
    (["--method", "test", "--limit", "0"], "--limit 0"),
    (["--method", "test", "--num-workers", "-1"], "--num-workers -1"),
    (["--method", "test", "--shard-size", "0"], "--shard-size 0"),
    (["--method", "test", "--device", "tpu"], "--device 'tpu'"),
    (["--method", "test", "--scores", "lpips"], "--scores lpips"),
    (["--method", "test", "--num-iter", "3"], "option(s) of method ['mask']"),
    (["--method", "test", "--amplitude", "loud"], "'loud' is not a valid integer"),
    (["--method", "mask", "--preset", "maskgit-tiny", "--num-iter", "0"], "--num-iter 0"),
    (["--method", "noise", "--preset", "icgan-imagenet256", "--weights", "/nonexistent/w"], "no such file"),
    (["--method", "noise", "--preset", "icgan-tiny", "--weights", "/nonexistent/w"], "uses no weight files"),
]


@pytest.mark.parametrize("args,message", BAD_ARGS, ids=[a[1] for a in BAD_ARGS])
def test_bad_arguments_fail_before_any_work(folder, tmp_path, args, message):
    out = tmp_path / "out"
    result = _run(*args, "--data", folder["train"], "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_device_without_cuda_is_refused(folder, tmp_path):
    result = _run("--method", "test", "--device", "cuda", "--data", folder["train"], "--out", tmp_path / "o")
    assert result.exit_code == 2 and "CUDA is not available here; use --device cpu" in result.output


def test_missing_data_and_unusable_out_are_refused(folder, tmp_path):
    result = _run("--method", "test", "--data", tmp_path / "missing", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "missing: no such file or folder" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run("--method", "test", "--data", folder["train"], "--out", blocker / "sub")
    assert result.exit_code == 2 and "cannot create it" in result.output and "writable folder" in result.output


def test_label_strategy_on_unlabelled_data_is_refused(unlabelled, tmp_path):
    result = _run("--method", "mask", "--preset", "maskgit-tiny", "--data", unlabelled["root"],
                  "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert "--class-token label" in result.output and "has no labels" in result.output
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_editor_failure_is_reported_with_exit_1(folder, tmp_path):
    result = _run("--method", "test", "--data", folder["train"], "--out", tmp_path / "o", "--num-workers", 0,
                  "--fail-label", 1)
    assert result.exit_code == 1
    assert "failed on a batch of shard 0" in result.output and "rerun the same command to resume" in result.output
