"""End-to-end part of bench_device.py: ImageNet-sized JPEGs (about 500x375) generated into a folder, a
`genaug build` over them, and the presets it times (official ones when their weights are cached, else
random-init models of the same size, registered for this process only and said so in the output)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genaug.build.pipeline import BuildConfig, run_build
from genaug.methods.editing import random_init_seeded, time_editor
from genaug.registry import REGISTRY, Preset
from genaug.weights import status

SIZES = ((500, 375), (500, 333), (375, 500), (500, 400), (448, 336))  # ImageNet-like shapes
DISTINCT = 48  # distinct JPEG payloads, cycled over the file names (every file is still decoded)


def make_jpegs(folder: Path, count: int, seed: int = 0) -> int:
    """`count` JPEGs of ImageNet-like size and ~100 kB (smooth colour fields plus noise); returns bytes."""
    rng = np.random.default_rng(seed)
    payloads = []
    for i in range(DISTINCT):
        w, h = SIZES[i % len(SIZES)]
        base = Image.fromarray(rng.integers(0, 256, (h // 40 + 2, w // 40 + 2, 3), dtype=np.uint8))
        pixels = np.asarray(base.resize((w, h), Image.BICUBIC), dtype=np.int16)
        pixels = np.clip(pixels + rng.normal(0, 12, pixels.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        payloads.append(buf.getvalue())
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(count):
        data = payloads[i % DISTINCT]
        (folder / f"img_{i:06d}.jpg").write_bytes(data)
        total += len(data)
    return total


def bench_presets(device: torch.device, cpu_mode: bool) -> dict[str, tuple[str, bool]]:
    """method -> (preset name, random_init). CPU mode: the tiny presets; CUDA: the official presets when
    their weights are cached, else random-init presets of the official size."""
    if cpu_mode:
        return {"mask": ("maskgit-tiny", True), "noise": ("icgan-tiny", True)}
    out = {}
    for method, official, make in (("mask", "maskgit-imagenet256", _random_maskgit),
                                   ("noise", "icgan-imagenet256", _random_icgan)):
        if status(REGISTRY.preset(official))["ready"]:
            out[method] = (official, False)
            continue
        name = f"bench-{official}-random"
        if name not in {p.name for p in REGISTRY.presets()}:
            REGISTRY.register_preset(Preset(name=name, method=method, files=(), build=make, random_init=True,
                                            description=f"RANDOM-weight {official} (bench_device only)"))
        out[method] = (name, True)
    return out


def _random_maskgit(ctx):
    from genaug.methods.mask import MaskEditor
    from genaug.models.maskgit import MaskGIT, MaskGITConfig

    model = random_init_seeded(lambda: MaskGIT(MaskGITConfig()), 0)
    return MaskEditor(model, ctx.preset, ctx.device, ctx.precision, ctx.options)


def _random_icgan(ctx):
    from genaug.methods.noise import NoiseEditor
    from genaug.models.icgan import EncoderConfig, Generator, ICGANConfig, InstanceEncoder

    generator = Generator.random(ICGANConfig.imagenet256(), seed=0)
    encoder = random_init_seeded(lambda: InstanceEncoder(EncoderConfig()), 0).eval()
    return NoiseEditor(generator, encoder, ctx.preset, ctx.device, ctx.precision, ctx.options)


METHOD_OPTIONS = {"mask": {"class_token": "random"}, "noise": {}}  # a plain folder has no labels


def build_rate(method: str, preset: str, data: Path, out: Path, device: torch.device, workers: int,
               shard_size: int) -> dict:
    """images/s of a whole `genaug build` (including start-up) and of its shards (steady state)."""
    config = BuildConfig(method=method, preset=preset, data=(str(data),), out=out, device=str(device),
                         num_workers=workers, shard_size=shard_size, options=dict(METHOD_OPTIONS[method]))
    summary = run_build(config)
    stats = [_json(p) for p in sorted(out.glob("shard-*.json"))]
    inputs = sum(int(s["ninputs"]) for s in stats)
    wall = sum(float(s["timings_s"]["wall"]) for s in stats)
    model = sum(float(s["timings_s"]["model"]) for s in stats)
    return {"inputs": inputs, "samples": summary.samples, "num_workers": workers, "wall_s": summary.wall_s,
            "images_per_s_whole_run": summary.images_per_s, "images_per_s_shards": inputs / wall,
            "model_share_of_shard_time": model / wall}


def cpu_seconds_per_image(folder: Path, resolution: int, resample: str, count: int = 24) -> dict:
    """One core's seconds per image for the CPU side of a build: decode + EXIF + crop + resize (the decode
    workers' `preprocess.prepare`) and the aug JPEG encode at quality 95 (the encode workers)."""
    import time

    from genaug.build.preprocess import prepare

    datas = [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[:count]]
    start = time.perf_counter()
    prepared = [prepare(d, resolution, resample) for d in datas]
    decode = (time.perf_counter() - start) / len(datas)
    start = time.perf_counter()
    for p in prepared:
        Image.fromarray(p.image).save(io.BytesIO(), format="JPEG", quality=95)
    encode = (time.perf_counter() - start) / len(datas)
    return {"decode_resize_ms": 1000.0 * decode, "encode_ms": 1000.0 * encode}


def model_only_rate(editor, chunk: int, images: int) -> float:
    """images/s of editor.edit alone, in the build's compute chunks (inputs already on the device)."""
    return 1.0 / time_editor(editor, chunk, max(images, chunk), chunked=True)


def _json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def default_workers() -> int:
    return max(1, min(16, (os.cpu_count() or 2) - 1))

