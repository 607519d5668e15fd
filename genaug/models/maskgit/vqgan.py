"""VQGAN tokenizer of MaskGIT (no attention layers), equal to the official Flax `vqgan_tokenizer`.

Layout is NCHW. Images are float in [0, 1]; the decoder output is not clipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genaug.models.maskgit.config import GROUPNORM_EPS, GROUPNORM_GROUPS, MaskGITConfig


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPNORM_GROUPS, channels, eps=GROUPNORM_EPS)


class ResBlock(nn.Module):
    """norm-swish-conv3x3 twice. When the channel count changes, the official block adds a
    1x1 conv of the block's OWN output (not of its input) as the residual."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(out_channels, out_channels, 1, bias=False) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        residual = x if self.shortcut is None else self.shortcut(h)
        return h + residual


class Level(nn.Module):
    """Res-blocks at one resolution, optionally followed (decoder) by upsample + conv."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, upsample: bool) -> None:
        super().__init__()
        chans = [in_channels] + [out_channels] * num_blocks
        self.blocks = nn.ModuleList(ResBlock(chans[i], chans[i + 1]) for i in range(num_blocks))
        self.up_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1) if upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.up_conv is not None:
            x = self.up_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        n_res, mults = cfg.num_res_blocks, cfg.channel_multipliers
        self.conv_in = nn.Conv2d(3, cfg.filters, 3, padding=1, bias=False)
        chans = [cfg.filters] + [cfg.filters * m for m in mults]
        self.levels = nn.ModuleList(Level(chans[i], chans[i + 1], n_res, False) for i in range(len(mults)))
        self.mid = Level(chans[-1], chans[-1], n_res, False)
        self.norm_out = _norm(chans[-1])
        self.conv_out = nn.Conv2d(chans[-1], cfg.embedding_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, D, H/f, W/f)
        x = self.conv_in(x)
        for i, level in enumerate(self.levels):
            x = level(x)
            if i < len(self.levels) - 1:
                x = F.avg_pool2d(x, 2)  # (B, C, H/2, W/2); sizes are even (checked by the config)
        x = self.mid(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        n_res, mults = cfg.num_res_blocks, cfg.channel_multipliers
        top = cfg.filters * mults[-1]
        self.conv_in = nn.Conv2d(cfg.embedding_dim, top, 3, padding=1)
        self.mid = Level(top, top, n_res, False)
        levels, prev = [], top
        for i in reversed(range(len(mults))):  # executed order: deepest level first
            ch = cfg.filters * mults[i]
            levels.append(Level(prev, ch, n_res, upsample=i > 0))
            prev = ch
        self.levels = nn.ModuleList(levels)
        self.norm_out = _norm(prev)
        self.conv_out = nn.Conv2d(prev, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, h, w) -> (B, 3, H, W)
        x = self.mid(self.conv_in(z))
        for level in self.levels:
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class VectorQuantizer(nn.Module):
    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.empty(cfg.codebook_size, cfg.embedding_dim))
        nn.init.uniform_(self.codebook, -(3.0 / cfg.embedding_dim) ** 0.5, (3.0 / cfg.embedding_dim) ** 0.5)

    def indices(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, h, w) -> (B, h, w) int64
        """Nearest codebook entry, always in fp32 (|a|^2 - 2ab + |b|^2 as the official code)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            b, d, h, w = z.shape
            flat = z.float().permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, D)
            book = self.codebook.float()  # (K, D)
            dist = (flat**2).sum(1, keepdim=True) - 2 * flat @ book.t() + (book**2).sum(1)[None, :]
            return dist.argmin(dim=1).view(b, h, w)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:  # (B, h, w) -> (B, D, h, w)
        return F.embedding(ids, self.codebook).permute(0, 3, 1, 2)


class VQGAN(nn.Module):
    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg)
        self.decoder = Decoder(cfg)
