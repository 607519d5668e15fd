"""Per-pair quality scores between a real image and its augmentation.

SSIM uses torchmetrics' maintained implementation with the settings of Wang et al. 2004
("Image quality assessment: from error visibility to structural similarity"): a Gaussian
window of 11 taps with sigma 1.5, K1 = 0.01, K2 = 0.03 and a data range of 255 (uint8
pixels). torchmetrics computes the SSIM map on each RGB channel, reflect-pads the borders and
averages the map over all pixels and the three channels, giving one value per image pair.
(Wang et al. used greyscale images and dropped the border; values differ slightly.)

Used by ``genaug report`` and by ``genaug build --scores``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

SCORES = ("ssim",)  # score names known to compute_scores / `genaug build --scores`

SSIM_SETTINGS = {
    "implementation": "torchmetrics.functional.image.structural_similarity_index_measure",
    "gaussian_kernel": True,  # Gaussian (not uniform) window
    "kernel_size": 11,  # window side in taps
    "sigma": 1.5,  # Gaussian window standard deviation, pixels
    "data_range": 255.0,  # uint8 pixel range
    "k1": 0.01,  # luminance stabiliser constant
    "k2": 0.03,  # contrast stabiliser constant
    "channels": "RGB, averaged",  # SSIM map per channel, mean over pixels and channels
    "borders": "reflect-padded",  # torchmetrics pads by reflection before filtering
    "precision": "float32",  # arithmetic precision of the SSIM map (error up to ~2e-4)
}


def validate_score_names(names: Sequence[str]) -> tuple[str, ...]:
    """Return the names as a tuple; raise ValueError naming any unknown score."""
    names = tuple(names)
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise ValueError(f"unknown score(s) {unknown}; choose from {list(SCORES)}")
    return names


def _check_pair(real: torch.Tensor, aug: torch.Tensor) -> None:
    for name, t in (("real", real), ("aug", aug)):
        if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(
                f"{name} must be a uint8 (B, 3, H, W) tensor, got {t.dtype} {tuple(t.shape)}"
            )
    if real.shape[0] != aug.shape[0]:
        raise ValueError(f"real and aug batch sizes differ: {real.shape[0]} vs {aug.shape[0]}")


def resize_like(aug: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """aug: uint8 (B, 3, h, w) -> uint8 (B, 3, H, W) by antialiased bicubic resizing (no-op if equal)."""
    if tuple(aug.shape[-2:]) == tuple(size):
        return aug
    out = F.interpolate(aug.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def ssim(real: torch.Tensor, aug: torch.Tensor) -> torch.Tensor:
    """Per-pair SSIM. real, aug: uint8 (B, 3, R, R), same shape -> float32 (B,).

    Computed in float32 (float64 grouped convolutions are ~40x slower on CPU). torchmetrics forms
    variances as E[x^2] - E[x]^2, so values carry an absolute error of up to ~2e-4 from
    cancellation at uint8 scale: far below any difference that matters for a report.
    """
    _check_pair(real, aug)
    if real.shape != aug.shape:
        raise ValueError(f"real and aug shapes differ: {tuple(real.shape)} vs {tuple(aug.shape)}")
    values = structural_similarity_index_measure(
        aug.float(),  # (B, 3, R, R), the image under test
        real.float(),  # (B, 3, R, R), the reference
        gaussian_kernel=SSIM_SETTINGS["gaussian_kernel"],
        sigma=SSIM_SETTINGS["sigma"],
        kernel_size=SSIM_SETTINGS["kernel_size"],
        reduction="none",
        data_range=SSIM_SETTINGS["data_range"],
        k1=SSIM_SETTINGS["k1"],
        k2=SSIM_SETTINGS["k2"],
    )
    return values.reshape(-1)  # (B,)


_SCORE_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"ssim": ssim}


def compute_scores(names: Sequence[str], real: torch.Tensor, aug: torch.Tensor) -> dict[str, list[float]]:
    """Scores for each pair: {name: [B floats]}.

    real: uint8 (B, 3, R, R), the preprocessed model input (cropped, resized);
    aug: uint8 (B, 3, H, W), resized to real's size (antialiased bicubic) when H, W differ.
    """
    names = validate_score_names(names)
    _check_pair(real, aug)
    aug = resize_like(aug, tuple(real.shape[-2:]))
    return {name: [float(v) for v in _SCORE_FUNCTIONS[name](real, aug).cpu()] for name in names}
