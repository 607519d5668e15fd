"""Decode one input image and turn it into the model input (runs in decode workers).

``prepare(data, resolution, resample)`` opens the bytes with PIL by content (never by file name),
forces a full decode so truncated files are caught, applies the EXIF orientation, converts any mode
to RGB, and resizes the central square to ``resolution`` x ``resolution`` with Pillow's antialiased
``resample`` filter (bicubic by default; an editor may ask for bilinear through its
``input_resample``, as IC-GAN's official preprocessing does). It returns the model input, the bytes
to store as ``real.jpg`` and the metadata that locates the crop (and names the filter).

Rules (also in docs/inputs-and-inspect.md):

* transparency (RGBA, LA, P with a transparent colour) is composited on white;
* 16-bit and 32-bit grayscale is scaled to 8 bits by the 16-bit range (/257), float (F) as 0..1;
* ``crop_box`` = [left, top, right, bottom] of the central square, in pixels of the
  EXIF-transposed original, and ``orig_size`` is that transposed image's [width, height];
* ``real_bytes`` are the original bytes when the input is an RGB (3-channel) JPEG, even when its
  EXIF orientation is not 1 (``exif_transposed`` is then true): decode real.jpg, apply
  ``PIL.ImageOps.exif_transpose`` (a no-op on the re-encoded ones), then crop_box applies.
  Any other input is re-encoded as the EXIF-transposed RGB image, JPEG quality 95.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from genaug.geometry import centre_square
from genaug.limits import pixels_reason

log = logging.getLogger(__name__)

MIN_SIDE = 16  # inputs with a side shorter than this (pixels) are rejected
REAL_JPEG_QUALITY = 95  # quality of re-encoded real.jpg payloads
EXIF_ORIENTATION_TAG = 0x0112
WHITE = (255, 255, 255)
# nominal maximum of high-bit-depth single-channel modes, mapped to 255
_HIGH_DEPTH_MAX = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}
# exceptions PIL raises while decoding damaged data
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError)
RESAMPLE_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}  # resample names
DEFAULT_RESAMPLE = "bicubic"


class BadInput(ValueError):
    """An input that cannot be used; str(err) is the reason recorded in errors.jsonl."""


@dataclass
class Prepared:
    image: np.ndarray  # (R, R, 3) uint8 RGB model input
    real_bytes: bytes  # payload of real.jpg
    meta: dict  # orig_size, orig_mode, orig_format, exif_transposed, crop_box, resolution, resample


def check_resample(resample: str) -> str:
    """`resample` if it names a filter of RESAMPLE_FILTERS, else ValueError naming the choices."""
    if resample not in RESAMPLE_FILTERS:
        raise ValueError(f"resample={resample!r}: choose one of {sorted(RESAMPLE_FILTERS)}")
    return resample


def prepare(data: bytes, resolution: int, resample: str = DEFAULT_RESAMPLE) -> Prepared:
    """Decode `data` and return the centre-cropped RGB model input resized with the `resample`
    filter ("bicubic" | "bilinear", antialiased); raise BadInput for an unusable input."""
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution={resolution!r}: must be a positive int (the model input side)")
    check_resample(resample)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (set by another library); "
                           "genaug needs it False to detect truncated inputs")
    image = open_image(data)
    orig_mode, orig_format = image.mode, image.format or "unknown"
    orientation = exif_orientation(image)
    upright = ImageOps.exif_transpose(image) if orientation != 1 else image
    rgb = to_rgb(upright)
    width, height = rgb.size
    box = centre_square(width, height)
    # crop first, then resize the square alone (torchvision CenterCrop + Resize, as the official
    # IC-GAN preprocessing does): no pixel outside the crop box reaches the model
    model_input = rgb.crop(box).resize((resolution, resolution), RESAMPLE_FILTERS[resample])
    if orig_format == "JPEG" and orig_mode == "RGB":
        real_bytes = bytes(data)
    else:
        real_bytes = encode_jpeg(rgb, REAL_JPEG_QUALITY)
    meta = {
        "orig_size": [width, height],
        "orig_mode": orig_mode,
        "orig_format": orig_format,
        "exif_transposed": orientation != 1,
        "crop_box": list(box),
        "resolution": resolution,
        "resample": resample,
    }
    return Prepared(image=np.asarray(model_input, dtype=np.uint8).copy(), real_bytes=real_bytes, meta=meta)


def open_image(data: bytes) -> Image.Image:
    """Open and fully decode `data` (first frame); raise BadInput with a reason."""
    if len(data) == 0:
        raise BadInput("zero-byte input")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise BadInput(f"decompression bomb refused: {err}") from err
    except UnidentifiedImageError as err:
        raise BadInput(f"not a recognised image ({_describe_head(data)}, {len(data)} bytes)") from err
    except _DECODE_ERRORS as err:
        raise BadInput(f"truncated or unreadable image header: {err}") from err
    width, height = image.size
    too_many = pixels_reason(width, height)  # from the header, before any pixel is decoded
    if too_many is not None:
        raise BadInput(too_many)
    if min(width, height) < MIN_SIDE:
        raise BadInput(f"image too small: {width}x{height} px (need at least {MIN_SIDE} px on each side)")
    try:
        image.load()
    except _DECODE_ERRORS as err:
        raise BadInput(f"truncated or corrupt {image.format} data: {err}") from err
    return image


def _describe_head(data: bytes) -> str:
    head = data[:16]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"starts with text {head.decode('ascii')!r}"
    return f"starts with bytes {head[:8].hex()}"


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8) of `image`; 1 when absent, invalid or unparsable."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS as err:
        log.debug("ignoring unparsable EXIF block: %s", err)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white, high depth scaled)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _HIGH_DEPTH_MAX:
        values = np.asarray(image, dtype=np.float32) * (255.0 / _HIGH_DEPTH_MAX[mode])
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if (mode == "P" and "transparency" in image.info) or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
