"""Pieces of the conversion of released IC-GAN (BigGAN_PyTorch) generator weights that need no model:
spectral-norm folding, dropped keys, the released file names (the key mapping against the model's
shapes, which needs the Generator, is genaug.models.icgan.generator.convert_official_state_dict).

Every official key is consumed or the conversion fails naming the leftovers. Spectral norm is
folded: the official eval-mode forward runs one power-iteration step from the stored ``u0`` without
updating it and divides the weight by the resulting singular value; we do that once, here.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

# Official keys dropped by name: the class embedding, built because G_shared=True, never read by the
# instance-only IC-GAN (class_cond=False).
DROPPED_KEYS = ("shared.weight",)
# Checkpoint file names tried, in order, inside a released experiment folder.
OFFICIAL_GENERATOR_FILES = ("G_ema_best0.pth", "G_ema_best1.pth", "G_ema.pth")


class ConversionError(ValueError):
    """The checkpoint does not map one-to-one onto the configured generator."""


def fold_spectral_norm(weight: torch.Tensor, u: torch.Tensor, eps: float) -> torch.Tensor:
    """weight / sigma, where sigma comes from one power-iteration step from ``u`` (1, out), exactly as
    the official eval-mode ``SN.W_`` computes it (same operations, same order, float32)."""
    dtype = weight.dtype
    weight = weight.float()
    matrix = weight.reshape(weight.shape[0], -1)  # (out, in * k * k)
    v = F.normalize(torch.matmul(u.float(), matrix), eps=eps)  # (1, in * k * k)
    u_new = F.normalize(torch.matmul(v, matrix.t()), eps=eps)  # (1, out)
    sigma = torch.squeeze(torch.matmul(torch.matmul(v, matrix.t()), u_new.t()))
    return (weight / sigma).to(dtype)


def official_generator_file(path: Path) -> Path:
    """``path`` itself if a file; inside an experiment folder the first of OFFICIAL_GENERATOR_FILES."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in OFFICIAL_GENERATOR_FILES:
            if (path / name).is_file():
                return path / name
        present = sorted(p.name for p in path.glob("*.pth"))
        raise FileNotFoundError(
            f"{path}: no generator weights {list(OFFICIAL_GENERATOR_FILES)} in this folder (found {present}); "
            "extract icgan_biggan_imagenet_res256.tar.gz and pass its folder or G_ema_best0.pth"
        )
    raise FileNotFoundError(f"{path}: no such file or folder (expected G_ema_best0.pth or its experiment folder)")
