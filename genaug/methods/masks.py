"""Token mask patterns of the `mask` method, on an (h, w) token grid. True = masked (regenerated).

Every pattern is a pure function of its arguments; random ones take an explicit generator, so a
sample's mask depends only on its own seed.

* ``ring``: keep the outer ring of ``width`` tokens, mask the interior (GenCL: width 1 on 16x16 ->
  the 14x14 interior, 196 tokens);
* ``random``: mask exactly ``round(ratio * h * w)`` tokens chosen uniformly;
* ``blocks``: mask the union of ``count`` squares of ``size`` tokens at uniform positions;
* ``outpaint``: the image is shrunk into the centre (``shrink_into_centre``), the tokens it covers
  are kept and the surround is masked (the paper's "reverse crop").

``composite`` blends a decoded image back into its input with the blurred token mask, as the
official MaskGIT editing demo does (the `mask` method's opt-in ``--composite``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

PATTERNS = ("ring", "random", "blocks", "outpaint")  # the --mask choices


def ring_mask(grid: int, width: int = 1) -> torch.Tensor:
    """(grid, grid) bool: outer `width` tokens kept, interior masked."""
    if not 1 <= width or 2 * width >= grid:
        raise ValueError(f"--ring-width {width}: must be in [1, {(grid - 1) // 2}] for a {grid}x{grid} token grid")
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    mask[width : grid - width, width : grid - width] = True
    return mask


def random_mask(grid: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(grid, grid) bool with exactly round(ratio * grid**2) masked tokens (at least 1)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"--mask-ratio {ratio}: must be in (0, 1]")
    n = max(1, round(ratio * grid * grid))
    order = torch.randperm(grid * grid, generator=generator, device=generator.device).cpu()
    mask = torch.zeros(grid * grid, dtype=torch.bool)
    mask[order[:n]] = True
    return mask.view(grid, grid)


def block_mask(grid: int, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(grid, grid) bool: union of `count` size x size squares with uniform top-left corners."""
    if count < 1:
        raise ValueError(f"--blocks {count}: must be >= 1")
    if not 1 <= size <= grid:
        raise ValueError(f"--block-size {size}: must be in [1, {grid}] for a {grid}x{grid} token grid")
    corners = torch.randint(0, grid - size + 1, (count, 2), generator=generator, device=generator.device).cpu()
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    for top, left in corners.tolist():
        mask[top : top + size, left : left + size] = True
    return mask


def outpaint_tokens(grid: int, scale: float) -> int:
    """Side, in tokens, of the kept centre: round(scale * grid) to the nearest size of the same parity
    as the grid (so the centre sits on whole tokens), clamped to [1 or 2, grid - 2]."""
    if not 0.0 < scale < 1.0:
        raise ValueError(f"--outpaint-scale {scale}: must be in (0, 1), the side of the shrunk image")
    parity = grid % 2
    kept = 2 * round((scale * grid - parity) / 2) + parity
    low = 2 - parity
    if grid - 2 < low:
        raise ValueError(f"a {grid}x{grid} token grid is too small to outpaint")
    return min(max(kept, low), grid - 2)


def outpaint_mask(grid: int, kept: int) -> torch.Tensor:
    """(grid, grid) bool: the centred kept x kept tokens kept, the surround masked."""
    border = (grid - kept) // 2
    mask = torch.ones(grid, grid, dtype=torch.bool)
    mask[border : border + kept, border : border + kept] = False
    return mask


def shrink_into_centre(images: torch.Tensor, side: int) -> torch.Tensor:
    """Resize images (B, 3, R, R) float to side x side (bicubic, antialiased) and paste them into the
    centre of an R x R canvas whose surround repeats the edge pixels (it is regenerated anyway;
    replicating keeps the kept tokens' receptive field free of a hard border)."""
    # images (B, 3, R, R) -> (B, 3, R, R)
    size = images.shape[-1]
    if not 0 < side < size or (size - side) % 2:
        raise ValueError(f"shrunk side {side} must be in (0, {size}) with an even margin")
    small = F.interpolate(images, size=(side, side), mode="bicubic", align_corners=False, antialias=True)
    small = small.clamp(0.0, 1.0)  # (B, 3, side, side)
    pad = (size - side) // 2
    return F.pad(small, (pad, pad, pad, pad), mode="replicate")



def composite_weights(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Blend weights of the official MaskGIT editing demo's compositing (`composite_outputs`).

    mask (B, h, w) bool token mask, any device -> (B, 1, size, size) float32 in [0, 1] on the same
    device; 1 where the generated image is used. As the demo, with Pillow: the token mask as an 8-bit
    image (0 / 255), resized to size x size with Pillow's default filter for that call (bicubic since
    Pillow 7), blurred with ImageFilter.GaussianBlur of radius `size // h - 1` (15 at 256 px, where a
    token is 16 px), divided by 255. Identical masks (the fixed patterns) are computed once."""
    cpu = mask.detach().to("cpu", torch.uint8).numpy()  # (B, h, w)
    weights = [_weights_of(one.tobytes(), one.shape, size) for one in cpu]
    return torch.stack(weights)[:, None].to(mask.device)


@functools.lru_cache(maxsize=64)
def _weights_of(mask_bytes: bytes, shape: tuple[int, int], size: int) -> torch.Tensor:
    """One token mask (h, w) as bytes -> (size, size) float32 weights (see composite_weights).
    Cached and shared: callers must not modify the result."""
    h, _w = shape
    tokens = np.frombuffer(mask_bytes, dtype=np.uint8).reshape(shape) * np.uint8(255)
    image = Image.fromarray(tokens).resize((size, size), Image.Resampling.BICUBIC)
    radius = size // h - 1
    if radius > 0:
        image = image.filter(ImageFilter.GaussianBlur(radius=radius))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)


def composite(generated: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """generated, original (B, 3, S, S) float; mask (B, h, w) bool -> (B, 3, S, S) float: the generated
    image inside the blurred masked region, the original outside, as the official editing demo."""
    weights = composite_weights(mask, generated.shape[-1]).to(generated.dtype)  # (B, 1, S, S)
    return generated * weights + (1.0 - weights) * original
