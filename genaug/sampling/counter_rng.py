"""Counter-based per-sample random numbers, generated for a whole batch in a few integer tensor ops.

Value (sample seed, counter) -> SplitMix64(key(seed) + (counter + 1) * GOLDEN), i.e. element `counter` of
the SplitMix64 sequence started at key(seed) = SplitMix64 finaliser of the seed. The top 24 bits give a
float32 uniform in [0, 1) exactly (every such uniform is a float32 without rounding).

Everything is int64 tensor arithmetic (multiplications wrap modulo 2^64 in two's complement on CPU and
CUDA, also under torch.compile; the shifts are made logical with masks), so a sample's numbers depend
only on its seed and the counters asked for: never on the batch size, its neighbours, the device or the
thread count, and a whole batch of (B, N) numbers costs one pass of ~12 elementwise kernels with no
Python loop over samples and no host synchronisation. `splitmix64_reference` is the same in pure
Python (tests compare the two).
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
UNIFORM_BITS = 24  # float32 uniforms on a grid of 2**-24


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's >> on int64 is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _finalise(z: torch.Tensor) -> torch.Tensor:
    """The SplitMix64 output function on int64 bit patterns (wrapping multiplications)."""
    z = (z ^ _shr(z, 30)) * _signed(_MIX1)
    z = (z ^ _shr(z, 27)) * _signed(_MIX2)
    return z ^ _shr(z, 31)


def sample_keys(seeds: torch.Tensor) -> torch.Tensor:
    """(B,) int64 seeds (any 64-bit pattern) -> (B,) int64 stream keys."""
    if seeds.dtype != torch.int64 or seeds.dim() != 1:
        raise ValueError(f"seeds must be an int64 tensor (B,); got {seeds.dtype} {tuple(seeds.shape)}")
    return _finalise(seeds)


def counter_offsets(count: int, device: torch.device | str) -> torch.Tensor:
    """(count,) int64: (c + 1) * GOLDEN for counters c in [0, count), wrapped; reuse across calls."""
    return (torch.arange(count, dtype=torch.int64, device=device) + 1) * _signed(_GOLDEN)


def uniform(keys: torch.Tensor, first: int, offsets: torch.Tensor) -> torch.Tensor:
    """(B, N) float32 in [0, 1): sample b's numbers at counters first .. first + N - 1.

    keys: (B,) from `sample_keys`; offsets: `counter_offsets(N)` on the keys' device; first: a Python
    int (distinct, non-overlapping counter ranges give independent numbers)."""
    start = _signed(first * _GOLDEN)
    z = _finalise(keys[:, None] + (offsets + start))
    return _shr(z, 64 - UNIFORM_BITS).to(torch.float32) * (2.0 ** -UNIFORM_BITS)


def splitmix64_reference(seed: int, counter: int) -> float:
    """Pure-Python value of `uniform` for one (seed, counter); for tests."""
    def fin(z: int) -> int:
        z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
        return z ^ (z >> 31)

    key = fin(seed & _MASK64)
    z = fin((key + (counter + 1) * _GOLDEN) & _MASK64)
    return (z >> (64 - UNIFORM_BITS)) * 2.0 ** -UNIFORM_BITS
