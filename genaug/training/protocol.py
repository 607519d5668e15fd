"""The paper's protocol end to end: VICReg pre-training on GenCL pairs, then frozen linear probe and
k-NN on a labelled split, then one results row (and table). Also the gamma / T^G sweep of Tables 1-3.

Under torchrun every rank pre-trains; evaluation then runs on rank 0 alone (no collectives), the
other ranks return after pre-training.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Sequence

from genaug.loader.transforms import parse_tg
from genaug.training import distributed
from genaug.training.evaluate import EvalConfig, check_splits, evaluate, load_backbone
from genaug.training.pretrain import PretrainConfig, pretrain
from genaug.training.results import write_table

log = logging.getLogger(__name__)


def run_name(cfg: PretrainConfig) -> str:
    return f"gamma{cfg.gamma:g}-tg_{cfg.tg}"


def run_protocol(cfg: PretrainConfig, eval_cfg: EvalConfig | None) -> dict | None:
    """Pre-train, evaluate (when eval_cfg is given), and write the one-row table into cfg.out.
    Returns the row on rank 0, None on the other ranks."""
    if eval_cfg is not None:
        check_splits(eval_cfg)
        if cfg.out is None:
            raise ValueError("evaluation needs the pre-trained backbone: give an output folder (out=...)")
    result = pretrain(cfg)
    if distributed.setup(cfg.device).rank != 0:
        distributed.teardown()
        return None
    row = {"run": run_name(cfg), "gamma": cfg.gamma, "tg": cfg.tg, "arch": cfg.model.arch, "epochs": cfg.epochs,
           "steps": len(result.losses), "loss_first": result.losses[0] if result.losses else None,
           "loss_last": result.losses[-1] if result.losses else None, "probe_before": result.probe_before,
           "probe_after": result.probe_after, "seconds": result.seconds, "pair_counts": result.pair_counts,
           "losses": result.losses}
    if eval_cfg is not None:
        row.update(evaluate(load_backbone(result.checkpoint), eval_cfg))
    if cfg.out is not None:
        write_table(cfg.out, [row], f"GenCL VICReg: {row['run']}")
    distributed.teardown()
    return row


def sweep_settings(gammas: Sequence[float], tgs: Sequence[str]) -> list[tuple[float, str]]:
    """Every (gamma, tg) pair, validated before any training (a bad value names itself)."""
    if not gammas or not tgs:
        raise ValueError(f"gammas={list(gammas)}, tgs={list(tgs)}: give at least one of each")
    for gamma in gammas:
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma={gamma}: the generative sampling rate must be in [0, 1]")
    for tg in tgs:
        parse_tg(tg)
    return [(float(g), str(t)) for g, t in itertools.product(gammas, tgs)]


def run_sweep(base: PretrainConfig, eval_cfg: EvalConfig | None, gammas: Sequence[float],
              tgs: Sequence[str]) -> list[dict]:
    """One pre-training (+ evaluation) per (gamma, tg) into <base.out>/<run>/, and one table in base.out."""
    if base.out is None:
        raise ValueError("a sweep needs an output folder (out=...) for its runs and its table")
    settings = sweep_settings(gammas, tgs)
    if eval_cfg is not None:
        check_splits(eval_cfg)
    rows = []
    for gamma, tg in settings:
        cfg = dataclasses.replace(base, gamma=gamma, tg=tg)
        cfg = dataclasses.replace(cfg, out=str(Path(base.out) / run_name(cfg)))
        log.info("sweep run %d/%d: %s", len(rows) + 1, len(settings), run_name(cfg))
        row = run_protocol(cfg, eval_cfg)
        if row is not None:
            rows.append(row)
    if rows:
        write_table(base.out, rows, "GenCL ablation sweep (paper Tables 1-3)",
                    meta={"gammas": [g for g, _ in settings], "tgs": [t for _, t in settings]})
    return rows
