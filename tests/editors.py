"""A test-only method and preset for pipeline tests: cheap, deterministic, seed-dependent.

``import editors`` (tests/ is on sys.path under pytest) registers method ``test`` with preset
``test-invert``: the output is the inverted input plus seeded noise, at the input resolution
times ``scale``. It obeys the editor contract (a sample's output depends only on its seed, label
and image), so batch size cannot change the shards. Options:

* ``amplitude`` (int, output-affecting): noise amplitude in grey levels;
* ``delay`` (float, not output-affecting): seconds to sleep per batch, to make a build slow
  enough to kill mid-run;
* ``fail`` (bool, not output-affecting): raise on every batch, to test the abort path.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from genaug.registry import REGISTRY, EditorContext, EditResult, Editor, MethodSpec, OptionSpec, Preset
from genaug.seeding import generator

METHOD = "test"
PRESET = "test-invert"
RESOLUTION = 32  # model input side of the test preset


class InvertNoiseEditor(Editor):
    """255 - image + uniform seeded noise in [-amplitude, amplitude], then resized by `scale`."""

    method = METHOD
    preset = PRESET

    def __init__(self, ctx: EditorContext, resolution: int = RESOLUTION, scale: int = 1) -> None:
        self.resolution = resolution
        self.scale = scale
        self.device = ctx.device
        self.amplitude = int(ctx.options["amplitude"])
        self.delay = float(ctx.options["delay"])
        self.fail = bool(ctx.options["fail"])

    def edit(self, images: torch.Tensor, seeds: Sequence[int], labels: torch.Tensor) -> EditResult:
        if self.fail:
            raise RuntimeError("test editor asked to fail (--fail)")
        if self.delay:
            time.sleep(self.delay)
        out, params = [], []
        for image, seed, label in zip(images, seeds, labels.tolist()):  # image: (3, R, R) uint8
            gen = generator(seed, "cpu")
            noise = torch.randint(-self.amplitude, self.amplitude + 1, image.shape, generator=gen)
            edited = (255 - image.to("cpu", torch.int64) + noise).clamp(0, 255).to(torch.uint8)
            if self.scale != 1:
                edited = edited.repeat_interleave(self.scale, 1).repeat_interleave(self.scale, 2)
            out.append(edited)
            params.append({"amplitude": self.amplitude, "label_seen": int(label), "noise_first": int(noise[0, 0, 0])})
        return EditResult(images=torch.stack(out).to(self.device), params=params)  # (B, 3, R*s, R*s)

    def describe(self) -> dict:
        return {"parameters": 0, "resolution": self.resolution, "amplitude": self.amplitude, "precision": "fp32"}


def _register() -> None:
    if METHOD in {spec.name for spec in REGISTRY.methods()}:
        return  # already registered by an earlier import
    REGISTRY.register_method(MethodSpec(
        name=METHOD,
        description="test-only: inverted image plus seeded noise",
        default_preset=PRESET,
        options=(
            OptionSpec("amplitude", int, 8, "noise amplitude in grey levels"),
            OptionSpec("delay", float, 0.0, "seconds to sleep per batch", affects_output=False),
            OptionSpec("fail", bool, False, "raise on every batch", affects_output=False),
        ),
    ))
    REGISTRY.register_preset(Preset(
        name=PRESET, method=METHOD, description="test-only editor", files=(),
        build=InvertNoiseEditor, random_init=True,
    ))
    REGISTRY.register_preset(Preset(
        name="test-invert-x2", method=METHOD, description="test-only editor, output twice the input size",
        files=(), build=lambda ctx: InvertNoiseEditor(ctx, resolution=24, scale=2), random_init=True,
    ))


_register()
