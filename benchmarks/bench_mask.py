"""Throughput of the `mask` editor (MaskGIT): images/s and ms/image at batch 1 and over a batch-size
sweep, with the ratio to batch 1, all measured in this run on one device.

    python benchmarks/bench_mask.py                       # maskgit-tiny on CPU (1 thread)
    python benchmarks/bench_mask.py --preset maskgit-imagenet256 --device cuda --batch-sizes 1,8,32,64
"""

from __future__ import annotations

from _methods import parser, run


def main(argv=None) -> None:
    ap = parser(__doc__, "maskgit-tiny", "1,2,4,8,16", 16)
    ap.add_argument("--num-iter", type=int, default=12)
    args = ap.parse_args(argv)
    run("mask", args, {"num_iter": args.num_iter}, f"mask (MaskGIT, ring mask, {args.num_iter} steps)")


if __name__ == "__main__":
    main()
