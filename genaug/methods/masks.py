"""Token mask patterns of the `mask` method, on an (h, w) token grid. True = masked (regenerated).

Every pattern is a pure function of its arguments; random ones take an explicit generator, so a
sample's mask depends only on its own seed.

* ``ring``: keep the outer ring of ``width`` tokens, mask the interior (GenCL: width 1 on 16x16 ->
  the 14x14 interior, 196 tokens);
* ``random``: mask exactly ``round(ratio * h * w)`` tokens chosen uniformly;
* ``blocks``: mask the union of ``count`` squares of ``size`` tokens at uniform positions;
* ``outpaint``: the image is shrunk into the centre (``shrink_into_centre``), the tokens it covers
  are kept and the surround is masked (the paper's "reverse crop").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
