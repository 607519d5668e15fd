"""LARS and the VICReg learning-rate schedule (facebookresearch/vicreg ``main_vicreg.py``).

* LARS (You et al. 2017) with momentum 0.9, trust coefficient eta 0.001, weight decay 1e-6; biases and
  normalisation parameters (every 1-d parameter) are excluded from both weight decay and the LARS
  adaptation, as the official ``exclude_bias_and_norm`` filter does.
* Schedule: peak lr = base_lr * global_batch / 256 (base_lr 0.2), linear warm-up from 0 over the first
  10 of 100 epochs, then a half-cosine down to peak / 1000.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch


def exclude_bias_and_norm(param: torch.Tensor) -> bool:
    """True for biases and BatchNorm/LayerNorm weights (1-d): no weight decay, no LARS adaptation."""
    return param.ndim == 1


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with SGD momentum (the update rule of the official VICReg LARS)."""

    def __init__(self, params: Iterable, lr: float = 0.0, weight_decay: float = 1e-6, momentum: float = 0.9,
                 eta: float = 0.001, exclude=exclude_bias_and_norm):
        if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1 or eta <= 0:
            raise ValueError(f"LARS(lr={lr}, weight_decay={weight_decay}, momentum={momentum}, eta={eta}): "
                             "need lr >= 0, weight_decay >= 0, 0 <= momentum < 1, eta > 0")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))
        self.exclude = exclude

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                update = param.grad
                if not self.exclude(param):
                    update = update.add(param, alpha=group["weight_decay"])
                    weight_norm, update_norm = torch.norm(param), torch.norm(update)
                    trust = group["eta"] * weight_norm / update_norm
                    ratio = torch.where((weight_norm > 0) & (update_norm > 0), trust, torch.ones_like(trust))
                    update = update * ratio
                state = self.state[param]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(param)
                state["mu"].mul_(group["momentum"]).add_(update)
                param.add_(state["mu"], alpha=-group["lr"])
        return loss


def peak_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule of VICReg: base_lr * global_batch / 256."""
    return base_lr * global_batch / 256


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float, end_ratio: float = 1e-3) -> float:
    """The lr at `step` (0-based): linear warm-up 0 -> peak, then cosine peak -> peak * end_ratio."""
    if step < warmup_steps:
        return peak * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    q = 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))
    return peak * q + peak * end_ratio * (1 - q)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
