"""JPEG decode, centre crop and resize on a torch device (`torchvision.io.decode_jpeg`, batched on CUDA):
the fast path of an optional device-side input stage, beside the PIL path of `preprocess.prepare`.

Same geometry as the PIL path: EXIF orientation applied, the crop box from `preprocess.centre_square`
of the upright image, crop first, then an antialiased bicubic/bilinear resize of the square alone
(`torch.nn.functional.interpolate(..., antialias=True)` on float, rounded to uint8). The pixels are
close to, not equal to, PIL's (different resampling arithmetic; `benchmarks`/docs give the measured
difference), so a build that uses this path writes other bytes than the PIL path.

Only baseline/progressive JPEGs that decode to 3 channels take this path: `split_jpegs` sends every other
input (PNG, grayscale or CMYK JPEG, damaged data) to the PIL path, which records bad inputs as usual.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genaug.build.preprocess import MIN_SIDE, centre_square, check_resample

log = logging.getLogger(__name__)

_SOI = b"\xff\xd8\xff"


@dataclass
class DeviceDecoded:
    images: torch.Tensor  # (B, 3, R, R) uint8 on the device
    metas: list[dict]  # per image: orig_size, crop_box, resolution, resample, exif_transposed, decoder


def looks_like_jpeg(data: bytes) -> bool:
    return data[:3] == _SOI


def split_jpegs(datas: list[bytes]) -> tuple[list[int], list[int]]:
    """(indices for the device path: JPEG magic bytes, indices for the PIL path: everything else)."""
    fast = [i for i, d in enumerate(datas) if looks_like_jpeg(d)]
    slow = [i for i, d in enumerate(datas) if not looks_like_jpeg(d)]
    return fast, slow


def decode_batch(datas: list[bytes], resolution: int, resample: str, device: torch.device | str) -> DeviceDecoded:
    """Decode JPEG bytes on `device` (one batched call), crop and resize each to (3, R, R) uint8.

    Raises ValueError naming the failing input for data that is not a 3-channel JPEG or is too small
    (callers route such inputs to the PIL path first, see split_jpegs)."""
    check_resample(resample)
    device = torch.device(device)
    raw = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    try:
        decoded = torchvision_decode(raw, device)
    except RuntimeError as err:
        raise ValueError(f"decode_jpeg failed on this batch: {err}") from err
    images, metas = [], []
    for i, image in enumerate(decoded):  # (3, H, W) uint8, upright
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"input {i}: decoded to shape {tuple(image.shape)}, not a 3-channel image")
        height, width = int(image.shape[1]), int(image.shape[2])
        if min(width, height) < MIN_SIDE:
            raise ValueError(f"input {i}: image too small: {width}x{height} px")
        box = centre_square(width, height)
        images.append(crop_resize(image, box, resolution, resample))
        metas.append({"orig_size": [width, height], "crop_box": list(box), "resolution": resolution,
                      "resample": resample, "decoder": f"torchvision.io.decode_jpeg on {device.type}"})
    return DeviceDecoded(torch.stack(images) if images else torch.empty(0, 3, resolution, resolution,
                                                                          dtype=torch.uint8, device=device), metas)


def torchvision_decode(raw: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    out = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
    return list(out)


def crop_resize(image: torch.Tensor, box: tuple[int, int, int, int], resolution: int, resample: str) -> torch.Tensor:
    """(3, H, W) uint8 -> the box cropped and resized to (3, R, R) uint8 (antialiased, rounded)."""
    left, top, right, bottom = box
    square = image[:, top:bottom, left:right].unsqueeze(0).float()
    if square.shape[-1] != resolution:
        square = F.interpolate(square, size=(resolution, resolution), mode=resample, align_corners=False,
                               antialias=True)
    return square.round_().clamp_(0, 255).to(torch.uint8)[0]
