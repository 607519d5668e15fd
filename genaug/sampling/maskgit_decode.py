"""MaskGIT iterative parallel decoding, equal to the official `libml/parallel_decode.decode`.

Per step s (from `start_iter` to `num_iter - 1`):
  1. sample every masked token by Gumbel-max over the codebook logits;
  2. record the fully sampled sequence as step s's output;
  3. confidence = log p(chosen) + choice_temperature * (1 - r) * Gumbel, with r = (s + 1) / num_iter,
     known tokens get +inf;
  4. re-mask the `mask_len` least confident tokens, mask_len = floor(unknown_at_start * cos(pi/2 r))
     clamped to [1, unknown_now - 1], via a sort-based cut-off.
The schedule is computed in float32 exactly as the official code does (float64 gives a different
token count at some steps). Every step is static-shape tensor work without host synchronisation.
All math here runs in fp32, whatever autocast is active.

The Gumbel noise comes from (in order of precedence) `noise` (explicit, for the fidelity tests),
`seeds` (one int64 seed per sample: counter-based uniforms, see `counter_rng`, the whole batch's noise
of a step in one pass of integer kernels; what the editor uses) or `generator` (torch.Generators).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import numpy as np
import torch

from genaug.sampling import counter_rng

GeneratorArg = Union[None, torch.Generator, Sequence[torch.Generator]]
NoiseArg = Union[None, Sequence[Union[None, tuple[torch.Tensor, torch.Tensor]]]]

_TINY = float(np.finfo(np.float32).tiny)  # jax.random.gumbel draws uniforms in [tiny, 1)
_MIN_MASK_RATIO = np.float32(1e-6)  # official mask_schedule clips the ratio into [1e-6, 1]


def step_ratio(step: int, num_iter: int) -> np.float32:
    """r = (step + 1) / num_iter in float32, as `1. * (step + 1) / num_iter` with an int32 step."""
    return np.float32(step + 1) / np.float32(num_iter)


def cosine_mask_ratio(step: int, num_iter: int) -> np.float32:
    """Official cosine schedule in float32: clip(cos(pi/2 * r), 1e-6, 1) with a float32 angle.

    The cosine of the float32 angle is rounded to float32 from double precision (platform
    independent); XLA's float32 cos can differ from it by one ulp, which changes no token count
    floor(unknown * ratio) for unknown <= 1024 and num_iter <= 64 (tested against the official
    table). Computing the whole schedule in float64 does change counts (e.g. r = 2/3).
    """
    angle = np.float32(math.pi / 2.0) * step_ratio(step, num_iter)
    return np.clip(np.float32(math.cos(float(angle))), _MIN_MASK_RATIO, np.float32(1.0))


def gumbel_from_uniform(u: torch.Tensor) -> torch.Tensor:
    """-log(-log(u)) with u clamped to [tiny, 1), like jax.random.gumbel."""
    return -torch.log(-torch.log(u.clamp_min(_TINY)))


def draw_gumbel(shape: tuple[int, ...], generator: GeneratorArg, batch: int,
                device: torch.device) -> torch.Tensor:
    """Gumbel noise of shape (batch, *shape) in fp32.

    generator: None (torch default RNG), one Generator for the whole batch, or a sequence of
    `batch` generators; then sample i's noise comes from generator i alone, so it does not
    depend on batch size or batch neighbours.
    """
    if generator is None or isinstance(generator, torch.Generator):
        gen_device = generator.device if generator is not None else device
        u = torch.rand((batch, *shape), generator=generator, device=gen_device, dtype=torch.float32)
    else:
        u = torch.stack([
            torch.rand(shape, generator=g, device=g.device, dtype=torch.float32) for g in generator
        ])
    return gumbel_from_uniform(u.to(device))


def counter_gumbel(keys: torch.Tensor, step: int, which: int, offsets: torch.Tensor,
                   shape: tuple[int, ...]) -> torch.Tensor:
    """(B, *shape) fp32 Gumbel noise of decode step `step` from per-sample keys (counter_rng.sample_keys):
    which 0 = token sampling noise, 1 = re-masking choice noise. Counter range of (step, which): starts
    at (2 * step + which) * 2**32, so ranges never overlap for shapes below 2**32 elements."""
    first = (2 * step + which) << 32
    u = counter_rng.uniform(keys, first, offsets)
    return gumbel_from_uniform(u).view(keys.shape[0], *shape)


class SeedNoise:
    """Per-step Gumbel noise of a batch from per-sample seeds, counter offsets made once per decode."""

    def __init__(self, seeds: torch.Tensor, length: int, codebook_size: int, device: torch.device) -> None:
        self.keys = counter_rng.sample_keys(seeds.to(device, torch.int64, non_blocking=True))
        self.length, self.codebook_size = length, codebook_size
        self.sample_offsets = counter_rng.counter_offsets(length * codebook_size, device)
        self.choice_offsets = self.sample_offsets[:length]

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (counter_gumbel(self.keys, step, 0, self.sample_offsets, (self.length, self.codebook_size)),
                counter_gumbel(self.keys, step, 1, self.choice_offsets, (self.length,)))


def _validate(seq: torch.Tensor, num_iter: int, start_iter: int, choice_temperature: float,
              generator: GeneratorArg, noise: NoiseArg, seeds: torch.Tensor | None = None) -> None:
    if seq.dim() != 2 or seq.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"seq must be an int32/int64 tensor (B, L); got {tuple(seq.shape)} {seq.dtype}")
    if not isinstance(num_iter, int) or num_iter < 1:
        raise ValueError(f"num_iter={num_iter!r} must be a positive integer (official default 12)")
    if not isinstance(start_iter, int) or not 0 <= start_iter < num_iter:
        raise ValueError(f"start_iter={start_iter!r} must be an integer in [0, num_iter={num_iter})")
    if not math.isfinite(choice_temperature) or choice_temperature < 0:
        raise ValueError(f"choice_temperature={choice_temperature!r} must be a finite number >= 0")
    if generator is not None and not isinstance(generator, torch.Generator):
        if len(generator) != seq.shape[0]:
            raise ValueError(
                f"got {len(generator)} generators for a batch of {seq.shape[0]}; pass one per sample"
            )
    if seeds is not None:
        if generator is not None:
            raise ValueError("pass either seeds or generator, not both")
        if not isinstance(seeds, torch.Tensor) or seeds.dtype != torch.int64 or tuple(seeds.shape) != seq.shape[:1]:
            got = f"{seeds.dtype} {tuple(seeds.shape)}" if isinstance(seeds, torch.Tensor) else type(seeds).__name__
            raise ValueError(f"seeds must be an int64 tensor ({seq.shape[0]},), one seed per sample; got {got}")
    if noise is not None and len(noise) != num_iter:
        raise ValueError(
            f"noise has {len(noise)} entries; give one (gumbel_sample, gumbel_choice) pair per step "
            f"s in range(num_iter={num_iter}) (entries before start_iter may be None)"
        )


def _step_noise(noise: NoiseArg, step: int, generator: GeneratorArg, batch: int, length: int,
                codebook_size: int, device: torch.device,
                seed_noise: SeedNoise | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if noise is not None:
        g_sample, g_choice = noise[step]
        if tuple(g_sample.shape) != (batch, length, codebook_size) or tuple(g_choice.shape) != (batch, length):
            raise ValueError(
                f"noise[{step}] shapes {tuple(g_sample.shape)}, {tuple(g_choice.shape)}; expected "
                f"({batch}, {length}, {codebook_size}) and ({batch}, {length})"
            )
        return g_sample.to(device, torch.float32), g_choice.to(device, torch.float32)
    if seed_noise is not None:
        return seed_noise(step)
    g_sample = draw_gumbel((length, codebook_size), generator, batch, device)  # official order:
    g_choice = draw_gumbel((length,), generator, batch, device)  # sample first, then choice
    return g_sample, g_choice


def schedule_tensors(num_iter: int, choice_temperature: float,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step (mask_ratio, choice temperature * (1 - r)), (num_iter,) fp32 each, made once
    before the loop so that the loop does no host-to-device transfers."""
    ratios = [cosine_mask_ratio(s, num_iter) for s in range(num_iter)]
    temps = [np.float32(choice_temperature) * (np.float32(1.0) - step_ratio(s, num_iter)) for s in range(num_iter)]
    # built on the host, then one asynchronous copy each (no stream synchronisation)
    return (torch.from_numpy(np.array(ratios, np.float32)).to(device, non_blocking=True),
            torch.from_numpy(np.array(temps, np.float32)).to(device, non_blocking=True))


