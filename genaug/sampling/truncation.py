"""Truncated standard normal noise for the IC-GAN truncation trick, from explicit generators.

The official IC-GAN notebook and ``predict.py`` draw
``scipy.stats.truncnorm.rvs(-2 * truncation, 2 * truncation, size=...)``: a *standard* normal
restricted to [-2t, 2t] (not BigGAN's ``truncation * truncnorm(-2, 2)``, which also scales it).
We draw the same distribution by inverse-CDF sampling: u ~ U(Phi(-b), Phi(b)), x = Phi^-1(u),
in float64, so every value costs exactly one uniform from the caller's generator and no global
RNG (numpy's or scipy's) is touched.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

_SQRT2 = math.sqrt(2.0)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def truncation_bound(truncation: float) -> float:
    """Half-width of the support for an official truncation value: 2 * truncation."""
    if not (isinstance(truncation, (int, float)) and math.isfinite(truncation) and truncation > 0):
        raise ValueError(f"truncation={truncation!r}: expected a number > 0 (official default 0.7)")
    return 2.0 * float(truncation)


def truncated_normal(shape: Sequence[int], bound: float, generator: torch.Generator) -> torch.Tensor:
    """Standard normal restricted to [-bound, bound], float32 on the generator's device."""
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"bound={bound!r}: expected a finite number > 0")
    lo, hi = _normal_cdf(-bound), _normal_cdf(bound)
    u = torch.rand(tuple(shape), generator=generator, device=generator.device, dtype=torch.float64)
    p = lo + (hi - lo) * u  # (shape) in [Phi(-b), Phi(b))
    x = _SQRT2 * torch.special.erfinv(2.0 * p - 1.0)
    return x.clamp_(-bound, bound).to(torch.float32)


def truncated_normal_per_sample(
    generators: Sequence[torch.Generator], shape: Sequence[int], bound: float,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """One draw of `shape` per generator, stacked: (len(generators), *shape) float32 on `device`.

    Row i depends only on generator i, so a sample's noise does not depend on its batch."""
    if len(generators) == 0:
        raise ValueError("generators is empty: pass one torch.Generator per sample")
    rows = [truncated_normal(shape, bound, g) for g in generators]
    out = torch.stack([r.to(rows[0].device) for r in rows])
    return out if device is None else out.to(device)
