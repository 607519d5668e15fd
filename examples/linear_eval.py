"""Frozen linear probe and k-NN of a backbone saved by examples/train_vicreg.py, on labelled splits
(genaug shards with labels, or ImageNet-style class folders); writes <out>/results.md + results.json.

    python examples/linear_eval.py --checkpoint runs/gencl/backbone.pt --eval-train imagenet/train \
        --eval-val imagenet/val --out runs/gencl-eval
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from genaug.training.args import add_eval_args, default_device
from genaug.training.evaluate import EvalConfig, evaluate, load_backbone
from genaug.training.results import write_table


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="backbone.pt written by train_vicreg.py")
    parser.add_argument("--out", required=True, help="folder for results.md and results.json")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=default_device())
    add_eval_args(parser, required=True)
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint!r} does not exist; train with examples/train_vicreg.py --out")
    try:
        args.eval_config = EvalConfig(train=args.eval_train, val=args.eval_val, image_size=args.image_size,
                                      batch_size=args.eval_batch_size, workers=args.workers,
                                      probe_epochs=args.probe_epochs, probe_lr=args.probe_lr, knn_k=args.knn_k,
                                      seed=args.seed, device=args.device)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    row = {"run": Path(args.checkpoint).parent.name, **evaluate(load_backbone(args.checkpoint), args.eval_config)}
    write_table(args.out, [row], f"Linear probe and k-NN: {args.checkpoint}")
    return row


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
