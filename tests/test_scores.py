"""SSIM per pair (genaug.report.scores): known answers, monotonicity, batch independence, validation."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from genaug.report.scores import SCORES, compute_scores, ssim


def _images(seed: int, n: int = 4, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


def _smooth_images(seed: int, n: int = 4, size: int = 32) -> torch.Tensor:
    """Structured (low-frequency) images, so that noise lowers SSIM gradually."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 4, 4), generator=gen) * 255
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear").round().to(torch.uint8)


def test_identical_images_have_ssim_one():
    x = _images(0)
    scores = compute_scores(["ssim"], x, x.clone())
    assert list(scores) == ["ssim"]
    assert scores["ssim"] == pytest.approx([1.0] * 4, abs=1e-5)


def test_constant_images_match_closed_form():
    """Flat images: no variance, so SSIM is the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).

    Tolerance 5e-4: float32 cancellation in torchmetrics' E[x^2] - E[x]^2 (see scores.ssim)."""
    real = torch.full((1, 3, 24, 24), 100, dtype=torch.uint8)
    aug = torch.full((1, 3, 24, 24), 150, dtype=torch.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert compute_scores(SCORES, real, aug)["ssim"][0] == pytest.approx(expected, abs=5e-4)
    assert abs(expected - 1.0) > 0.05  # the case is far from trivial


def test_ssim_decreases_monotonically_with_noise():
    real = _smooth_images(1)
    gen = torch.Generator().manual_seed(2)
    noise = torch.randn(real.shape, generator=gen)
    means = []
    for sigma in (0.0, 5.0, 20.0, 60.0):
        aug = (real.float() + sigma * noise).round().clamp(0, 255).to(torch.uint8)
        means.append(sum(compute_scores(["ssim"], real, aug)["ssim"]) / len(real))
    assert means[0] == pytest.approx(1.0, abs=1e-5)
    assert all(a > b for a, b in zip(means, means[1:])), means


def test_scores_do_not_depend_on_batch_neighbours():
    real, aug = _images(3, n=6), _images(4, n=6)
    together = compute_scores(["ssim"], real, aug)["ssim"]
    alone = [compute_scores(["ssim"], real[i : i + 1], aug[i : i + 1])["ssim"][0] for i in range(6)]
    assert together == pytest.approx(alone, abs=1e-6)


def test_aug_is_resized_to_real_size():
    real = _smooth_images(5, size=32)
    small = torch.nn.functional.interpolate(real.float(), size=(16, 16), mode="bilinear", antialias=True)
    scores = compute_scores(["ssim"], real, small.round().to(torch.uint8))["ssim"]
    assert all(0.5 < s < 1.0 for s in scores), scores


def test_ssim_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(_images(0, size=32), _images(0, size=16))


@pytest.mark.parametrize(
    "names, real, match",
    [
        (["psnr"], _images(0), "unknown score"),
        (["ssim"], _images(0).float(), "uint8"),
        (["ssim"], _images(0, n=2), "batch sizes differ"),
    ],
)
def test_bad_arguments_are_named(names, real, match):
    with pytest.raises(ValueError, match=match):
        compute_scores(names, real, _images(1))


def _reference_ssim(real: np.ndarray, aug: np.ndarray) -> float:
    """Wang et al. 2004 SSIM written out with scipy (float64): Gaussian sigma 1.5 over 11 taps,
    K1 0.01, K2 0.03, L 255, mirrored borders, map averaged over pixels and RGB channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for x, y in zip(real.astype(np.float64), aug.astype(np.float64)):  # one channel at a time
        blur = lambda a: ndimage.gaussian_filter(a, sigma=1.5, truncate=3.5, mode="mirror")  # noqa: E731
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        values.append(ssim_map.mean())
    return float(np.mean(values))


def test_matches_formula_written_out_with_wang_settings():
    real = _smooth_images(7, n=3, size=40)
    gen = torch.Generator().manual_seed(8)
    aug = (real.float() + 25 * torch.randn(real.shape, generator=gen)).round().clamp(0, 255).to(torch.uint8)
    ours = compute_scores(["ssim"], real, aug)["ssim"]
    expected = [_reference_ssim(r.numpy(), a.numpy()) for r, a in zip(real, aug)]
    assert min(expected) < 0.9  # a non-trivial case
    assert ours == pytest.approx(expected, abs=5e-4)