def decode_step(cur: torch.Tensor, logits: torch.Tensor, unknown_at_start: torch.Tensor,
                g_sample: torch.Tensor, g_choice: torch.Tensor, mask_ratio: torch.Tensor,
                temperature: torch.Tensor, mask_token_id: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """One official decode step. cur (B, L) int64; logits (B, L, K) over the codebook only;
    unknown_at_start (B, 1) fp32; mask_ratio and temperature: 0-dim fp32 tensors of this step
    (see `schedule_tensors`). Returns (sampled (B, L): this step's output, next cur (B, L))."""
    logits = logits.float()
    sampled = torch.argmax(logits + g_sample, dim=-1)  # (B, L) Gumbel-max = categorical sample
    unknown = cur == mask_token_id
    sampled = torch.where(unknown, sampled, cur)
    probs = torch.softmax(logits, dim=-1)
    index = sampled.clamp(0, logits.shape[-1] - 1).unsqueeze(-1)  # known ids may lie outside K
    selected = torch.gather(probs, -1, index).squeeze(-1)  # (B, L)
    selected = torch.where(unknown, selected, torch.full_like(selected, math.inf))
    mask_len = torch.floor(unknown_at_start * mask_ratio)  # (B, 1) fp32, as official
    unknown_now = unknown.sum(-1, keepdim=True).float() - 1.0
    mask_len = torch.clamp_min(torch.minimum(unknown_now, mask_len), 1.0).long()
    confidence = torch.log(selected) + temperature * g_choice  # (B, L)
    cut_off = torch.gather(torch.sort(confidence, dim=-1).values, -1, mask_len)  # (B, 1)
    masking = confidence < cut_off
    return sampled, torch.where(masking, torch.full_like(sampled, mask_token_id), sampled)


def parallel_decode(seq: torch.Tensor, logits_fn: Callable[[torch.Tensor], torch.Tensor], *,
                    codebook_size: int, num_iter: int = 12, start_iter: int = 0,
                    choice_temperature: float = 4.5, generator: GeneratorArg = None,
                    noise: NoiseArg = None, mask_token_id: int = -1,
                    seeds: torch.Tensor | None = None,
                    step_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """seq (B, L) int, mask_token_id where unknown -> (B, num_iter, L) int64, every step's sampled
    sequence (steps before start_iter hold the input). logits_fn(seq (B, L)) -> (B, L, vocab);
    only the first codebook_size logits are used, as in the official sampler. seeds: (B,) int64,
    one per sample (counter-based noise; excludes generator). step_fn: replaces `decode_step` (same
    signature; e.g. its torch.compile'd version)."""
    _validate(seq, num_iter, start_iter, choice_temperature, generator, noise, seeds)
    step_fn = decode_step if step_fn is None else step_fn
    batch, length = seq.shape
    cur = seq.long()
    with torch.autocast(device_type=seq.device.type, enabled=False):
        unknown_at_start = (cur == mask_token_id).sum(-1, keepdim=True).float()  # (B, 1)
        out = cur.unsqueeze(1).repeat(1, num_iter, 1)  # (B, num_iter, L)
        mask_ratios, temperatures = schedule_tensors(num_iter, choice_temperature, seq.device)
        seed_noise = None if seeds is None or noise is not None else SeedNoise(seeds, length, codebook_size,
                                                                                seq.device)
    for step in range(start_iter, num_iter):
        logits = logits_fn(cur)[..., :codebook_size]
        with torch.autocast(device_type=seq.device.type, enabled=False):
            g_sample, g_choice = _step_noise(noise, step, generator, batch, length, codebook_size, seq.device,
                                             seed_noise)
            sampled, cur = step_fn(cur, logits, unknown_at_start, g_sample, g_choice,
                                       mask_ratios[step], temperatures[step], mask_token_id)
            out[:, step] = sampled
    return out
