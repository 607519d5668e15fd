"""VICReg (Bardes et al. 2022): backbone, expander (projector) and loss, as in facebookresearch/vicreg.

The model follows the official ``main_vicreg.py``: a torchvision ResNet with ``zero_init_residual`` and
its ``fc`` removed, an expander of Linear-BatchNorm-ReLU blocks whose last Linear has no bias
(``--mlp 8192-8192-8192``), and the loss ``25 * invariance + 25 * variance + 1 * covariance``. Under DDP
the variance and covariance terms see the embeddings of every rank (an all-gather that passes
gradients), the invariance term the local batch, as in the official script.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

ARCHS = ("resnet18", "resnet34", "resnet50", "small")


@dataclasses.dataclass(frozen=True)
class VICRegConfig:
    arch: str = "resnet50"  # backbone: torchvision ResNet name, or "small" (4 conv blocks, for CPU smoke runs)
    mlp: str = "8192-8192-8192"  # expander widths after the backbone features (official default)
    sim_coeff: float = 25.0  # invariance (MSE) weight
    std_coeff: float = 25.0  # variance (hinge on the std) weight
    cov_coeff: float = 1.0  # covariance (off-diagonal) weight

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r}: choose one of {ARCHS}")
        try:
            widths = [int(w) for w in self.mlp.split("-")]
        except ValueError as err:
            raise ValueError(f"mlp={self.mlp!r}: widths joined by '-', e.g. 8192-8192-8192") from err
        if not widths or min(widths) < 1:
            raise ValueError(f"mlp={self.mlp!r}: every width must be >= 1")


def small_backbone() -> tuple[nn.Module, int]:
    """A tiny conv net (4 stride-2 conv-BN-ReLU blocks) for CPU smoke runs; 128-d features."""
    layers, width_in = [], 3
    for width in (32, 64, 96, 128):
        layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
        width_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), width_in


def build_backbone(arch: str) -> tuple[nn.Module, int]:
    """(backbone without classifier, feature dimension)."""
    if arch == "small":
        return small_backbone()
    net = getattr(torchvision.models, arch)(weights=None, zero_init_residual=True)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def expander(dim: int, mlp: str) -> nn.Sequential:
    widths = [dim] + [int(w) for w in mlp.split("-")]
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(w_in, w_out), nn.BatchNorm1d(w_out), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(widths[-2], widths[-1], bias=False))
    return nn.Sequential(*layers)


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def gather_all(z: torch.Tensor) -> torch.Tensor:
    """Concatenate z over DDP ranks with gradients flowing back to every rank (identity without DDP)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return z
    if torch.distributed.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, cfg: VICRegConfig) -> torch.Tensor:
    """z1, z2: (B, D) embeddings of the two views (this rank's batch) -> scalar VICReg loss."""
    invariance = F.mse_loss(z1, z2)
    z1, z2 = gather_all(z1), gather_all(z2)
    batch, dim = z1.shape
    z1, z2 = z1 - z1.mean(dim=0), z2 - z2.mean(dim=0)
    std1, std2 = torch.sqrt(z1.var(dim=0) + 1e-4), torch.sqrt(z2.var(dim=0) + 1e-4)
    variance = F.relu(1 - std1).mean() / 2 + F.relu(1 - std2).mean() / 2
    cov1, cov2 = (z1.T @ z1) / (batch - 1), (z2.T @ z2) / (batch - 1)  # (D, D)
    covariance = off_diagonal(cov1).pow(2).sum() / dim + off_diagonal(cov2).pow(2).sum() / dim
    return cfg.sim_coeff * invariance + cfg.std_coeff * variance + cfg.cov_coeff * covariance


class VICReg(nn.Module):
    """Backbone + expander; ``forward(x1, x2)`` returns the loss, ``backbone`` is what gets evaluated."""

    def __init__(self, cfg: VICRegConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone, self.embedding = build_backbone(cfg.arch)
        self.projector = expander(self.embedding, cfg.mlp)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """x1, x2: (B, 3, H, W) views -> scalar loss."""
        z1 = self.projector(self.backbone(x1))  # (B, D)
        z2 = self.projector(self.backbone(x2))  # (B, D)
        return vicreg_loss(z1, z2, self.cfg)
