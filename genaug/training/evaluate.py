"""Frozen-backbone evaluation on a labelled split: a linear probe and a weighted k-NN classifier.

Splits are genaug shards with labels (an index.json or a --out folder: the ``real.jpg`` of each sample
and its ``cls``) or ImageNet-style class folders (``<split>/<class>/*.JPEG``). Images are resized
(short side image_size * 256/224) and centre-cropped, as the official VICReg ``evaluate.py`` does for
its validation set.

Deviations from the official linear evaluation, for cost: the probe trains on features computed once
from centre crops (no RandomResizedCrop/flip per epoch). The head, its init (normal std 0.01, zero
bias), SGD momentum 0.9, weight decay 1e-6, lr 0.3 and the cosine schedule follow ``evaluate.py``.
k-NN: cosine similarity of L2-normalised features, the k = 20 nearest training samples vote with
weight exp(similarity / 0.07) (Wu et al. 2018, as in solo-learn's and DINO's k-NN monitors).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

from genaug.checkpoint import CheckpointError, load_checkpoint
from genaug.loader import GenCLMapDataset
from genaug.loader.pairs import decode_image, sample_label
from genaug.loader.transforms import IMAGENET_MEAN, IMAGENET_STD
from genaug.training.vicreg import build_backbone

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    train: str  # labelled split the probe trains on and k-NN votes with
    val: str  # labelled split the accuracies are measured on
    image_size: int = 224
    batch_size: int = 256
    workers: int = 8
    probe_epochs: int = 100
    probe_lr: float = 0.3
    weight_decay: float = 1e-6
    knn_k: int = 20
    knn_temperature: float = 0.07
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.probe_epochs < 1 or self.batch_size < 1 or self.knn_k < 1 or self.image_size < 8:
            raise ValueError(f"probe_epochs={self.probe_epochs}, batch_size={self.batch_size}, knn_k={self.knn_k}, "
                             f"image_size={self.image_size}: need >= 1, >= 1, >= 1, >= 8")
        if self.probe_lr <= 0 or self.knn_temperature <= 0:
            raise ValueError(f"probe_lr={self.probe_lr}, knn_temperature={self.knn_temperature}: need > 0")


def eval_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize(round(image_size * 256 / 224), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(image_size), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ShardImages(Dataset):
    """(image tensor, label) of the real images in genaug shards (index.json order)."""

    def __init__(self, source: str, transform):
        self.samples = GenCLMapDataset(source)  # raw access only: its pair rule is not used
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples.raw_sample(index)
        label = sample_label(sample)
        if label < 0:
            raise ValueError(f"sample {sample['__key__']!r} in {sample['__url__']!r} has no label: the evaluation "
                             "splits must be labelled (build them from class folders)")
        return self.transform(decode_image(sample["real.jpg"])), label


def split_kind(source: str) -> str:
    """'shards' (an index.json or a folder holding one) or 'folders' (class folders); raises when neither."""
    path = Path(source)
    if (path.suffix == ".json" and path.is_file()) or (path / "index.json").is_file():
        return "shards"
    if path.is_dir():
        return "folders"
    raise FileNotFoundError(f"evaluation split {source!r}: not a genaug --out folder, index.json or class folder "
                            "tree (<split>/<class>/*.jpg)")


def check_splits(cfg: EvalConfig) -> None:
    """Fail before any training when an evaluation split is missing."""
    for source in (cfg.train, cfg.val):
        split_kind(source)


def labelled_split(source: str, image_size: int) -> Dataset:
    """genaug shards (index.json / --out folder) or class folders -> (image, label) dataset."""
    if split_kind(source) == "shards":
        return ShardImages(source, eval_transform(image_size))
    return datasets.ImageFolder(os.fspath(source), eval_transform(image_size))


@torch.no_grad()
def extract(backbone: torch.nn.Module, dataset: Dataset, cfg: EvalConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D) float32 on CPU, labels (N,) int64)."""
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers, shuffle=False)
    backbone.eval()
    feats, labels = [], []
    for images, target in loader:
        feats.append(backbone(images.to(cfg.device)).float().cpu())
        labels.append(torch.as_tensor(target))
    return torch.cat(feats), torch.cat(labels).long()


def knn_accuracy(train_x, train_y, val_x, val_y, k: int, temperature: float, n_classes: int) -> float:
    """Top-1 of a weighted k-NN vote on cosine similarity (chunks of 1024 queries)."""
    train_x, val_x = F.normalize(train_x, dim=1), F.normalize(val_x, dim=1)
    k = min(k, len(train_x))
    correct = 0
    for start in range(0, len(val_x), 1024):
        sim, idx = (val_x[start:start + 1024] @ train_x.T).topk(k, dim=1)  # (q, k)
        votes = torch.zeros(len(sim), n_classes).scatter_add_(1, train_y[idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == val_y[start:start + 1024]).sum())
    return correct / len(val_x)


def linear_probe(train_x, train_y, val_x, val_y, n_classes: int, cfg: EvalConfig) -> float:
    """Top-1 of a linear head trained on frozen features (SGD, cosine over probe_epochs)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    head = torch.nn.Linear(train_x.shape[1], n_classes)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01, generator=gen)
        head.bias.zero_()
    optimizer = torch.optim.SGD(head.parameters(), lr=cfg.probe_lr, momentum=0.9, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.probe_epochs)
    for _ in range(cfg.probe_epochs):
        order = torch.randperm(len(train_x), generator=gen)
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start:start + cfg.batch_size]
            loss = F.cross_entropy(head(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
    with torch.no_grad():
        return float((head(val_x).argmax(1) == val_y).float().mean())


def load_backbone(checkpoint: str | os.PathLike) -> torch.nn.Module:
    """The backbone saved by :func:`genaug.training.pretrain.save` (weights_only, strict keys)."""
    payload = load_checkpoint(checkpoint, "a backbone saved by genaug.training (examples/train_vicreg.py --out)")
    if "backbone" not in payload or "arch" not in payload.get("model", {}):
        raise CheckpointError(f"{checkpoint}: not a genaug.training backbone (no 'backbone' weights or model arch)")
    backbone, _ = build_backbone(payload["model"]["arch"])
    backbone.load_state_dict(payload["backbone"], strict=True)
    return backbone


def evaluate(backbone: torch.nn.Module, cfg: EvalConfig) -> dict:
    """{"linear_top1", "knn_top1", "n_train", "n_val", "n_classes"} (accuracies in [0, 1])."""
    backbone = backbone.to(cfg.device)
    train_x, train_y = extract(backbone, labelled_split(cfg.train, cfg.image_size), cfg)
    val_x, val_y = extract(backbone, labelled_split(cfg.val, cfg.image_size), cfg)
    n_classes = int(max(train_y.max(), val_y.max())) + 1
    result = {"linear_top1": linear_probe(train_x, train_y, val_x, val_y, n_classes, cfg),
              "knn_top1": knn_accuracy(train_x, train_y, val_x, val_y, cfg.knn_k, cfg.knn_temperature, n_classes),
              "n_train": len(train_y), "n_val": len(val_y), "n_classes": n_classes}
    log.info("linear top-1 %.4f, %d-NN top-1 %.4f (%d train / %d val images, %d classes)", result["linear_top1"],
             cfg.knn_k, result["knn_top1"], result["n_train"], result["n_val"], n_classes)
    return result
