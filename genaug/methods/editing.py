"""Helpers shared by the built-in editors: input checks, precision, per-sample generators, uint8 output."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Sequence

import torch
from torch import nn

from genaug.seeding import generator, sample_seed

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")  # EditorContext.precision values

RANDOM_INIT_WARNING = (
    "preset %r has RANDOM weights: its images are meaningless noise, for tests and smoke runs only. "
    "Use %r for real augmentations."
)


def check_batch(images: torch.Tensor, seeds: Sequence[int], labels: torch.Tensor, resolution: int) -> int:
    """Validate an edit() call; returns the batch size."""
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, resolution, resolution):
        raise ValueError(
            f"images: got {images.dtype} {tuple(images.shape)}; expected uint8 (B, 3, {resolution}, {resolution})"
        )
    batch = images.shape[0]
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {batch}; pass one seed per sample")
    if labels.shape != (batch,):
        raise ValueError(f"labels: got shape {tuple(labels.shape)}; expected ({batch},) with -1 = no label")
    return batch


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for the model stages: bf16 ('bf16', or 'auto' on CUDA), else None (fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {list(PRECISIONS)}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """bf16 autocast on `device` when dtype is set, else plain fp32."""
    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield


def stream_generators(seeds: Sequence[int], stream: str, device: torch.device | str) -> list[torch.Generator]:
    """One generator per sample for a named random stream (independent streams per purpose)."""
    return [generator(sample_seed(int(s), "edit", stream), device) for s in seeds]


def stream_seed(seed: int, stream: str) -> int:
    """The seed of a sample's named stream, recorded in the edit params."""
    return sample_seed(int(seed), "edit", stream)


def to_uint8(images: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Float images in [low, high] (unclipped) -> uint8 (clamp, scale, round)."""
    scaled = (images.float() - low) * (255.0 / (high - low))
    return scaled.clamp_(0.0, 255.0).round_().to(torch.uint8)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def random_init_seeded(build, seed: int):
    """Run `build()` with the CPU RNG seeded to `seed`, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
