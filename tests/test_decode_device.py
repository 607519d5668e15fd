"""--decode-device: JPEG inputs decoded by torchvision (devicedecode.py) inside a build. On the CPU the library
value "torchvision-cpu" runs the same path; against the PIL build every json (crop box, sizes, EXIF), every
real.jpg and every recorded bad input is identical and the edited pixels differ by at most 3 grey levels."""

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from imagefactory import make_imagenet_folder
from PIL import Image

from genaug.build import devicedecode
from genaug.build.config import ConfigError, resolve, resolve_decode_device
from genaug.build.pipeline import run_build
from genaug.build.preprocess import jpeg_header, prepare
from genaug.build.workers import Decoded
from genaug.build.workers import decode_batch as worker_decode
from genaug.cli.main import main
from genaug.testing import editors

pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=3, per_class=4)


def _config(folder, out, **kw):
    return editors.build_config(out, folder["train"], **{"shard_size": 5, "batch_size": 3, "seed": 7,
                                                         "aug_format": "png", "options": {"amplitude": 0}, **kw})


@pytest.fixture(scope="module")
def builds(folder, tmp_path_factory):
    pil, tv = tmp_path_factory.mktemp("pil"), tmp_path_factory.mktemp("tv")
    run_build(_config(folder, pil))
    run_build(_config(folder, tv, decode_device="torchvision-cpu"))
    return pil, tv


def _aug(sample) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(sample["aug.png"])), dtype=np.int64)


def test_torchvision_build_matches_the_pil_build(folder, builds):
    pil, tv = builds
    assert (tv / "errors.jsonl").read_bytes() == (pil / "errors.jsonl").read_bytes()  # same bad inputs, reasons
    ref, got = editors.read_samples(pil), editors.read_samples(tv)
    assert sorted(got) == sorted(ref) and len(got) == len(folder["good"])
    diffs = []
    for key, sample in got.items():
        assert sample["json"] == ref[key]["json"]  # crop_box, orig_size, exif_transposed, ... identical
        assert sample["real.jpg"] == ref[key]["real.jpg"] and sample.get("cls") == ref[key].get("cls")
        diffs.append(np.abs(_aug(sample) - _aug(ref[key])))
    diff = np.concatenate([d.ravel() for d in diffs])
    # small sharp-edged pattern images (40-64 px to 32 px): up to 3 levels (docs/build.md), mean ~0.1
    assert diff.max() <= 3 and diff.mean() < 0.25, (diff.max(), diff.mean())
    assert diff.max() > 0  # the inputs really went through the other decoder


def test_fingerprint_and_manifest_name_the_decode_path(folder, builds, tmp_path):
    pil, tv = builds
    old, new = (json.loads((p / "manifest.json").read_text()) for p in (pil, tv))
    assert "input_decode" not in old["fingerprint_inputs"]  # the PIL path keeps the fingerprint of older runs
    assert new["fingerprint_inputs"]["input_decode"] == "torchvision-cpu"
    assert old["config_fingerprint"] != new["config_fingerprint"]
    assert new["config"]["decode_device"] == "torchvision-cpu" and "torchvision" in new["input_decode"]
    assert old["config"]["decode_device"] == "cpu" and "PIL" in old["input_decode"]
    with pytest.raises(ConfigError, match="input_decode"):  # no resume across decode paths
        run_build(_config(folder, pil, decode_device="torchvision-cpu"))


def test_torchvision_build_is_batch_size_independent_and_repeatable(folder, builds, tmp_path):
    run_build(_config(folder, tmp_path, decode_device="torchvision-cpu", batch_size=2))
    assert editors.output_bytes(tmp_path) == editors.output_bytes(builds[1])


def _jpeg(width, height, seed, orientation=1) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        buf, format="JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def _decoded(datas, tmp_path, device_jpegs=True):
    from genaug.build.sources import open_source

    for i, data in enumerate(datas):
        (tmp_path / f"img_{i}.jpg").write_bytes(data)
    items = list(open_source(str(tmp_path)))
    return worker_decode(items, 32, "bicubic", device_jpegs)[0]


