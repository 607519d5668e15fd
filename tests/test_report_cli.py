"""`genaug report` end to end through click's CliRunner on small synthetic shards.

FID here is computed with a RANDOMLY INITIALISED Inception of the FID architecture, saved to a file
and passed as --inception-weights: a stand-in for the real weights, which tests never download.
The CLI cannot tell the difference; the refusal without any weights file is tested separately.
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from genaug.cli.main import main
from genaug.report import fid
from genaug.testing.shardfactory import make_shards

N_SAMPLES = 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    make_shards(out, n_samples=N_SAMPLES + 1, shard_size=2, broken_aug_keys=["n01440765_00001"])
    return out


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "random-inception-standin.pth"
    torch.save(fid.random_inception_state_dict(seed=0), path)
    return path


@pytest.fixture(scope="module")
def full_run(shards, random_weights, tmp_path_factory):
    """One report with FID from the random-Inception stand-in, classic rows on, batch 3."""
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(main, ["report", str(shards), "--out", str(out), "--inception-weights",
                                       str(random_weights), "--batch-size", "3", "--device", "cpu"])
    return result, out


def _table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:] if "stage" not in line]


def test_report_writes_filled_table(full_run):
    result, out = full_run
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    rows = [r for r in _table_rows(markdown) if len(r) == 11]
    labels = [r[0] for r in rows]
    assert labels == ["mask (shardfactory-synthetic)", "Crop", "Color jitter", "Gaussian blur"]
    generative = rows[0]
    assert generative[1] == str(N_SAMPLES)  # the broken sample is left out
    assert not any(cell in ("unknown", "not computed", "") for cell in generative), generative
    for row in rows:
        assert float(row[2]) >= 0 and 0 < float(row[3]) <= 1 and 0 < float(row[4]) <= 1
    assert "mask (shardfactory-synthetic)" in result.output  # the table is printed too
    assert "bound by" in markdown and "gaussian_kernel=True" in markdown and "sigma=1.5" in markdown


def test_report_json_records_scores_timing_and_errors(full_run):
    _, out = full_run
    report = json.loads((out / "report.json").read_text())
    gen = report["rows"][0]
    assert gen["samples"] == N_SAMPLES and gen["fid"] > 0
    assert gen["ms_batch1"] == 5.0 and gen["ms_batch"] == 1.0 and gen["batch_size"] == 8  # from manifest.json
    assert gen["images_per_s_model"] == pytest.approx(1000.0)
    assert report["errors"]["count"] == 1 and report["errors"]["first"][0]["key"] == "n01440765_00001"
    assert report["settings"]["fid"]["computed"] is True
    assert report["settings"]["ssim"]["data_range"] == 255.0
    assert len(report["warnings"]) == 1 and "fewer samples than the 2048" in report["warnings"][0]
    crop = next(r for r in report["rows"] if r["label"] == "Crop")
    assert crop["ms_batch1"] > 0 and crop["parameters"] is None


def test_pictures_exist_and_are_not_blank(full_run):
    _, out = full_run
    report = json.loads((out / "report.json").read_text())
    names = [report["pictures"]["ssim_histogram"], report["pictures"]["throughput"],
             *report["pictures"]["contact_sheets"].values()]
    assert len(names) == 3
    for name in names:
        image = np.asarray(Image.open(out / name).convert("L"), dtype=np.float32)
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 10, name  # drawn content, not an empty canvas
        assert f"]({name})" in (out / "report.md").read_text()


def test_refuses_fid_without_weights_file(shards, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    result = CliRunner().invoke(main, ["report", str(shards), "--out", str(tmp_path / "rep")])
    assert result.exit_code != 0
    assert fid.FID_WEIGHTS_FILENAME in result.output and fid.FID_WEIGHTS_URL in result.output
    assert str(tmp_path / "hub" / "checkpoints") in result.output and "--no-fid" in result.output
    assert not (tmp_path / "rep" / "report.md").exists()


def test_no_fid_says_not_computed(shards, tmp_path):
    result = CliRunner().invoke(main, ["report", str(shards), "--out", str(tmp_path), "--no-fid",
                                       "--no-classic", "--max-samples", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [r for r in _table_rows((tmp_path / "report.md").read_text()) if len(r) == 11]
    assert len(rows) == 1 and rows[0][2] == "not computed" and rows[0][1] == "2"
    assert json.loads((tmp_path / "report.json").read_text())["rows"][0]["fid"] is None


@pytest.mark.parametrize("args, message", [
    (["--no-fid", "--inception-weights", "w.pth"], "contradict"),
    (["--no-fid", "--device", "tpu"], "--device"),
    (["--no-fid", "--batch-size", "0"], "--batch-size"),
])
def test_bad_arguments_are_refused(shards, tmp_path, args, message):
    result = CliRunner().invoke(main, ["report", str(shards), "--out", str(tmp_path / "rep"), *args])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "rep").exists()


def test_folder_without_shards_and_invalid_weights(shards, tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), "--no-fid"])
    assert result.exit_code != 0 and "no .tar shards" in result.output
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r"),
                                       "--inception-weights", str(bad)])
    assert result.exit_code != 0 and "no .tar shards" in result.output  # shards are checked first
    result = CliRunner().invoke(main, ["report", str(shards), "--out", str(tmp_path / "r"),
                                       "--inception-weights", str(bad)])
    assert result.exit_code != 0 and "not pytorch-fid's Inception weights" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content", [b"hello world\n" * 50, b"", b"PK\x03\x04junk" * 8, b"\x80\x02}q\x00."])
def test_junk_weights_file_is_a_usage_error(shards, tmp_path, content):
    """torch's weights-only unpickler raises KeyError / EOFError / RuntimeError on such files."""
    junk = tmp_path / "junk.pth"
    junk.write_bytes(content)
    result = CliRunner().invoke(main, ["report", str(shards), "--out", str(tmp_path / "r"), "--device", "cpu",
                                       "--inception-weights", str(junk)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert str(junk) in result.output and "not pytorch-fid's Inception weights" in result.output
    assert "--no-fid" in result.output and not (tmp_path / "r").exists()


def test_cuda_without_cuda_is_a_usage_error(shards, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(main, ["report", str(shards), "--out", str(tmp_path / "r"), "--no-fid",
                                       "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "--device" in result.output and "CUDA is not available" in result.output
    assert not (tmp_path / "r").exists()
