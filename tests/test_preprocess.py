"""prepare(): decoding by content, mode conversion, EXIF orientation, centre crop, BadInput reasons."""

import io

import numpy as np
import pytest
from imagefactory import (
    BROKEN_KINDS,
    ODD_KINDS,
    broken_file_bytes,
    jpeg_bytes,
    odd_file_bytes,
    pattern_array,
    png_bytes,
)
from PIL import Image, ImageFile

from genaug.build.preprocess import BadInput, prepare
from genaug.geometry import centre_square

EXPECTED_MODE = {"png_named_jpeg": "RGB", "cmyk": "CMYK", "gray": "L", "palette": "P", "rgba": "RGBA",
                 "gray16": "I;16", "exif_rot6": "RGB", "wide": "RGB"}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ODD_KINDS)
def test_odd_inputs_become_rgb_model_inputs(kind):
    data = odd_file_bytes(kind, seed=3)
    out = prepare(data, 32)
    assert out.image.shape == (32, 32, 3) and out.image.dtype == np.uint8
    assert out.image.std() > 1.0  # structure survived, not a flat fill
    assert out.meta["orig_mode"] == EXPECTED_MODE[kind]
    assert out.meta["resolution"] == 32
    real = Image.open(io.BytesIO(out.real_bytes))
    assert real.format == "JPEG"
    is_rgb_jpeg = kind in ("exif_rot6", "wide")
    assert (out.real_bytes == data) == is_rgb_jpeg
    if not is_rgb_jpeg:  # re-encoded: RGB, upright, full size
        assert real.mode == "RGB" and list(real.size) == out.meta["orig_size"]


def test_png_named_jpeg_is_opened_by_content():
    out = prepare(odd_file_bytes("png_named_jpeg"), 24)
    assert out.meta["orig_format"] == "PNG" and out.meta["orig_size"] == [60, 44]


def test_model_input_is_centre_square_resized_bicubic():
    array = pattern_array(90, 50, seed=11)
    out = prepare(_png(array), 40)
    assert out.meta["crop_box"] == [20, 0, 70, 50]
    reference = Image.fromarray(array).crop((20, 0, 70, 50)).resize((40, 40), Image.Resampling.BICUBIC)
    diff = np.abs(out.image.astype(int) - np.asarray(reference).astype(int))
    assert diff.max() <= 1


def test_centre_region_only_reaches_the_model():
    array = np.zeros((40, 100, 3), np.uint8)
    array[:, :] = (255, 0, 0)
    array[:, 30:70] = (0, 200, 0)  # exactly the central 40x40 square
    out = prepare(_png(array), 16)
    # the square is cropped before it is resized: nothing of the red margins reaches the model
    assert np.abs(out.image.astype(int) - [0, 200, 0]).max() <= 1


@pytest.mark.parametrize("width,height,box", [(64, 40, (12, 0, 52, 40)), (41, 80, (0, 20, 41, 61)),
                                              (33, 33, (0, 0, 33, 33)), (50, 47, (2, 0, 49, 47)),
                                              (52, 47, (2, 0, 49, 47))])
def test_centre_square(width, height, box):
    assert centre_square(width, height) == box
    # the same offsets as torchvision's centre crop (the official IC-GAN preprocessing)
    from torchvision.transforms.functional import center_crop
    image = Image.new("RGB", (width, height))
    for x in range(width):
        image.putpixel((x, 0), (x, 0, 0))
    for y in range(height):
        image.putpixel((0, y), (0, y, 0))
    side = min(width, height)
    cropped = center_crop(image, [side, side])
    assert Image.Image.crop(image, box).tobytes() == cropped.tobytes()


def test_exif_rotation_swaps_dims_and_matches_rotated_pixels():
    data = jpeg_bytes(64, 40, seed=5, exif_orientation=6)
    out = prepare(data, 24)
    assert out.meta["exif_transposed"] is True
    assert out.meta["orig_size"] == [40, 64]
    assert out.meta["crop_box"] == [0, 12, 40, 52]
    assert out.real_bytes == data  # original bytes kept; crop_box refers to the transposed image
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    upright = np.rot90(stored, k=-1)  # orientation 6: the stored image must be turned 90 degrees clockwise
    assert np.array_equal(prepare(_png(np.ascontiguousarray(upright)), 24).image, out.image)