def test_a_failed_batch_falls_back_to_pil_per_sample(tmp_path, monkeypatch):
    good = [_jpeg(60, 40, 1), _jpeg(40, 70, 2, orientation=6)]
    corrupt = good[0][:400] + bytes(200) + good[0][600:]  # header and end marker intact, scan data broken
    decoded = _decoded(good + [corrupt], tmp_path)
    assert all(d.prepared.image is None for d in decoded)  # left for the device

    def broken(raw, device):
        raise RuntimeError("simulated decode_jpeg failure")

    monkeypatch.setattr(devicedecode, "torchvision_decode", broken)
    out = devicedecode.decode_on_device(decoded, 32, "bicubic", torch.device("cpu"))
    for d in out:
        ref = prepare(d.prepared.real_bytes, 32, "bicubic")
        assert isinstance(d.prepared.image, np.ndarray) and np.array_equal(d.prepared.image, ref.image)
        assert d.prepared.meta == ref.meta


def test_only_complete_rgb_jpegs_wait_for_the_device(tmp_path):
    jpeg = _jpeg(50, 40, 3, orientation=8)
    header = jpeg_header(jpeg, 32)
    assert header.image is None and header.meta == prepare(jpeg, 32).meta and header.real_bytes == jpeg
    gray = io.BytesIO()
    Image.new("L", (40, 40)).save(gray, format="JPEG")
    png = io.BytesIO()
    Image.new("RGB", (40, 40)).save(png, format="PNG")
    for data in (jpeg[:-300], gray.getvalue(), png.getvalue(), _jpeg(12, 40, 4), b""):
        assert jpeg_header(data, 32) is None
    decoded = _decoded([jpeg, jpeg[:-300]], tmp_path)
    out = devicedecode.decode_on_device(decoded, 32, "bicubic", torch.device("cpu"))
    assert isinstance(out[0].prepared.image, torch.Tensor) and out[0].prepared.image.shape == (3, 32, 32)
    assert out[1].prepared is None and out[1].reason == worker_decode(  # truncated: PIL's reason, as today
        [dataclasses.replace(decoded[1].item, data=jpeg[:-300])], 32)[0][0].reason
    assert isinstance(out[1], Decoded)


def test_decode_device_is_checked_before_any_work(folder, tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_decode_device("cpu", cpu) is None and resolve_decode_device("auto", cpu) is None
    assert resolve_decode_device("torchvision-cpu", cpu) == cpu
    with pytest.raises(ConfigError, match=r"--decode-device 'gpu'.*\['cpu', 'cuda', 'auto'\]"):
        resolve(_config(folder, tmp_path / "a", decode_device="gpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--decode-device cuda: CUDA is not available; use --decode-device cpu"):
        resolve(_config(folder, tmp_path / "b", decode_device="cuda", device="cpu"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cli_refuses_cuda_decode_without_cuda(folder, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", "--method", "test", "--data", str(folder["train"]), "--out", str(out),
                                       "--decode-device", "cuda"])
    assert result.exit_code == 2 and "--decode-device cuda: CUDA is not available" in result.output, result.output
    assert not out.exists()


@pytest.mark.gpu
def test_cuda_decode_build_matches_the_pil_build(folder, builds, tmp_path):
    run_build(_config(folder, tmp_path, decode_device="cuda", device="cuda"))
    assert (tmp_path / "errors.jsonl").read_bytes() == (builds[0] / "errors.jsonl").read_bytes()
    ref, got = editors.read_samples(builds[0]), editors.read_samples(tmp_path)
    assert sorted(got) == sorted(ref)
    for key, sample in got.items():
        assert sample["json"] == ref[key]["json"] and sample["real.jpg"] == ref[key]["real.jpg"]
        assert np.abs(_aug(sample) - _aug(ref[key])).max() <= 3
