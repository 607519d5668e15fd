"""Token sequences for MaskGIT decode tests: random image tokens with the interior masked, class token first."""

from __future__ import annotations

import torch


def ring_seq(model, batch: int, seed: int) -> torch.Tensor:
    """Random image tokens with the (latent-2)^2 interior masked (-1), a random class token first."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    grid = torch.randint(0, cfg.codebook_size, (batch, cfg.latent_size, cfg.latent_size), generator=g)
    grid[:, 1:-1, 1:-1] = -1
    cls = cfg.codebook_size + torch.randint(0, cfg.num_classes, (batch, 1), generator=g)
    return torch.cat([cls, grid.flatten(1)], dim=1)
