"""Generator-driven image transforms: the VICReg views, T^G and the paper's pairwise-ablation sets.

Every random op takes ``(image, generator)`` and draws only from that ``torch.Generator``, so a view
depends only on the generator's seed (the loader seeds it from (seed, epoch, sample key)), never on
the global RNG, the worker or the batch. The ops work on PIL images, like the official VICReg
``augmentations.py`` (facebookresearch/vicreg), and end in a tensor op.

User transforms (torchvision v1 or v2, or any callable ``image -> tensor``) are accepted through
:func:`as_seeded`: they run under ``torch.random.fork_rng`` with the global torch seed set from the
per-sample generator, which makes them reproducible too (torchvision draws from the torch RNG).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUTS = ("normalized", "float", "uint8")  # ImageNet-normalised float32 | float32 in [0,1] | uint8
# Single augmentations of the pairwise ablation (paper Table 1), in the order they are applied.
ABLATION_OPS = ("crop", "flip", "color_jitter", "grayscale", "blur", "solarize")
# Named T^G sets: "gencl" is the paper's choice (§4.2); "none" is the generative-only baseline.
TG_PRESETS = {"gencl": ("crop", "flip", "color_jitter", "solarize"), "none": ()}
TG_BLUR_P = 0.5  # T^G blur rate: VICReg uses 1.0 / 0.1 on its two views; T^G takes the mean
TG_SOLARIZE_P = 0.2  # T^G solarization rate: VICReg's non-zero rate (view 2); view 1 uses 0.0


def _rand(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen))


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * _rand(gen)


def sample_box(width: int, height: int, gen: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
               tries: int = 10) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a random resized crop: torchvision's RandomResizedCrop sampling rule
    (`tries` draws of area fraction U(scale) and log-uniform aspect ratio, then a centre crop with the
    ratio clamped), drawing only from `gen`. The one sampler of the loader and the report's classic crop."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(tries):
        target = area * _uniform(gen, *scale)
        aspect = math.exp(_uniform(gen, log_lo, log_hi))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=gen))
            left = int(torch.randint(0, width - w + 1, (), generator=gen))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


class RandomResizedCrop:
    """torchvision's RandomResizedCrop sampling (10 tries, then centre crop), bicubic, PIL box resize."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size, self.scale, self.ratio = int(size), scale, ratio

    def box(self, width: int, height: int, gen: torch.Generator) -> tuple[int, int, int, int]:
        return sample_box(width, height, gen, self.scale, self.ratio)

    def __call__(self, img: Image.Image, gen: torch.Generator) -> Image.Image:
        return img.resize((self.size, self.size), Image.BICUBIC, box=self.box(*img.size, gen))


class CentreResize:
    """Deterministic: centre square crop, bicubic resize to size (the 'no crop' geometry)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, img: Image.Image, gen: torch.Generator) -> Image.Image:
        width, height = img.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return img.resize((self.size, self.size), Image.BICUBIC, box=(left, top, left + side, top + side))


class HorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img: Image.Image, gen: torch.Generator) -> Image.Image:
        return img.transpose(Image.FLIP_LEFT_RIGHT) if _rand(gen) < self.p else img


class ColorJitter:
    """torchvision ColorJitter inside RandomApply(p): random order of brightness/contrast/saturation/hue."""

    def __init__(self, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p: float = 0.8):
        self.b, self.c, self.s, self.h, self.p = brightness, contrast, saturation, hue, p

    def __call__(self, img: Image.Image, gen: torch.Generator) -> Image.Image:
        if _rand(gen) >= self.p:
            return img
        order = torch.randperm(len(_JITTER_OPS), generator=gen).tolist()
        factors = (_uniform(gen, 1 - self.b, 1 + self.b), _uniform(gen, 1 - self.c, 1 + self.c),
                   _uniform(gen, 1 - self.s, 1 + self.s), _uniform(gen, -self.h, self.h))
        for op in order:  # torchvision draws all four factors first, then applies them in `order`
            img = _JITTER_OPS[op](img, factors[op])
        return img


def _brightness(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def _contrast(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(factor)


def _saturation(img: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Color(img).enhance(factor)


def _shift_hue(img: Image.Image, shift: float) -> Image.Image:
    """torchvision's PIL hue adjustment: rotate the H channel of HSV by shift turns (uint8 wrap)."""
    hue, sat, val = img.convert("HSV").split()
    rotated = (np.asarray(hue, dtype=np.uint8) + np.uint8(int(shift * 255) % 256)).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(rotated, "L"), sat, val)).convert("RGB")


_JITTER_OPS = (_brightness, _contrast, _saturation, _shift_hue)  # torchvision's fn_idx order


class RandomGrayscale:
    def __init__(self, p: float = 0.2):
        self.p = p

    def __call__(self, img: Image.Image, gen: torch.Generator) -> Image.Image:
        return img.convert("L").convert("RGB") if _rand(gen) < self.p else img


class GaussianBlur:
    """VICReg's blur: with probability p, PIL Gaussian blur with sigma ~ U[sigma_min, sigma_max]."""

    def __init__(self, p: float, sigma=(0.1, 2.0)):
        self.p, self.sigma = p, sigma

    def __call__(self, img: Image.Image, gen: torch.Generator) -> Image.Image:
        if _rand(gen) >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(_uniform(gen, *self.sigma)))


