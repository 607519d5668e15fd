"""The paper's gamma / T^G ablations (Tables 1-3) in one command: one VICReg pre-training (+ linear probe and
k-NN when labelled splits are given) per (gamma, tg) pair, each in <out>/<run>/, and one table
<out>/results.md + results.json.

    # Table 2/3 (sampling rate), and Table 1 (pairwise ablation, gamma 1):
    python examples/gencl_sweep.py --shards icgan-shards/ --out runs/table2 --gammas 0,0.25,0.5,0.75,1 \
        --eval-train imagenet/train --eval-val imagenet/val
    python examples/gencl_sweep.py --shards icgan-shards/ --out runs/table1 --gammas 1 \
        --tgs none,crop,flip,solarize,color_jitter,blur,grayscale

All pre-training options of examples/train_vicreg.py apply to every run (defaults: the paper's protocol).
"""

from __future__ import annotations

import argparse
import logging

from genaug.training.args import add_eval_args, add_pretrain_args, eval_config, pretrain_config
from genaug.training.protocol import run_sweep, sweep_settings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_pretrain_args(parser)
    add_eval_args(parser)
    parser.add_argument("--gammas", default="0,0.25,0.5,0.75,1", help="comma-separated sampling rates")
    parser.add_argument("--tgs", default="gencl", help="comma-separated T^G sets (gencl, none, crop, crop+flip, ...)")
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("--out is required: each run gets a subfolder, the sweep its table")
    try:
        args.gamma_values = [float(g) for g in args.gammas.split(",")]
        args.tg_values = [t.strip() for t in args.tgs.split(",")]
        sweep_settings(args.gamma_values, args.tg_values)
        args.config, args.eval_config = pretrain_config(args), eval_config(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    return run_sweep(args.config, args.eval_config, args.gamma_values, args.tg_values)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
