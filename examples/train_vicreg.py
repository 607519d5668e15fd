"""VICReg on GenCL pairs from genaug shards: the paper's protocol (pre-training, then optionally a frozen
linear probe and k-NN on a labelled split, written to <out>/results.md and results.json).

Defaults are the paper's: ResNet-50, expander 8192-8192-8192, global batch 800, 100 epochs, LARS with
base lr 0.2 (x batch/256), 10 warm-up epochs then cosine. One process, or torchrun for DDP:

    torchrun --nproc_per_node 8 examples/train_vicreg.py --shards imagenet-gencl/ --out runs/gencl \
        --eval-train imagenet/train --eval-val imagenet/val

CPU smoke run on the quickstart's 8 samples (see docs/training.md for the cost):

    python examples/train_vicreg.py --shards shards/ --steps 20 --batch-size 8 --image-size 32 \
        --arch small --mlp 64-64 --base-lr 20 --workers 0

The logic lives in genaug.training; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import logging

from genaug.training.args import add_eval_args, add_pretrain_args, eval_config, pretrain_config
from genaug.training.protocol import run_protocol


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_pretrain_args(parser)
    add_eval_args(parser)
    args = parser.parse_args(argv)
    try:
        args.config, args.eval_config = pretrain_config(args), eval_config(args)
    except ValueError as err:
        parser.error(str(err))
    if args.eval_config is not None and args.out is None:
        parser.error("--eval-train/--eval-val need --out (the backbone is saved there, then evaluated)")
    return args


def main(argv=None) -> dict:
    """Run; returns the results row (losses per step under "losses", fixed-batch losses, accuracies)."""
    args = parse_args(argv)
    row = run_protocol(args.config, args.eval_config)
    return {} if row is None else row


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
