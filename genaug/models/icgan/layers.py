"""Building blocks of the IC-GAN (BigGAN) generator, in inference form.

Spectral norm is folded into the plain weights at conversion (see convert.py), so every conv and
linear here is an ordinary ``nn.Conv2d`` / ``nn.Linear``. Batch norms always use the stored
statistics (the official generator runs in eval mode, ``G_eval_mode``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CondBatchNorm(nn.Module):
    """Official ``ccbn`` (norm_style "bn"): batch norm with stored statistics, then a per-sample
    gain ``1 + gain(y)`` and bias ``bias(y)`` from bias-free linear maps of the condition y."""

    def __init__(self, num_channels: int, cond_dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.gain = nn.Linear(cond_dim, num_channels, bias=False)
        self.bias = nn.Linear(cond_dim, num_channels, bias=False)
        self.register_buffer("stored_mean", torch.zeros(num_channels))
        self.register_buffer("stored_var", torch.ones(num_channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # x (B, C, H, W), y (B, cond_dim) -> (B, C, H, W)
        # (x - mean) / sqrt(var + eps) * (1 + gain(y)) + bias(y), folded into one scale and shift
        # per sample and channel so the feature map is read once.
        scale = (1 + self.gain(y).float()) * torch.rsqrt(self.stored_var + self.eps)  # (B, C)
        shift = self.bias(y).float() - self.stored_mean * scale  # (B, C)
        return torch.addcmul(shift.to(x.dtype)[:, :, None, None], x, scale.to(x.dtype)[:, :, None, None])


class OutputBatchNorm(nn.Module):
    """Official ``layers.bn`` before the output conv: stored statistics and a learned affine."""

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("stored_mean", torch.zeros(num_channels))
        self.register_buffer("stored_var", torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B, C, H, W) -> (B, C, H, W)
        return F.batch_norm(x, self.stored_mean, self.stored_var, self.gain, self.bias, False, 0.0, self.eps)


class GBlock(nn.Module):
    """Residual up-block: BN-ReLU-up2-conv3, BN-ReLU-conv3, plus a 1x1 conv of the upsampled input."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, eps: float) -> None:
        super().__init__()
        self.bn1 = CondBatchNorm(in_channels, cond_dim, eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn2 = CondBatchNorm(out_channels, cond_dim, eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_sc = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # x (B, Cin, H, W), y (B, cond_dim) -> (B, Cout, 2H, 2W)
        h = F.relu(self.bn1(x, y))
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # (B, Cin, 2H, 2W)
        h = F.relu(self.bn2(self.conv1(h), y))  # (B, Cout, 2H, 2W)
        h = self.conv2(h)
        # A 1x1 conv commutes with nearest upsampling: run it at low resolution (4x fewer FLOPs).
        shortcut = F.interpolate(self.conv_sc(x), scale_factor=2, mode="nearest")  # (B, Cout, 2H, 2W)
        return h + shortcut


class Attention(nn.Module):
    """SA-GAN non-local block as in BigGAN: keys and values max-pooled 2x2, no softmax scaling,
    output scaled by the learned ``gamma`` and added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x (B, C, H, W) -> (B, C, H, W); y is ignored (uniform block signature)
        b, _, height, width = x.shape
        # channel-last token layout; free for channels_last inputs, a copy for NCHW (fused kernels need it)
        query = self.theta(x).flatten(2).transpose(1, 2).contiguous()  # (B, HW, C/8)
        key = F.max_pool2d(self.phi(x), 2).flatten(2).transpose(1, 2).contiguous()  # (B, HW/4, C/8)
        value = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2).contiguous()  # (B, HW/4, C/2)
        attended = F.scaled_dot_product_attention(
            query[:, None], key[:, None], value[:, None], scale=1.0
        )[:, 0]  # (B, HW, C/2): softmax(query key^T) value
        attended = attended.transpose(1, 2).reshape(b, -1, height, width)  # (B, C/2, H, W)
        return self.gamma * self.o(attended) + x
