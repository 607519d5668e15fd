"""The device-side JPEG path (torchvision.io.decode_jpeg + crop + antialiased resize) against the PIL path
of preprocess.prepare: same crop box (also with EXIF orientation), pixels within 2 grey levels."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from genaug.build.devicedecode import decode_batch, split_jpegs
from genaug.build.preprocess import prepare


def _jpeg(width: int, height: int, seed: int, orientation: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8))
    pixels = np.asarray(base.resize((width, height), Image.BICUBIC), dtype=np.float32)
    pixels = np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(buf, format="JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


CASES = [(500, 375, 1), (375, 500, 1), (333, 500, 1), (201, 150, 1), (120, 90, 6), (90, 120, 8), (64, 64, 3)]


@pytest.mark.parametrize("resample", ["bicubic", "bilinear"])
def test_device_path_matches_the_pil_crop_and_pixels_closely(resample):
    datas = [_jpeg(w, h, i, o) for i, (w, h, o) in enumerate(CASES)]
    got = decode_batch(datas, 64, resample, "cpu")
    assert got.images.shape == (len(CASES), 3, 64, 64) and got.images.dtype == torch.uint8
    for i, data in enumerate(datas):
        ref = prepare(data, 64, resample)
        assert got.metas[i]["crop_box"] == ref.meta["crop_box"] and got.metas[i]["orig_size"] == ref.meta["orig_size"]
        diff = (got.images[i].permute(1, 2, 0).int() - torch.from_numpy(ref.image).int()).abs().float()
        assert diff.max() <= 2 and diff.mean() < 0.5, (CASES[i], float(diff.max()), float(diff.mean()))


def test_only_jpegs_take_the_device_path_and_bad_data_is_an_error():
    png = io.BytesIO()
    Image.new("RGB", (40, 40)).save(png, format="PNG")
    jpeg = _jpeg(40, 40, 0)
    assert split_jpegs([png.getvalue(), jpeg, b""]) == ([1], [0, 2])
    with pytest.raises(ValueError, match="decode_jpeg failed"):
        decode_batch([jpeg[:200] + b"\x00" * 10], 32, "bicubic", "cpu")
    with pytest.raises(ValueError, match="too small"):
        decode_batch([_jpeg(12, 40, 1)], 32, "bicubic", "cpu")
    with pytest.raises(ValueError, match="resample"):
        decode_batch([jpeg], 32, "lanczos", "cpu")


@pytest.mark.gpu
def test_cuda_decode_is_within_two_levels_of_the_cpu_path():
    datas = [_jpeg(w, h, i, o) for i, (w, h, o) in enumerate(CASES)]
    cpu = decode_batch(datas, 64, "bicubic", "cpu")
    cuda = decode_batch(datas, 64, "bicubic", "cuda")
    assert cuda.images.is_cuda and [m["crop_box"] for m in cuda.metas] == [m["crop_box"] for m in cpu.metas]
    assert (cuda.images.cpu().int() - cpu.images.int()).abs().max() <= 2
