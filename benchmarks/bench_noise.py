"""Throughput of the `noise` editor (IC-GAN + SwAV features): images/s and ms/image at batch 1 and over
a batch-size sweep, with the ratio to batch 1, all measured in this run on one device.

    python benchmarks/bench_noise.py                       # icgan-tiny on CPU (1 thread)
    python benchmarks/bench_noise.py --preset icgan-imagenet256 --device cuda --batch-sizes 1,16,64,128
"""

from __future__ import annotations

from _methods import parser, run


def main(argv=None) -> None:
    ap = parser(__doc__, "icgan-tiny", "1,2,4,8,16,32", 32)
    ap.add_argument("--candidates", type=int, default=1, help="--candidates of the noise method")
    args = ap.parse_args(argv)
    run("noise", args, {"candidates": args.candidates}, f"noise (IC-GAN, K={args.candidates})")


if __name__ == "__main__":
    main()
