"""The IC-GAN generator: BigGAN conditioned on instance features and hierarchical noise."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from genaug.checkpoint import CheckpointError, load_checkpoint
from genaug.models.icgan.config import ICGANConfig
from genaug.models.icgan.convert import DROPPED_KEYS, ConversionError, fold_spectral_norm, official_generator_file
from genaug.models.icgan.layers import Attention, GBlock, OutputBatchNorm

log = logging.getLogger(__name__)

CONVERTED_FORMAT = "genaug-icgan-generator-v1"  # tag of files written by Generator.save_torch


class Generator(nn.Module):
    """Inference-only port of the official BigGAN_PyTorch generator as IC-GAN uses it
    (instance-conditioned, no class conditioning, hierarchical z, spectral norm folded)."""

    def __init__(self, config: ICGANConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.shared_feat = nn.Linear(c.feat_dim, c.shared_dim_feat)
        first_width = c.ch * c.in_multipliers[0]
        self.linear = nn.Linear(c.dim_z // c.num_slots, first_width * c.bottom_width**2)
        blocks = []
        for index, resolution in enumerate(c.block_resolutions):
            out_channels = c.ch * c.out_multipliers[index]
            stage: list[nn.Module] = [GBlock(c.ch * c.in_multipliers[index], out_channels, c.cond_dim, c.bn_eps)]
            if resolution == c.attention_resolution:
                stage.append(Attention(out_channels))
            blocks.append(nn.ModuleList(stage))
        self.blocks = nn.ModuleList(blocks)
        last = c.ch * c.out_multipliers[-1]
        self.output_layer = nn.Sequential(OutputBatchNorm(last), nn.ReLU(), nn.Conv2d(last, 3, 3, padding=1))

    @property
    def dim_z(self) -> int:
        """Noise dims to sample (119 for ImageNet-256), as the official ``G.dim_z``; more are accepted
        and ignored, as in the official forward."""
        return self.config.z_dims_used

    def forward(self, z: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        # z (B, >= dim_z), feats (B, feat_dim) L2-normalised -> (B, 3, R, R) in [-1, 1]
        c = self.config
        self._check_inputs(z, feats)
        y = self.shared_feat(feats)  # (B, shared_dim_feat)
        if c.hier:
            chunks = torch.split(z[:, : c.z_dims_used], c.z_chunk_size, dim=1)  # num_slots x (B, chunk)
            h = self.linear(chunks[0])  # (B, C0 * bw * bw)
            conds = [torch.cat([y, chunk], dim=1) for chunk in chunks[1:]]  # per block (B, cond_dim)
        else:
            h = self.linear(z)
            conds = [y] * len(self.blocks)
        h = h.view(h.shape[0], -1, c.bottom_width, c.bottom_width)  # (B, C0, bw, bw)
        if self._channels_last():
            h = h.contiguous(memory_format=torch.channels_last)
        for stage, cond in zip(self.blocks, conds):
            for block in stage:
                h = block(h, cond)  # (B, C_i, 2^i * bw ...)
        return torch.tanh(self.output_layer(h))  # (B, 3, R, R)

    def _channels_last(self) -> bool:
        """True after ``.to(memory_format=torch.channels_last)``: convs then get channels-last inputs."""
        first_conv = next(m for m in self.modules() if isinstance(m, nn.Conv2d))
        return first_conv.weight.is_contiguous(memory_format=torch.channels_last)

    def _check_inputs(self, z: torch.Tensor, feats: torch.Tensor) -> None:
        c = self.config
        need = c.z_dims_used if c.hier else c.dim_z
        if z.dim() != 2 or z.shape[1] < need:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected (B, {need}) (extra dims are ignored)")
        if feats.dim() != 2 or feats.shape != (z.shape[0], c.feat_dim):
            raise ValueError(
                f"feats has shape {tuple(feats.shape)}; expected ({z.shape[0]}, {c.feat_dim}) "
                "L2-normalised instance features (InstanceEncoder output)"
            )

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def random(cls, config: ICGANConfig, seed: int) -> "Generator":
        """Random weights drawn from ``seed`` (for tests and the random-init preset)."""
        model = cls(config)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, tensor in sorted(model.state_dict(keep_vars=True).items()):
                if name.endswith("stored_mean") or (name.endswith(".bias") and tensor.dim() == 1):
                    tensor.zero_()
                elif name.endswith("stored_var") or name.endswith("output_layer.0.gain"):
                    tensor.fill_(1.0)
                elif tensor.dim() >= 2:
                    # conditional BN gain/bias maps small, as in trained BigGANs; others ~ unit gain
                    scale = 0.1 if ".bn" in name else 1.0
                    fan_in = math.prod(tensor.shape[1:])
                    tensor.copy_(torch.randn(tensor.shape, generator=gen) * (scale / math.sqrt(fan_in)))
                else:  # attention gamma: non-zero so the attention path is exercised
                    tensor.fill_(0.1)
        return model.eval()

    @classmethod
    def from_official(cls, path: str | os.PathLike, config: ICGANConfig | None = None) -> "Generator":
        """Load a released checkpoint: ``G_ema_best0.pth`` or the experiment folder holding it.

        ``config`` must match the checkpoint; None picks the released ImageNet config (256/128/64)
        whose layout the file has. The released ``state_dict_best0.pth`` is never unpickled (its
        config holds arbitrary objects)."""
        file = official_generator_file(Path(path))
        state = _load_plain_state_dict(file)
        config = config or detect_released_config(state)
        converted = convert_official_state_dict(state, config)
        with torch.device("meta"):  # no throw-away random init of ~90M parameters
            model = cls(config)
        model.load_state_dict(converted, assign=True)
        log.info("loaded IC-GAN generator %s (%d parameters)", file, sum(p.numel() for p in model.parameters()))
        return model.eval()

    def save_torch(self, path: str | os.PathLike) -> None:
        """Write the converted weights and config (loadable with weights_only=True)."""
        torch.save({"format": CONVERTED_FORMAT, "config": self.config.to_dict(), "state_dict": self.state_dict()}, path)

    @classmethod
    def from_torch(cls, path: str | os.PathLike) -> "Generator":
        """Load a file written by :meth:`save_torch`."""
        payload = _load_plain_state_dict(Path(path))
        if payload.get("format") != CONVERTED_FORMAT:
            raise ValueError(
                f"{path}: not a converted IC-GAN file (format {payload.get('format')!r}); "
                "use Generator.from_official for released G_ema_*.pth checkpoints"
            )
        with torch.device("meta"):
            model = cls(ICGANConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"], assign=True)
        return model.eval()


def _load_plain_state_dict(file: Path) -> dict:
    try:
        return load_checkpoint(file, "a plain tensor dict")
    except CheckpointError as err:
        raise CheckpointError(f"{err}; pass the generator weights G_ema_best0.pth, not state_dict_best0.pth") from err


# ---- official checkpoint -> this port's state dict (against the Generator's own shapes) ----------------
def expected_shapes(config: ICGANConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of this port's state dict for ``config`` (built on the meta device)."""
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
