"""A test-only method and preset for pipeline tests: cheap, deterministic, seed-dependent.

``genaug.testing.editors.register()`` adds method ``test`` with preset
``test-invert`` to the registry and ``editors.unregister()`` removes them (use a module fixture, so
other test modules never see them): the output is the inverted input plus seeded noise, at the input resolution
times ``scale``. It obeys the editor contract (a sample's output depends only on its seed, label
and image), so batch size cannot change the shards. Options:

* ``amplitude`` (int, output-affecting): noise amplitude in grey levels;
* ``delay`` (float, not output-affecting): seconds to sleep per batch, to make a build slow
  enough to kill mid-run;
* ``fail_label`` (int, not output-affecting): raise on a batch holding that label (-2: never), to
  test the abort path after some shards are complete;
* ``class_source`` (str, default ``none``): ``label`` asks for each sample's ImageNet-1k class the way
  the mask method's option does (the build refuses unlabelled data, skips unusable classes);
* ``input_resample`` (``bicubic`` | ``bilinear`` | ``nearest``): becomes the editor's ``input_resample``
  (``nearest`` breaks the contract, to test that the build refuses it).

The ``labels`` the editor receives are recorded in each sample's edit parameters as ``label_seen``.

Also ``test-invert-x2`` (24 px in, 48 px out) and two helpers for the pipeline tests:
``read_samples(out)`` and ``output_bytes(out)``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch
import webdataset as wds

from genaug.registry import REGISTRY, Editor, EditorContext, EditResult, MethodSpec, OptionSpec, Preset
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
        self.fail_label = int(ctx.options["fail_label"])
        self.input_resample = ctx.options["input_resample"]

    def edit(self, images: torch.Tensor, seeds: Sequence[int], labels: torch.Tensor) -> EditResult:
        if self.fail_label in labels.tolist():
            raise RuntimeError(f"test editor asked to fail on label {self.fail_label} (--fail-label)")
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


SPEC = MethodSpec(
    name=METHOD,
    description="test-only: inverted image plus seeded noise",
    default_preset=PRESET,
    options=(
        OptionSpec("amplitude", int, 8, "noise amplitude in grey levels"),
        OptionSpec("delay", float, 0.0, "seconds to sleep per batch", affects_output=False),
        OptionSpec("fail_label", int, -2, "raise on a batch holding this label", affects_output=False),
        OptionSpec("class_source", str, "none", "label: condition on each sample's ImageNet-1k class"),
        OptionSpec("input_resample", ("bicubic", "bilinear", "nearest"), "bicubic", "filter of the input resize"),
    ),
)
PRESETS = (
    Preset(name=PRESET, method=METHOD, description="test-only editor", files=(), build=InvertNoiseEditor),
    Preset(name="test-invert-x2", method=METHOD, description="test-only editor, output twice the input size",
           files=(), build=lambda ctx: InvertNoiseEditor(ctx, resolution=24, scale=2)),
)


def build_config(out, data, **settings):
    """The BuildConfig of a build with the test method, everything in-process (`num_workers` 0); `data`: one
    path or a sequence of them; `settings` override any field (the one helper the tests share)."""
    from genaug.build.config import BuildConfig

    paths = (str(data),) if isinstance(data, (str, Path)) else tuple(str(d) for d in data)
    return BuildConfig(**{"method": METHOD, "out": out, "data": paths, "num_workers": 0, **settings})


def register() -> None:
    """Add the test method and presets to the registry (idempotent)."""
    if METHOD in {spec.name for spec in REGISTRY.methods()}:
        return
    REGISTRY.register_method(SPEC)
    for preset in PRESETS:
        REGISTRY.register_preset(preset)


def unregister() -> None:
    """Remove them again, so other test modules see only the built-in methods."""
    for preset in PRESETS:
        REGISTRY.unregister_preset(preset.name)
    REGISTRY.unregister_method(METHOD)


# ---- helpers shared by the pipeline tests ------------------------------------------------------
def read_samples(out) -> dict[str, dict]:
    """Every sample of the shards listed in out/index.json, read with plain webdataset, by key."""
    out = Path(out)
    index = json.loads((out / "index.json").read_text())
    urls = [str(out / entry["url"]) for entry in index["shardlist"]]
    samples = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        assert sample["__key__"] not in samples, f"duplicate key {sample['__key__']}"
        samples[sample["__key__"]] = sample
    return samples


def output_bytes(out) -> dict[str, bytes]:
    """What must be identical between equivalent builds: every shard tar, errors.jsonl and the
    shard list of index.json (its name is the folder name), by file name."""
    out = Path(out)
    files = {path.name: path.read_bytes() for path in sorted(out.glob("shard-*.tar"))}
    files["errors.jsonl"] = (out / "errors.jsonl").read_bytes()
    files["index.json:shardlist"] = json.dumps(json.loads((out / "index.json").read_text())["shardlist"]).encode()
    return files
