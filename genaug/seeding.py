"""Per-sample seeds: a sample's randomness depends only on (run seed, sample key)."""

from __future__ import annotations

import hashlib

import torch


def sample_seed(run_seed: int, key: str, stream: str = "") -> int:
    """A 63-bit seed from the run seed, the sample key and an optional stream name."""
    digest = hashlib.blake2b(f"{int(run_seed)}\x1f{key}\x1f{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed`."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
