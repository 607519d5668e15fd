"""Pure conversion of released IC-GAN (BigGAN_PyTorch) generator weights into this port's layout.

Every official key is consumed or the conversion fails naming the leftovers. Spectral norm is
folded: the official eval-mode forward runs one power-iteration step from the stored ``u0`` without
updating it and divides the weight by the resulting singular value; we do that once, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F

from genaug.models.icgan.config import ICGANConfig

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


def expected_shapes(config: ICGANConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of this port's state dict for ``config`` (built on the meta device)."""
    from genaug.models.icgan.generator import Generator

    with torch.device("meta"):
        model = Generator(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def convert_official_state_dict(official: Mapping[str, torch.Tensor], config: ICGANConfig) -> dict[str, torch.Tensor]:
    """Official ``G_ema`` state dict -> this port's state dict (spectral norm folded).

    Raises ConversionError naming every leftover, missing or mis-shaped key."""
    expected = expected_shapes(config)
    converted: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    for key in official:
        if not key.endswith(".u0"):
            continue
        prefix = key[: -len(".u0")]
        if f"{prefix}.weight" not in official:
            raise ConversionError(f"spectral-norm vector {key} has no weight {prefix}.weight")
        converted[f"{prefix}.weight"] = fold_spectral_norm(official[f"{prefix}.weight"], official[key], config.sn_eps)
        consumed.update({key, f"{prefix}.weight"})
        if f"{prefix}.sv0" in official:  # logging-only buffer, never read by the forward
            consumed.add(f"{prefix}.sv0")
    consumed.update(k for k in DROPPED_KEYS if k in official)
    for key, value in official.items():
        if key not in consumed and key in expected:
            converted[key] = value
            consumed.add(key)
    _check_complete(official, consumed, converted, expected, config)
    return converted


def _check_complete(official, consumed, converted, expected, config) -> None:
    problems = []
    leftover = sorted(set(official) - consumed)
    unexpected = sorted(set(converted) - set(expected))
    missing = sorted(set(expected) - set(converted))
    if leftover or unexpected:
        problems.append(f"unused checkpoint keys: {leftover + unexpected}")
    if missing:
        problems.append(f"missing keys: {missing}")
    wrong = [
        f"{k}: checkpoint {tuple(converted[k].shape)} vs model {expected[k]}"
        for k in sorted(set(converted) & set(expected))
        if tuple(converted[k].shape) != expected[k]
    ]
    if wrong:
        problems.append(f"shape mismatches: {wrong}")
    if problems:
        raise ConversionError(
            f"checkpoint does not match {config}: " + "; ".join(problems)
            + ". Pass the config of the released model (ICGANConfig.imagenet256/128/64())."
        )


def detect_released_config(official: Mapping[str, torch.Tensor]) -> ICGANConfig:
    """The released ImageNet config (256, 128 or 64) whose layout the checkpoint has (shapes only)."""
    with torch.device("meta"):
        shapes_only = {k: torch.empty(tuple(v.shape)) for k, v in official.items()}
    for config in (ICGANConfig.imagenet256(), ICGANConfig.imagenet128(), ICGANConfig.imagenet64()):
        try:
            convert_official_state_dict(shapes_only, config)
        except ConversionError:
            continue
        return config
    raise ConversionError(
        "checkpoint layout matches none of the released IC-GAN ImageNet configs (256, 128, 64); "
        "pass config=ICGANConfig(...) describing it"
    )


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
