"""The plain webdataset pipeline that benchmarks/bench_loader.py times against genaug.loader (kept here so
the loader tests check it builds exactly genaug's pairs without executing the benchmark)."""

from __future__ import annotations

import io
import random

import webdataset as wds
from PIL import Image

from genaug.loader import GenCLPairs, generative_transform, vicreg_views


def plain_pipeline(urls, image_size: int, gamma: float, buffer: int, seed: int):
    """The hand-written webdataset equivalent of GenCLWebDataset.

    It makes the same per-sample choices (same coin, same transform generator seed) so that both
    pipelines do identical image work; what genaug adds on top of that is timed by bookkeeping_us().
    """
    view1, view2 = vicreg_views(image_size)
    t_gen = generative_transform("gencl", image_size)
    rule = GenCLPairs(gamma=gamma, seed=seed)

    def decode(data: bytes) -> Image.Image:
        return Image.open(io.BytesIO(data)).convert("RGB")

    def pair(sample: dict):
        real, key = decode(sample["real.jpg"]), sample["__key__"]
        gen = rule.generator(key, 0)
        if rule.is_generative(key, 0):
            views = (t_gen(decode(sample["aug.jpg"]), gen), view2(real, gen))
        else:
            views = (view1(real, gen), view2(real, gen))
        return views, int(sample["cls"]), key

    return wds.WebDataset(urls, shardshuffle=False, empty_check=False).shuffle(buffer, rng=random.Random(seed)).map(pair)
