"""The GenCL pair rule (paper §4.2), independent of how samples are read.

For each sample, with probability ``gamma``: view 1 = the generative image under T^G, view 2 = the
real image under T^R (VICReg's view-2 recipe). Otherwise: the two VICReg views of the real image.

Reproducibility: the Bernoulli draw is ``blake2b(seed, key, "gamma/<epoch>") / 2**63 < gamma`` and
the views draw from one ``torch.Generator`` seeded with ``blake2b(seed, key, "views/<epoch>")``, so an
item depends only on (seed, epoch, sample key, settings), never on workers, ranks or batch size.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
from typing import Callable, Mapping

import torch
from PIL import Image, ImageOps

from genaug.format import AUG_MEMBERS
from genaug.loader import transforms as T
from genaug.seeding import sample_seed

log = logging.getLogger(__name__)

AUG_EXTENSIONS = AUG_MEMBERS  # members that may hold the generative image
REAL_REGIONS = ("full", "crop_box")  # T^R sees the full real image, or the model's input region
VIEW_ORDERS = ("generative_first", "random")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class PairStats:
    """Counters shared by the main process and DataLoader workers (fork or spawn): read after iterating.

    ``generative``: pairs with a generative view; ``real``: two real views chosen by the rule;
    ``fallback``: the rule chose a generative pair but the aug image was missing or undecodable.
    """

    FIELDS = ("generative", "real", "fallback")

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._values = {name: ctx.Value("q", 0) for name in self.FIELDS}

    def add(self, name: str) -> None:
        value = self._values[name]
        with value.get_lock():
            value.value += 1

    def as_dict(self) -> dict:
        return {name: int(v.value) for name, v in self._values.items()}

    def __repr__(self) -> str:
        return f"PairStats({self.as_dict()})"


def unit_draw(seed: int, epoch: int, key: str) -> float:
    """A uniform number in [0, 1) that depends only on (seed, epoch, key)."""
    return sample_seed(seed, key, f"gamma/{int(epoch)}") / float(1 << 63)


def decode_image(data: bytes) -> Image.Image:
    """Decode bytes to an RGB PIL image with the EXIF orientation applied (as the shard writer does)."""
    img = Image.open(io.BytesIO(data))
    if "exif" in img.info:  # cheap test first: exif_transpose parses the EXIF block
        img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


class GenCLPairs:
    """Turn a raw shard sample (``{"__key__", "real.jpg", "aug.*", "cls", "json"}``) into a pair item.

    gamma: probability of a generative pair. seed: loader seed. image_size: output side.
    tg: T^G name (see :func:`genaug.loader.transforms.parse_tg`) unless ``t_gen`` is given.
    t_gen / t_real / views: replace T^G, T^R, or the two real views with your own transforms
    (generator-driven, or torchvision v1/v2 which are run under a per-sample torch seed).
    real_region: 'full' (default, what VICReg sees normally) or 'crop_box' (the model's input region).
    view_order: 'generative_first' (view 1 is the generative one) or 'random' (a seeded coin swaps them).
    """

    def __init__(self, gamma: float = 0.5, seed: int = 0, image_size: int = 224, tg: str = "gencl",
                 t_gen: Callable | None = None, t_real: Callable | None = None,
                 views: tuple[Callable, Callable] | None = None, real_region: str = "full",
                 view_order: str = "generative_first", output: str = "normalized",
                 stats: PairStats | None = None):
        if not isinstance(gamma, (int, float)) or not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma={gamma!r}: the generative sampling rate must be a number in [0, 1]")
        if int(image_size) < 8:
            raise ValueError(f"image_size={image_size!r}: use at least 8 pixels (224 for ImageNet)")
        if real_region not in REAL_REGIONS:
            raise ValueError(f"real_region={real_region!r}: choose one of {REAL_REGIONS}")
        if view_order not in VIEW_ORDERS:
            raise ValueError(f"view_order={view_order!r}: choose one of {VIEW_ORDERS}")
        if t_gen is not None and tg != "gencl":
            raise ValueError(f"tg={tg!r} and t_gen were both given; pass one of them")
        if views is not None and len(views) != 2:
            raise ValueError(f"views must be two transforms (view 1, view 2), got {len(views)}")
        self.gamma, self.seed = float(gamma), int(seed)
        self.real_region, self.view_order = real_region, view_order
        self.t_gen = T.as_seeded(t_gen) if t_gen is not None else T.generative_transform(tg, image_size, output)
        default_views = T.vicreg_views(image_size, output)
        self.views = tuple(T.as_seeded(v) for v in views) if views is not None else default_views
        self.t_real = T.as_seeded(t_real) if t_real is not None else default_views[1]
        self.stats = stats if stats is not None else PairStats()

    def is_generative(self, key: str, epoch: int) -> bool:
        """The rule's Bernoulli(gamma) draw for this sample and epoch."""
        return unit_draw(self.seed, epoch, key) < self.gamma

    def generator(self, key: str, epoch: int) -> torch.Generator:
        gen = torch.Generator()
        gen.manual_seed(sample_seed(self.seed, key, f"views/{int(epoch)}"))
        return gen

    def __call__(self, sample: Mapping, epoch: int = 0, index: int = -1) -> dict:
        """-> {"views": (v1, v2), "label": int (-1 none), "key", "index", "generative": bool}."""
        key = sample["__key__"]
        real = self._real_image(sample)
        gen = self.generator(key, epoch)
        chosen = self.is_generative(key, epoch)
        aug = self._aug_image(sample) if chosen else None
        if aug is not None:
            view1, view2 = self.t_gen(aug, gen), self.t_real(real, gen)
            if self.view_order == "random" and float(torch.rand((), generator=gen)) < 0.5:
                view1, view2 = view2, view1
            self.stats.add("generative")
        else:
            view1, view2 = self.views[0](real, gen), self.views[1](real, gen)
            if not chosen:
                self.stats.add("real")
        return {"views": (view1, view2), "label": sample_label(sample), "key": key,
                "index": index, "generative": aug is not None}

    def _real_image(self, sample: Mapping) -> Image.Image:
        data = sample.get("real.jpg")
        if data is None:
            raise KeyError(f"sample {sample['__key__']!r} ({sample.get('__url__', '?')}) has no real.jpg; "
                           "is this a genaug shard?")
        try:
            img = decode_image(data)
        except _DECODE_ERRORS as err:
            raise ValueError(f"sample {sample['__key__']!r} ({sample.get('__url__', '?')}): undecodable "
                             f"real.jpg ({err})") from err
        if self.real_region == "crop_box":
            img = img.crop(tuple(sample_meta(sample)["crop_box"]))
        return img

    def _aug_image(self, sample: Mapping) -> Image.Image | None:
        """The decoded generative image, or None (counted and logged) when it is missing or broken."""
        key = sample["__key__"]
        data = next((sample[ext] for ext in AUG_EXTENSIONS if sample.get(ext) is not None), None)
        if data is None:
            log.warning("sample %s has no aug image; using two real views", key)
        else:
            try:
                return decode_image(data)
            except _DECODE_ERRORS as err:
                log.warning("sample %s: undecodable aug image (%s); using two real views", key, err)
        self.stats.add("fallback")
        return None


def sample_meta(sample: Mapping) -> dict:
    data = sample.get("json")
    if data is None:
        raise KeyError(f"sample {sample['__key__']!r} has no json metadata (needed for crop_box)")
    return json.loads(data) if isinstance(data, (bytes, str)) else dict(data)


def sample_label(sample: Mapping) -> int:
    """The class label from ``cls`` (or the json's ``label``); -1 when the shards are unlabelled."""
    data = sample.get("cls")
    if data is not None:
        return int(data)
    if sample.get("json") is not None:
        label = sample_meta(sample).get("label")
        return -1 if label is None else int(label)
    return -1
