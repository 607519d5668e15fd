"""`genaug models` and `genaug convert` (the latter end to end on the tiny official-format fixture)."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from genaug import weights
from genaug.cli.main import main
from genaug.methods import mask as mask_method
from genaug.registry import REGISTRY, EditorContext, Preset, WeightFile

FIXTURES = Path(__file__).parent / "fixtures" / "maskgit"
ALL = ["icgan-imagenet128", "icgan-imagenet256", "icgan-imagenet64", "icgan-tiny", "maskgit-imagenet256", "maskgit-tiny"]


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_models_text_lists_every_preset_and_missing_files():
    result = _run("models")
    assert result.exit_code == 0, result.output
    for name in ALL:
        assert name in result.output
    assert str(weights.genaug_home()) in result.output
    assert "MISSING" in result.output and "random weights" in result.output
    assert "https://storage.googleapis.com/maskgit-public/checkpoints/maskgit_imagenet256_checkpoint" in result.output


def test_models_json_reports_presence():
    preset = REGISTRY.preset("maskgit-imagenet256")
    folder = weights.preset_dir(preset)
    folder.mkdir(parents=True)
    (folder / "tokenizer_imagenet256_checkpoint").write_bytes(b"x")
    data = json.loads(_run("models", "--json").output)
    assert data["home"] == str(weights.genaug_home())
    rows = {r["name"]: r for r in data["presets"]}
    assert sorted(rows) == ALL
    files = {f["name"]: f for f in rows["maskgit-imagenet256"]["files"]}
    assert files["tokenizer"]["present"] and not files["transformer"]["present"]
    assert not rows["maskgit-imagenet256"]["ready"] and rows["maskgit-imagenet256"]["default"]
    assert rows["maskgit-tiny"]["random_init"] and rows["maskgit-tiny"]["ready"]
    assert rows["icgan-imagenet256"]["files"][0]["archive_member"] == "icgan_biggan_imagenet_res256/G_ema_best0.pth"


def test_models_method_filter():
    data = json.loads(_run("models", "--json", "--method", "noise").output)
    assert {r["method"] for r in data["presets"]} == {"noise"}
    bad = _run("models", "--method", "blur")
    assert bad.exit_code == 2 and "blur" in bad.output


def test_convert_errors():
    unknown = _run("convert", "--preset", "nope")
    assert unknown.exit_code == 2 and "nope" in unknown.output
    tiny = _run("convert", "--preset", "maskgit-tiny")
    assert tiny.exit_code == 2 and "no converter" in tiny.output
    missing = _run("convert", "--preset", "maskgit-imagenet256", "--no-download")
    assert missing.exit_code == 1
    assert "https://storage.googleapis.com/maskgit-public/checkpoints/tokenizer_imagenet256_checkpoint" in missing.output
    assert str(weights.preset_dir(REGISTRY.preset("maskgit-imagenet256")) / "tokenizer_imagenet256_checkpoint") in (
        missing.output)


@pytest.fixture
def fixture_preset(monkeypatch, tmp_path):
    """A preset of the tiny official-format fixture checkpoints, with its converter registered."""
    config = json.loads((FIXTURES / "config.json").read_text())["config"]
    config["channel_multipliers"] = tuple(config["channel_multipliers"])
    folder = tmp_path / "official"
    folder.mkdir()
    for name in ("tokenizer", "transformer"):
        (folder / f"{name}.msgpack").write_bytes(gzip.decompress((FIXTURES / f"{name}.msgpack.gz").read_bytes()))
    preset = Preset(
        name="maskgit-fixture", method="mask", description="fixture",
        files=(WeightFile("tokenizer", "tokenizer.msgpack", "http://127.0.0.1:9/t", None),
               WeightFile("transformer", "transformer.msgpack", "http://127.0.0.1:9/m", None)),
        build=mask_method.official_builder(config),
    )
    REGISTRY.register_preset(preset)
    monkeypatch.setitem(weights.CONVERTERS, preset.name, functools.partial(mask_method.convert_official, config=config))
    yield preset, folder
    REGISTRY.unregister_preset(preset.name)


def _edit(preset: Preset, resolved: weights.ResolvedWeights) -> torch.Tensor:
    opts = REGISTRY.method("mask").validate_options({"class_token": "fixed:1", "num_iter": 4})
    editor = preset.build(EditorContext(preset, resolved.paths, torch.device("cpu"), "fp32", opts))
    images = torch.randint(0, 256, (2, 3, editor.resolution, editor.resolution), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    return editor.edit(images, [1, 2], torch.full((2,), -1)).images


def test_convert_end_to_end_and_converted_file_is_used(fixture_preset):
    preset, folder = fixture_preset
    official = weights.resolve(preset, override=folder)
    assert set(official.paths) == {"tokenizer", "transformer"}
    result = _run("convert", "--preset", preset.name, "--weights", str(folder))
    assert result.exit_code == 0, result.output
    target = weights.converted_path(preset)
    assert target.is_file() and "sha256" in result.output
    converted = weights.resolve(preset, download=False)  # the cache now prefers the converted file
    assert converted.paths == {weights.CONVERTED_NAME: target}
    assert torch.equal(_edit(preset, official), _edit(preset, converted))
    rows = {r["name"]: r for r in json.loads(_run("models", "--json").output)["presets"]}
    assert rows[preset.name]["converted"] == str(target) and rows[preset.name]["ready"]


def test_convert_to_explicit_out(fixture_preset, tmp_path):
    preset, folder = fixture_preset
    out = tmp_path / "mine.pt"
    result = _run("convert", "--preset", preset.name, "--weights", str(folder), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.is_file() and not weights.converted_path(preset).exists()
    assert weights.resolve(preset, override=out).paths == {weights.CONVERTED_NAME: out}