class Solarize:
    def __init__(self, p: float, threshold: int = 128):
        self.p, self.threshold = p, threshold

    def __call__(self, img: Image.Image, gen: torch.Generator) -> Image.Image:
        return ImageOps.solarize(img, self.threshold) if _rand(gen) < self.p else img


class ToTensor:
    """PIL RGB -> (3, H, W) tensor: uint8, float in [0, 1], or ImageNet-normalised float32."""

    def __init__(self, output: str = "normalized", mean=IMAGENET_MEAN, std=IMAGENET_STD):
        if output not in OUTPUTS:
            raise ValueError(f"output {output!r}: choose one of {OUTPUTS}")
        self.output = output
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, img: Image.Image, gen: torch.Generator | None = None) -> torch.Tensor:
        array = np.asarray(img.convert("RGB"), dtype=np.uint8)
        tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()  # (3, H, W) uint8
        if self.output == "uint8":
            return tensor
        tensor = tensor.float().div_(255.0)
        return tensor if self.output == "float" else tensor.sub_(self.mean).div_(self.std)


class Compose:
    """Apply generator-driven ops in order; ``uses_generator`` marks it for :func:`as_seeded`."""

    uses_generator = True

    def __init__(self, ops: Sequence[Callable]):
        self.ops = list(ops)

    def __call__(self, img: Image.Image, gen: torch.Generator):
        for op in self.ops:
            img = op(img, gen)
        return img

    def __repr__(self) -> str:
        return f"Compose({[type(op).__name__ for op in self.ops]})"


class TorchRNGTransform:
    """Wrap a transform that draws from the global torch RNG (torchvision v1/v2) to make it seedable."""

    uses_generator = True

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, img: Image.Image, gen: torch.Generator):
        seed = int(torch.randint(0, 2**62, (), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(img)

    def __repr__(self) -> str:
        return f"TorchRNGTransform({self.transform!r})"


def as_seeded(transform: Callable) -> Callable:
    """Our ops pass through; any other callable (e.g. torchvision.transforms.v2.Compose) is wrapped."""
    if not callable(transform):
        raise TypeError(f"transform {transform!r} is not callable; pass a torchvision transform or a function")
    return transform if getattr(transform, "uses_generator", False) else TorchRNGTransform(transform)


def vicreg_view(image_size: int = 224, blur_p: float = 1.0, solarize_p: float = 0.0,
                output: str = "normalized") -> Compose:
    """One VICReg view: crop 0.08-1 bicubic, flip .5, jitter(.4,.4,.2,.1) p .8, gray .2, blur, solarize."""
    return Compose([RandomResizedCrop(image_size), HorizontalFlip(0.5), ColorJitter(p=0.8),
                    RandomGrayscale(0.2), GaussianBlur(blur_p), Solarize(solarize_p), ToTensor(output)])


def vicreg_views(image_size: int = 224, output: str = "normalized") -> tuple[Compose, Compose]:
    """The official VICReg pair: view 1 (blur 1.0, solarize 0.0) and view 2 (blur 0.1, solarize 0.2)."""
    return (vicreg_view(image_size, 1.0, 0.0, output), vicreg_view(image_size, 0.1, 0.2, output))


def real_transform(image_size: int = 224, output: str = "normalized") -> Compose:
    """T^R, applied to the real image of a generative pair: the full VICReg recipe of view 2."""
    return vicreg_views(image_size, output)[1]


def parse_tg(tg: str) -> tuple[str, ...]:
    """'gencl' | 'none' | one op of ABLATION_OPS | ops joined by '+' (e.g. 'crop+flip')."""
    if not isinstance(tg, str):
        raise TypeError(f"tg {tg!r}: expected a string such as 'gencl', 'crop' or 'crop+flip'")
    if tg in TG_PRESETS:
        return TG_PRESETS[tg]
    names = tuple(part.strip() for part in tg.split("+"))
    unknown = [n for n in names if n not in ABLATION_OPS]
    if unknown:
        raise ValueError(f"tg {tg!r}: unknown op(s) {unknown}; choose {sorted(TG_PRESETS)} or "
                         f"ops from {ABLATION_OPS} joined by '+'")
    return tuple(op for op in ABLATION_OPS if op in names)


def generative_transform(tg: str = "gencl", image_size: int = 224, output: str = "normalized",
                         blur_p: float = TG_BLUR_P, solarize_p: float = TG_SOLARIZE_P) -> Compose:
    """T^G for the generative image. Without 'crop' the image is centre-cropped and resized."""
    names = parse_tg(tg)
    ops: list[Callable] = [RandomResizedCrop(image_size) if "crop" in names else CentreResize(image_size)]
    factories = {"flip": lambda: HorizontalFlip(0.5), "color_jitter": lambda: ColorJitter(p=0.8),
                 "grayscale": lambda: RandomGrayscale(0.2), "blur": lambda: GaussianBlur(blur_p),
                 "solarize": lambda: Solarize(solarize_p)}
    ops += [factories[name]() for name in names if name != "crop"]
    return Compose(ops + [ToTensor(output)])
