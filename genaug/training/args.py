"""Command-line options shared by the example scripts (examples/train_vicreg.py, linear_eval.py,
gencl_sweep.py): defaults are the paper's protocol (ResNet-50, batch 800, 100 epochs, LARS, base lr 0.2)."""

from __future__ import annotations

import argparse

import torch

from genaug.training.evaluate import EvalConfig, check_splits
from genaug.training.pretrain import PretrainConfig
from genaug.training.vicreg import ARCHS, VICRegConfig


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_pretrain_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("pre-training (VICReg on GenCL pairs; defaults: the paper's protocol)")
    group.add_argument("--shards", required=True, help="genaug --out folder, index.json, brace pattern or list")
    group.add_argument("--out", help="folder for backbone.pt, train_log.json and results.md/.json")
    group.add_argument("--arch", default="resnet50", choices=ARCHS)
    group.add_argument("--mlp", default="8192-8192-8192", help="expander widths")
    group.add_argument("--epochs", type=int, default=100)
    group.add_argument("--steps", type=int, default=None, help="stop after N steps (the schedule spans N)")
    group.add_argument("--batch-size", type=int, default=800, help="global batch over all ranks")
    group.add_argument("--base-lr", type=float, default=0.2, help="peak lr = base-lr * batch-size / 256")
    group.add_argument("--warmup-epochs", type=float, default=10.0)
    group.add_argument("--weight-decay", type=float, default=1e-6)
    group.add_argument("--gamma", type=float, default=0.5, help="share of generative pairs")
    group.add_argument("--tg", default="gencl", help="T^G set: gencl, none, crop, flip, ... or a+b")
    group.add_argument("--image-size", type=int, default=224)
    group.add_argument("--workers", type=int, default=8, help="DataLoader workers per rank")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default=default_device())
    group.add_argument("--log-every", type=int, default=10)


def add_eval_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    group = parser.add_argument_group("evaluation (frozen backbone: linear probe and k-NN)")
    group.add_argument("--eval-train", required=required, help="labelled split: genaug shards or class folders")
    group.add_argument("--eval-val", required=required, help="labelled split the accuracies are measured on")
    group.add_argument("--eval-batch-size", type=int, default=256)
    group.add_argument("--probe-epochs", type=int, default=100)
    group.add_argument("--probe-lr", type=float, default=0.3)
    group.add_argument("--knn-k", type=int, default=20)


def pretrain_config(args: argparse.Namespace) -> PretrainConfig:
    """Validated config (raises ValueError naming the bad value)."""
    model = VICRegConfig(arch=args.arch, mlp=args.mlp)
    return PretrainConfig(shards=args.shards, out=args.out, model=model, epochs=args.epochs, max_steps=args.steps,
                          batch_size=args.batch_size, base_lr=args.base_lr, warmup_epochs=args.warmup_epochs,
                          weight_decay=args.weight_decay, gamma=args.gamma, tg=args.tg, image_size=args.image_size,
                          workers=args.workers, seed=args.seed, device=args.device, log_every=args.log_every)


def eval_config(args: argparse.Namespace) -> EvalConfig | None:
    """None when neither split is given; both are needed otherwise."""
    if args.eval_train is None and args.eval_val is None:
        return None
    if args.eval_train is None or args.eval_val is None:
        raise ValueError("give both --eval-train and --eval-val (labelled splits), or neither")
    cfg = EvalConfig(train=args.eval_train, val=args.eval_val, image_size=args.image_size,
                     batch_size=args.eval_batch_size, workers=args.workers, probe_epochs=args.probe_epochs,
                     probe_lr=args.probe_lr, knn_k=args.knn_k, seed=args.seed, device=args.device)
    try:
        check_splits(cfg)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from err
    return cfg
