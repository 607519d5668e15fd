"""Classic reference augmentations for the cost-benefit table: crop, colour jitter, Gaussian blur.

The GenCL paper (Table 4) compares its generative augmentations with the crop, colour jitter and
Gaussian blur augmentations of VICReg (Bardes et al. 2021, facebookresearch/vicreg
``augmentations.py``), each applied on its own and always (probability 1), with VICReg's parameters:

- crop: RandomResizedCrop to the image side, area scale U(0.08, 1), log-uniform aspect ratio in
  [3/4, 4/3], bicubic (antialiased) resampling; torchvision's sampling rule (10 tries, then a
  centre crop with the ratio clamped);
- colour jitter: brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1 (factors uniform in
  [0.6, 1.4], [0.6, 1.4], [0.8, 1.2], [-0.1, 0.1]), applied in a random order like torchvision's
  ColorJitter;
- Gaussian blur: PIL ``ImageFilter.GaussianBlur(radius=sigma)`` with sigma U(0.1, 2.0).

They are applied to the same real images the generative rows are scored on (the model-input crop
at the augmented resolution). Every draw comes from a generator seeded per sample, so an image's
augmentation depends only on (seed, sample key, name).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageFilter
from torchvision.transforms import InterpolationMode

from genaug.loader.transforms import sample_box
from genaug.seeding import generator, sample_seed


@dataclasses.dataclass(frozen=True)
class ClassicSettings:
    """VICReg's parameters for the three reference augmentations."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # fraction of the image area kept
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range (log-uniform)
    crop_tries: int = 10  # rejection-sampling attempts before the centre-crop fallback
    brightness: float = 0.4  # factor uniform in [1 - b, 1 + b]
    contrast: float = 0.4  # factor uniform in [1 - c, 1 + c]
    saturation: float = 0.2  # factor uniform in [1 - s, 1 + s]
    hue: float = 0.1  # shift uniform in [-h, h] (fraction of the hue circle)
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # PIL Gaussian radius, uniform


CLASSIC = ("crop", "color_jitter", "gaussian_blur")  # row names, in table order
CLASSIC_LABELS = {"crop": "Crop", "color_jitter": "Color jitter", "gaussian_blur": "Gaussian blur"}


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high, generator=gen))


def sample_crop_box(height: int, width: int, gen: torch.Generator, settings: ClassicSettings) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random resized crop: the loader's sampler (torchvision's rule with an
    explicit generator, genaug.loader.transforms.sample_box) with the settings' scale, ratio and tries."""
    left, top, right, bottom = sample_box(width, height, gen, settings.crop_scale, settings.crop_ratio,
                                          settings.crop_tries)
    return top, left, bottom - top, right - left


def crop(image: torch.Tensor, gen: torch.Generator, settings: ClassicSettings) -> torch.Tensor:
    """image uint8 (3, H, W) -> uint8 (3, H, W): a random resized crop back to the same size."""
    height, width = image.shape[-2:]
    top, left, h, w = sample_crop_box(height, width, gen, settings)
    return TF.resized_crop(image, top, left, h, w, [height, width],
                           interpolation=InterpolationMode.BICUBIC, antialias=True)


def color_jitter(image: torch.Tensor, gen: torch.Generator, settings: ClassicSettings) -> torch.Tensor:
    """image uint8 (3, H, W) -> uint8 (3, H, W): brightness/contrast/saturation/hue in random order."""
    factors = {
        "brightness": _uniform(gen, 1 - settings.brightness, 1 + settings.brightness),
        "contrast": _uniform(gen, 1 - settings.contrast, 1 + settings.contrast),
        "saturation": _uniform(gen, 1 - settings.saturation, 1 + settings.saturation),
        "hue": _uniform(gen, -settings.hue, settings.hue),
    }
    ops = {
        "brightness": TF.adjust_brightness,
        "contrast": TF.adjust_contrast,
        "saturation": TF.adjust_saturation,
        "hue": TF.adjust_hue,
    }
    names = list(ops)
    for idx in torch.randperm(len(names), generator=gen).tolist():
        image = ops[names[idx]](image, factors[names[idx]])
    return image


def gaussian_blur(image: torch.Tensor, gen: torch.Generator, settings: ClassicSettings) -> torch.Tensor:
    """image uint8 (3, H, W) -> uint8 (3, H, W): PIL Gaussian blur with a random radius (VICReg)."""
    sigma = _uniform(gen, *settings.blur_sigma)
    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    blurred = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius=sigma)))  # (H, W, 3)
    return torch.from_numpy(blurred.copy()).permute(2, 0, 1)


_OPS = {"crop": crop, "color_jitter": color_jitter, "gaussian_blur": gaussian_blur}


def augment_one(name: str, image: torch.Tensor, seed: int, key: str,
                settings: ClassicSettings = ClassicSettings()) -> torch.Tensor:
    """One image: uint8 (3, H, W) on CPU -> uint8 (3, H, W); depends only on (seed, key, name)."""
    if name not in _OPS:
        raise ValueError(f"unknown classic augmentation {name!r}; choose one of {list(CLASSIC)}")
    gen = generator(sample_seed(seed, key, f"classic/{name}"))
    return _OPS[name](image, gen, settings)


def augment_batch(name: str, images: torch.Tensor, seed: int, keys: list[str],
                  settings: ClassicSettings = ClassicSettings()) -> torch.Tensor:
    """images uint8 (B, 3, H, W) on CPU, one key per image -> uint8 (B, 3, H, W)."""
    if len(keys) != images.shape[0]:
        raise ValueError(f"{len(keys)} keys for {images.shape[0]} images")
    return torch.stack([augment_one(name, img, seed, key, settings) for img, key in zip(images, keys)])


def describe(settings: ClassicSettings = ClassicSettings()) -> dict:
    """The settings as a JSON-friendly dict, for the report."""
    return {
        "source": "VICReg (Bardes et al. 2021) augmentations, each alone with probability 1",
        "crop": f"RandomResizedCrop(scale={settings.crop_scale}, ratio=({settings.crop_ratio[0]:.4f}, "
                f"{settings.crop_ratio[1]:.4f}), bicubic, antialias) back to the image side",
        "color_jitter": f"ColorJitter(brightness={settings.brightness}, contrast={settings.contrast}, "
                        f"saturation={settings.saturation}, hue={settings.hue}), random order",
        "gaussian_blur": f"PIL GaussianBlur(radius=sigma), sigma ~ U{settings.blur_sigma}",
        "seeding": "per sample: genaug.seeding.sample_seed(seed, key, 'classic/<name>')",
    }
