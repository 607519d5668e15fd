"""SwAV ResNet-50 instance encoder of IC-GAN, with the official inference preprocessing as tensor ops."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from genaug.checkpoint import load_checkpoint
from genaug.geometry import centre_square

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# SwAV checkpoint keys (after stripping "module.") that the encoder does not use, ignored by prefix.
SWAV_IGNORED_PREFIXES = ("projection_head.", "prototypes.")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """ResNet feature extractor and its preprocessing; defaults are the SwAV ResNet-50 of IC-GAN."""

    layers: tuple[int, ...] = (3, 4, 6, 3)  # Bottleneck blocks per stage (ResNet-50)
    width_per_group: int = 64  # bottleneck width; 64 is the standard ResNet-50 (output stays 2048-d)
    resize_to: int = 256  # side after the centre crop of the short side (official Resize((256, 256)))
    input_size: int = 224  # network input side: bicubic, align_corners=True, of the normalised image

    @classmethod
    def tiny(cls) -> "EncoderConfig":
        """One block per stage at width 8 and 64 -> 56 px inputs; still 2048-d output. For tests."""
        return cls(layers=(1, 1, 1, 1), width_per_group=8, resize_to=64, input_size=56)


class InstanceEncoder(nn.Module):
    """images (B, 3, H, W) uint8 or float in [0, 1] -> (B, 2048) L2-normalised instance features."""

    feat_dim = 2048  # Bottleneck expansion 4 x 512 planes, independent of width_per_group

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EncoderConfig()
        self.net = ResNet(Bottleneck, list(self.config.layers), width_per_group=self.config.width_per_group)
        self.net.fc = nn.Identity()  # global-pool output; IC-GAN never runs the classifier
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Official IC-GAN inference preprocessing (CenterCropLongEdge, Resize((256, 256)), ToTensor,
        Normalize, bicubic align_corners=True to 224), as float32 tensor ops.

        The resize to ``resize_to`` is skipped when the crop already has that side (the pipeline's
        inputs); otherwise it is bilinear with antialiasing (close to, not bit-equal with, PIL)."""
        # images (B, 3, H, W) uint8 or float in [0, 1] -> (B, 3, input_size, input_size) float32
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images have shape {tuple(images.shape)}; expected (B, 3, H, W) RGB")
        if images.dtype == torch.uint8:
            x = images.float() / 255.0
        elif images.is_floating_point():
            x = images.float()
        else:
            raise ValueError(f"images have dtype {images.dtype}; expected uint8 or float in [0, 1]")
        height, width = x.shape[-2:]
        left, top, right, bottom = centre_square(width, height)  # the build's crop rule
        side = right - left
        x = x[:, :, top:bottom, left:right]  # (B, 3, side, side)
        size = self.config.resize_to
        if side != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        return F.interpolate(x, size=(self.config.input_size,) * 2, mode="bicubic", align_corners=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images (B, 3, H, W) -> (B, 2048) unit norm
        features = self.net(self.preprocess(images))  # (B, 2048) global average pool
        return F.normalize(features.float(), dim=1)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def tiny(cls, seed: int = 0) -> "InstanceEncoder":
        """Tiny random encoder (EncoderConfig.tiny()) with weights drawn from ``seed``."""
        model = cls(EncoderConfig.tiny())
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, tensor in sorted(model.net.state_dict(keep_vars=True).items()):
                if tensor.dim() == 4:
                    tensor.copy_(torch.randn(tensor.shape, generator=gen) * math.sqrt(2.0 / math.prod(tensor.shape[1:])))
                elif name.endswith("running_var"):
                    tensor.fill_(1.0)
        return model.eval()

    @classmethod
    def from_swav(cls, path: str | os.PathLike, config: EncoderConfig | None = None) -> "InstanceEncoder":
        """Load ``swav_800ep_pretrain.pth.tar`` (DataParallel keys ``module.*``), weights_only."""
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: no such file (download https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar)"
            )
        payload = load_checkpoint(file, "the SwAV checkpoint (a plain tensor dict)")
        if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
            payload = payload["state_dict"]
        model = cls(config)
        model.net.load_state_dict(convert_swav_state_dict(payload, model.net.state_dict()))
        log.info("loaded SwAV instance encoder %s", file)
        return model.eval()


def convert_swav_state_dict(
    swav: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """SwAV checkpoint -> torchvision ResNet (fc removed) state dict. Pure.

    Strips ``module.``, drops SWAV_IGNORED_PREFIXES by name, fills absent ``num_batches_tracked``
    counters (unused in eval) with 0; anything else left over or missing raises ValueError."""
    converted, ignored, leftover = {}, [], []
    for key, value in swav.items():
        name = key[len("module.") :] if key.startswith("module.") else key
        if name.startswith(SWAV_IGNORED_PREFIXES):
            ignored.append(name)
        elif name in expected:
            converted[name] = value
        else:
            leftover.append(key)
    for name in expected:
        if name not in converted and name.endswith("num_batches_tracked"):
            converted[name] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(converted))
    wrong = [f"{k}: {tuple(converted[k].shape)} vs {tuple(expected[k].shape)}" for k in converted if converted[k].shape != expected[k].shape]
    if leftover or missing or wrong:
        raise ValueError(
            f"SwAV checkpoint does not map onto the ResNet: unused keys {sorted(leftover)}, "
            f"missing keys {missing}, shape mismatches {wrong}"
        )
    log.debug("ignored %d SwAV head keys (%s)", len(ignored), ", ".join(SWAV_IGNORED_PREFIXES))
    return converted
