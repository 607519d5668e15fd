"""Minimal VICReg training on GenCL pairs from genaug shards (CPU or GPU).

    python examples/train_vicreg.py --shards shards/ --steps 100 --batch-size 64
    python examples/train_vicreg.py --shards shards/ --steps 20 --image-size 32 --arch small --mlp 256-256

ResNet backbone + VICReg projector (Linear-BN-ReLU blocks, last Linear without bias) + the VICReg loss
with the official coefficients (invariance 25, variance 25, covariance 1). Deviation from the official
script, for brevity: AdamW instead of LARS, no warm-up/cosine schedule, no online linear probe.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader

from genaug.loader import GenCLWebDataset

log = logging.getLogger("train_vicreg")


@dataclasses.dataclass
class VICRegConfig:
    arch: str = "resnet18"  # backbone: "resnet18" | "resnet50" | "small" (4 conv blocks, for smoke tests)
    mlp: str = "8192-8192-8192"  # projector widths after the backbone features, as in the official script
    sim_coeff: float = 25.0  # invariance (MSE) weight
    std_coeff: float = 25.0  # variance (hinge on the std) weight
    cov_coeff: float = 1.0  # covariance (off-diagonal) weight


def small_backbone() -> tuple[nn.Module, int]:
    """A tiny ResNet-like conv net for CPU smoke runs; 128-d features."""
    layers, width_in = [], 3
    for width in (32, 64, 96, 128):
        layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
        width_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), width_in


def build_backbone(arch: str) -> tuple[nn.Module, int]:
    if arch == "small":
        return small_backbone()
    net = getattr(torchvision.models, arch)(weights=None)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def projector(dim: int, mlp: str) -> nn.Sequential:
    widths = [dim] + [int(w) for w in mlp.split("-")]
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(w_in, w_out), nn.BatchNorm1d(w_out), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(widths[-2], widths[-1], bias=False))
    return nn.Sequential(*layers)


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, cfg: VICRegConfig) -> torch.Tensor:
    """z1, z2: (B, D) embeddings of the two views -> scalar VICReg loss."""
    batch, dim = z1.shape
    invariance = F.mse_loss(z1, z2)
    z1, z2 = z1 - z1.mean(dim=0), z2 - z2.mean(dim=0)
    std1, std2 = torch.sqrt(z1.var(dim=0) + 1e-4), torch.sqrt(z2.var(dim=0) + 1e-4)
    variance = F.relu(1 - std1).mean() / 2 + F.relu(1 - std2).mean() / 2
    cov1, cov2 = (z1.T @ z1) / (batch - 1), (z2.T @ z2) / (batch - 1)  # (D, D)
    covariance = off_diagonal(cov1).pow(2).sum() / dim + off_diagonal(cov2).pow(2).sum() / dim
    return cfg.sim_coeff * invariance + cfg.std_coeff * variance + cfg.cov_coeff * covariance


class VICReg(nn.Module):
    def __init__(self, cfg: VICRegConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone, dim = build_backbone(cfg.arch)
        self.projector = projector(dim, cfg.mlp)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """x1, x2: (B, 3, H, W) views -> scalar loss."""
        z1 = self.projector(self.backbone(x1))  # (B, D)
        z2 = self.projector(self.backbone(x2))  # (B, D)
        return vicreg_loss(z1, z2, self.cfg)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", required=True, help="genaug --out folder, index.json or brace pattern")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--gamma", type=float, default=0.5, help="share of generative pairs")
    parser.add_argument("--tg", default="gencl", help="T^G set: gencl, none, crop, flip, ... or a+b")
    parser.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet50", "small"])
    parser.add_argument("--mlp", default="8192-8192-8192")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-6)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2:
        parser.error(f"--steps {args.steps} must be >= 1 and --batch-size {args.batch_size} >= 2 (BatchNorm, covariance)")
    return args


def batches(dataset: GenCLWebDataset, args: argparse.Namespace):
    """Endless (view1, view2) batches, one epoch after another with fresh pair draws."""
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, drop_last=True,
                            pin_memory=args.device.startswith("cuda"))
        n_batches = 0
        for (view1, view2), _, _ in loader:
            n_batches += 1
            yield view1, view2
        if n_batches == 0:
            raise ValueError(f"no full batch of {args.batch_size} per epoch; use a smaller --batch-size")
        epoch += 1


def probe_loss(model: VICReg, batch: tuple[torch.Tensor, torch.Tensor], device: str) -> float:
    """Loss on a fixed batch without a gradient step (BatchNorm uses the batch statistics)."""
    with torch.no_grad():
        return model(batch[0].to(device), batch[1].to(device)).item()


def main(argv=None) -> dict:
    """Train; returns {"losses": loss per step, "probe_before", "probe_after"} (fixed-batch losses)."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    dataset = GenCLWebDataset(args.shards, gamma=args.gamma, tg=args.tg, seed=args.seed,
                              image_size=args.image_size, batch_size=args.batch_size)  # whole batches per worker
    model = VICReg(VICRegConfig(arch=args.arch, mlp=args.mlp)).to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    stream = batches(dataset, args)
    probe = next(stream)
    result = {"losses": [], "probe_before": probe_loss(model, probe, args.device)}
    start = time.perf_counter()
    for step, (view1, view2) in enumerate(stream, start=1):
        loss = model(view1.to(args.device, non_blocking=True), view2.to(args.device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result["losses"].append(loss.item())
        if step % args.log_every == 0 or step == args.steps:
            rate = step * args.batch_size / (time.perf_counter() - start)
            log.info("step %d/%d loss %.4f (%.1f pairs/s)", step, args.steps, loss.item(), rate)
        if step == args.steps:
            break
    result["probe_after"] = probe_loss(model, probe, args.device)
    log.info("fixed-batch loss %.4f -> %.4f; pair counts %s", result["probe_before"], result["probe_after"],
             dataset.stats.as_dict())
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
