"""The batch-1 timing probe at the start of a build (recorded as manifest timing.batch1_ms_per_image)."""

from __future__ import annotations

import time

import numpy as np
import torch

from genaug.methods.editing import unchunked


def probe_plan(device: torch.device) -> dict:
    """probe_batch1_ms's calls at the start of a build: on the CPU one timed call and no warm-up (a full
    MaskGIT edit takes ~20 s there, so warm-up + 3 cost over a minute; the CPU has no autotuning to warm
    up), elsewhere one warm-up call and 3 timed ones (milliseconds each)."""
    return {"repeats": 1, "warmup": False} if device.type == "cpu" else {"repeats": 3, "warmup": True}


def probe_batch1_ms(editor, device: torch.device, seed: int, repeats: int = 3, warmup: bool = True) -> float:
    """Milliseconds per image at batch 1 on a few seeded random images (after one warm-up call)."""
    gen = torch.Generator().manual_seed(seed)
    side = editor.resolution
    times = []
    with unchunked(editor):  # a true batch-1 forward, not a padded compute chunk
        for i in range(0 if warmup else 1, repeats + 1):
            image = torch.randint(0, 256, (1, 3, side, side), generator=gen, dtype=torch.uint8).to(device)
            labels = torch.zeros(1, dtype=torch.int64, device=device)
            start = time.perf_counter()
            editor.edit(image, [seed + i], labels).images.to("cpu")
            if i:
                times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))
