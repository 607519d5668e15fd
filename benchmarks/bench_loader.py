"""Loader throughput: genaug.loader vs a plain webdataset pipeline doing the same decode + transforms.

    python -m benchmarks.bench_loader                       # synthetic ImageNet-sized shards in a temp dir
    python -m benchmarks.bench_loader --shards shards/ --workers 0,2,4,8

Both pipelines read the same shards, shuffle with the same buffer, decode the real image (and the aug
image for the generative pairs), and run the same VICReg / T^G ops to 224 px float tensors. The plain
one makes the same per-sample choices (so the image work is identical); genaug adds its stages
(shard split, index annotation, error handling, shared counters, adapter), timed as the ratio, and
its per-sample hashing and seeding, timed separately. Prints samples/s of each (median of interleaved
rounds, main process; per wall second and per CPU second, the latter robust on a shared machine) and
their ratio, then pairs/s through a DataLoader with N workers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from genaug.loader import GenCLPairs, GenCLWebDataset
from genaug.loader.shardindex import resolve_shards
from genaug.testing.loaderbench import plain_pipeline
from genaug.testing.shardfactory import make_shards


def rate(dataset, limit: int) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second of this process) over `limit` samples."""
    wall, cpu, count = time.perf_counter(), time.process_time(), 0
    for _ in dataset:
        count += 1
        if count == limit:
            break
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def loader_rate(dataset, workers: int, batch_size: int, limit: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    iterator, count = iter(loader), 0
    next(iterator)  # worker start-up is not part of the steady rate
    start = time.perf_counter()
    for (view1, _), _, _ in iterator:
        count += view1.shape[0]
        if count >= limit:
            break
    return count / (time.perf_counter() - start)


def bookkeeping_us(n: int = 5000) -> float:
    """Microseconds per sample of what genaug adds: the Bernoulli hash, the seeded generator, a counter."""
    pairs = GenCLPairs(gamma=0.5, seed=0)
    start = time.perf_counter()
    for i in range(n):
        key = f"n01440764_{i:08d}"
        pairs.is_generative(key, 0)
        pairs.generator(key, 0)
        pairs.stats.add("real")
    return (time.perf_counter() - start) / n * 1e6


def make_benchmark_shards(out: str, n: int) -> str:
    make_shards(out, n_samples=n, shard_size=max(1, n // 8), real_size=(320, 500))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", help="genaug output folder / index.json (default: synthetic, 320-500 px)")
    parser.add_argument("--samples", type=int, default=256, help="samples per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--gamma", type=float, default=0.5)
    parser.add_argument("--buffer", type=int, default=100)
    parser.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.shards or make_benchmark_shards(tmp, args.samples)
        urls = list(resolve_shards(source).urls)
        options = dict(gamma=args.gamma, image_size=args.image_size, shuffle_buffer=args.buffer, seed=0)
        genaug_rates, plain_rates = [], []
        for _ in range(args.rounds):  # interleaved, so machine load affects both alike
            plain_rates.append(rate(plain_pipeline(urls, args.image_size, args.gamma, args.buffer, 0), args.samples))
            genaug_rates.append(rate(GenCLWebDataset(source, **options), args.samples))
        print(f"shards: {source} ({len(urls)} shards), image size {args.image_size}, gamma {args.gamma}")
        for name, rates in (("plain webdataset", plain_rates), ("genaug.loader", genaug_rates)):
            wall, cpu = statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)
            print(f"{name:17s}: {wall:7.1f} samples/s wall, {cpu:7.1f} samples/CPU-s "
                  f"(wall rounds {[round(r[0], 1) for r in rates]})")
        plain_cpu = statistics.median(r[1] for r in plain_rates)
        ratio_cpu = statistics.median(r[1] for r in genaug_rates) / plain_cpu
        ratio_wall = statistics.median(r[0] for r in genaug_rates) / statistics.median(r[0] for r in plain_rates)
        print(f"ratio genaug/plain: {ratio_cpu:.3f} per CPU-second, {ratio_wall:.3f} wall (target >= 0.9)")
        overhead = bookkeeping_us()
        print(f"genaug bookkeeping: {overhead:.1f} us/sample = {overhead * plain_cpu / 1e4:.3f}% of a plain sample")
        for workers in (int(w) for w in args.workers.split(",")):
            dataset = GenCLWebDataset(source, **options)
            pairs_per_s = loader_rate(dataset, workers, args.batch_size, args.samples)
            print(f"DataLoader, {workers} worker(s), batch {args.batch_size}: {pairs_per_s:8.1f} pairs/s "
                  f"({2 * pairs_per_s:.1f} images/s)")


if __name__ == "__main__":
    main()
