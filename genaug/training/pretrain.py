"""VICReg pre-training on GenCL pairs from genaug shards: the paper's protocol (§5, VICReg recipe).

One process or torchrun/DDP: each rank reads its own shards (the loader's rank split), calls
``set_epoch`` every epoch, and all ranks run the same number of steps (resampled shards under DDP).
The optimiser is LARS with the official schedule (see :mod:`genaug.training.optim`). Writes
``<out>/backbone.pt`` (backbone state dict + config, loadable with ``weights_only=True``) and
``<out>/train_log.json`` (loss per step).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from genaug.loader import GenCLWebDataset, resolve_shards
from genaug.training import distributed
from genaug.training.optim import LARS, peak_lr, set_lr, warmup_cosine
from genaug.training.vicreg import VICReg, VICRegConfig

log = logging.getLogger(__name__)

CHECKPOINT = "backbone.pt"


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    shards: str  # genaug --out folder, index.json, brace pattern or list
    out: str | None = None  # where backbone.pt and train_log.json go (None: nothing written)
    model: VICRegConfig = VICRegConfig()
    epochs: int = 100  # the paper: 100 epochs on ImageNet
    max_steps: int | None = None  # stop after this many steps; the schedule then spans max_steps
    batch_size: int = 800  # global batch over all ranks (the paper: 800)
    base_lr: float = 0.2  # peak lr = base_lr * batch_size / 256
    warmup_epochs: float = 10.0  # of `epochs` (the schedule scales with max_steps when it is given)
    weight_decay: float = 1e-6
    gamma: float = 0.5  # share of generative pairs
    tg: str = "gencl"  # T^G set
    image_size: int = 224
    workers: int = 8  # DataLoader workers per rank
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10

    def __post_init__(self):
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError(f"epochs={self.epochs}, max_steps={self.max_steps}: both must be >= 1")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size}: need >= 2 (BatchNorm, covariance)")
        if self.base_lr < 0 or self.weight_decay < 0 or not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"base_lr={self.base_lr}, weight_decay={self.weight_decay}, warmup_epochs="
                             f"{self.warmup_epochs}: need base_lr, weight_decay >= 0 and 0 <= warmup <= epochs")
        if self.workers < 0 or self.log_every < 1:
            raise ValueError(f"workers={self.workers}, log_every={self.log_every}: need >= 0 and >= 1")


@dataclasses.dataclass
class PretrainResult:
    losses: list[float]  # per step (this rank's loss)
    probe_before: float  # loss on a fixed batch before training (no gradient step)
    probe_after: float  # the same batch after training
    steps_per_epoch: int
    seconds: float
    pair_counts: dict
    checkpoint: str | None


def make_dataset(cfg: PretrainConfig, dist: distributed.Dist) -> tuple[GenCLWebDataset, int]:
    """(this rank's dataset, steps per epoch); refuses a batch larger than a rank's epoch before any work."""
    per_rank = cfg.batch_size // dist.world_size
    if cfg.batch_size % dist.world_size or per_rank < 2:
        raise ValueError(f"batch_size={cfg.batch_size} must split evenly over {dist.world_size} rank(s) "
                         "with >= 2 samples each")
    index = resolve_shards(cfg.shards)
    if index.sizes is None:
        raise ValueError(f"{cfg.shards!r}: remote shards without an index.json have no known epoch length; point "
                         "at the build's index.json")
    total = sum(index.sizes)  # from index.json, or counted from local tar headers
    options = dict(gamma=cfg.gamma, tg=cfg.tg, seed=cfg.seed, image_size=cfg.image_size,
                   rank=dist.rank, world_size=dist.world_size, samples_per_epoch=total // dist.world_size,
                   batch_size=per_rank)  # whole batches per DataLoader worker: len() is exact
    if dist.world_size > 1:  # equal step counts on every rank, whatever the shard count
        options.update(resampled=True)
    dataset = GenCLWebDataset(cfg.shards, **options)
    samples = len(dataset)
    steps = samples // per_rank
    if steps == 0:
        raise ValueError(f"batch_size={cfg.batch_size} ({per_rank} per rank) exceeds the {samples} samples a "
                         f"rank gets per epoch: use a batch size <= {samples * dist.world_size}")
    return dataset, steps


def batches(dataset: GenCLWebDataset, cfg: PretrainConfig, per_rank: int, steps_per_epoch: int,
            device: torch.device) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """(epoch, (view1, view2)) for ever: set_epoch, then at most steps_per_epoch full batches."""
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=per_rank, num_workers=cfg.workers, drop_last=True,
                            pin_memory=device.type == "cuda", persistent_workers=False)
        for step, ((view1, view2), _, _) in enumerate(loader):
            if step == steps_per_epoch:
                break
            yield epoch, (view1.to(device, non_blocking=True), view2.to(device, non_blocking=True))
        epoch += 1


def probe_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Loss on a fixed batch without a gradient step (BatchNorm uses the batch statistics)."""
    with torch.no_grad():
        return float(model(*batch))


def build_model(cfg: PretrainConfig, dist: distributed.Dist) -> tuple[torch.nn.Module, VICReg]:
    """(the model to call, possibly DDP-wrapped; the bare VICReg module)."""
    torch.manual_seed(cfg.seed)
    model = VICReg(cfg.model).to(dist.device)
    if dist.world_size == 1:
        return model, model
    if dist.device.type == "cuda":  # the official script syncs BatchNorm; PyTorch's SyncBatchNorm is CUDA-only
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids), model


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Train VICReg on GenCL pairs; returns the loss curve and the fixed-batch losses."""
    dist = distributed.setup(cfg.device)
    dataset, steps_per_epoch = make_dataset(cfg, dist)
    per_rank = cfg.batch_size // dist.world_size
    model, bare = build_model(cfg, dist)
    optimizer = LARS(model.parameters(), lr=0.0, weight_decay=cfg.weight_decay)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    warmup = round(total * cfg.warmup_epochs / cfg.epochs)
    peak = peak_lr(cfg.base_lr, cfg.batch_size)
    stream = batches(dataset, cfg, per_rank, steps_per_epoch, dist.device)
    _, probe = next(stream)
    probe_before = probe_loss(model, probe)
    losses: list[float] = []
    start = time.perf_counter()
    for step, (epoch, (view1, view2)) in enumerate(itertools.islice(stream, total)):
        lr = warmup_cosine(step, total, warmup, peak)
        set_lr(optimizer, lr)
        loss = model(view1, view2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if dist.is_main and ((step + 1) % cfg.log_every == 0 or step + 1 == total):
            rate = (step + 1) * cfg.batch_size / (time.perf_counter() - start)
            log.info("epoch %d step %d/%d lr %.4g loss %.4f (%.1f pairs/s)", epoch, step + 1, total, lr,
                     losses[-1], rate)
    seconds = time.perf_counter() - start
    result = PretrainResult(losses, probe_before, probe_loss(model, probe), steps_per_epoch, seconds,
                            dataset.stats.as_dict(), None)
    if cfg.out is not None and dist.is_main:
        result.checkpoint = str(save(bare, cfg, result))
    distributed.barrier()
    log.info("fixed-batch loss %.4f -> %.4f; pair counts %s", result.probe_before, result.probe_after,
             result.pair_counts)
    return result


def save(model: VICReg, cfg: PretrainConfig, result: PretrainResult) -> Path:
    """Write backbone.pt (temp name + rename) and train_log.json into cfg.out."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"backbone": {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()},
               "model": dataclasses.asdict(cfg.model), "embedding": model.embedding}
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(out / CHECKPOINT)
    log_data = {"config": {**dataclasses.asdict(cfg), "model": dataclasses.asdict(cfg.model)},
                **{k: v for k, v in dataclasses.asdict(result).items() if k != "checkpoint"}}
    (out / "train_log.json").write_text(json.dumps(log_data, indent=1) + "\n")
    return out / CHECKPOINT