def test_plain_rgb_jpeg_keeps_original_bytes():
    data = jpeg_bytes(50, 60, seed=1)
    out = prepare(data, 32)
    assert out.real_bytes == data
    assert out.meta == {"orig_size": [50, 60], "orig_mode": "RGB", "orig_format": "JPEG",
                        "exif_transposed": False, "crop_box": [0, 5, 50, 55], "resolution": 32,
                        "resample": "bicubic"}


def test_resample_filter_is_honoured_and_recorded():
    data = jpeg_bytes(97, 71, seed=3)
    bicubic, bilinear = prepare(data, 24), prepare(data, 24, resample="bilinear")
    assert (bicubic.meta["resample"], bilinear.meta["resample"]) == ("bicubic", "bilinear")
    assert not np.array_equal(bicubic.image, bilinear.image)
    rgb = Image.open(io.BytesIO(data)).convert("RGB")
    box = tuple(bilinear.meta["crop_box"])
    square = rgb.crop(box)
    assert np.array_equal(bilinear.image, np.asarray(square.resize((24, 24), Image.BILINEAR)))
    assert np.array_equal(bicubic.image, np.asarray(square.resize((24, 24), Image.BICUBIC)))


def test_unknown_resample_filter_is_refused():
    with pytest.raises(ValueError, match="resample='nearest'.*bicubic"):
        prepare(jpeg_bytes(40, 40, seed=1), 24, resample="nearest")


def test_alpha_is_composited_on_white():
    data = png_bytes(48, 48, seed=2, mode="RGBA")  # alpha 0 in the left column, 255 in the right
    out = prepare(data, 48)
    assert out.image[:, 0].min() >= 250
    opaque = np.asarray(Image.open(io.BytesIO(data)))[:, -1, :3].astype(int)
    assert np.abs(out.image[:, -1].astype(int) - opaque).max() <= 3


def test_palette_transparency_is_white():
    image = Image.fromarray(pattern_array(40, 40, seed=4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    index = image.getpixel((0, 0))
    buf = io.BytesIO()
    image.save(buf, "PNG", transparency=index)
    out = prepare(buf.getvalue(), 40)
    assert tuple(out.image[0, 0]) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    gray8 = np.asarray(Image.fromarray(pattern_array(40, 40, seed=9)).convert("L"))
    wide = Image.fromarray(gray8.astype(np.uint16) * 257)
    assert wide.mode == "I;16"
    buf = io.BytesIO()
    wide.save(buf, "PNG")
    out = prepare(buf.getvalue(), 40)
    assert np.array_equal(out.image, prepare(_png(gray8), 40).image)


REASONS = {"truncated": "truncated", "zero_byte": "zero-byte", "text": "not a recognised image",
           "tiny": "too small", "bomb": "decompression bomb"}


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_broken_inputs_raise_bad_input_with_reason(kind):
    with pytest.raises(BadInput, match=REASONS[kind]):
        prepare(broken_file_bytes(kind), 32)


def test_truncated_png_and_16px_boundary():
    data = png_bytes(64, 48, seed=1)
    with pytest.raises(BadInput, match="truncated"):
        prepare(data[: len(data) * 3 // 4], 16)
    assert prepare(jpeg_bytes(16, 40), 16).image.shape == (16, 16, 3)
    with pytest.raises(BadInput, match="15x40"):
        prepare(jpeg_bytes(15, 40), 16)


def test_bad_input_is_value_error_and_resolution_is_validated():
    assert issubclass(BadInput, ValueError)
    with pytest.raises(ValueError, match="resolution=0"):
        prepare(jpeg_bytes(), 0)


def test_refuses_to_run_with_load_truncated_images(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        prepare(jpeg_bytes(), 16)
