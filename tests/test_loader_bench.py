"""benchmarks/bench_loader.py runs end to end on tiny shards (figures only; no timing is asserted)."""

import importlib.util
import sys
from pathlib import Path

import torch
from shardfactory import make_shards

from genaug.loader import GenCLWebDataset

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_loader.py"


def test_benchmark_prints_its_ratio(tmp_path, capsys):
    make_shards(tmp_path, n_samples=8, shard_size=4)
    spec = importlib.util.spec_from_file_location("bench_loader", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_loader"] = module
    try:
        spec.loader.exec_module(module)
        module.main(["--shards", str(tmp_path), "--samples", "8", "--rounds", "1", "--workers", "0",
                     "--image-size", "32", "--batch-size", "4"])
    finally:
        sys.modules.pop("bench_loader", None)
    out = capsys.readouterr().out
    assert "ratio genaug/plain:" in out and "genaug bookkeeping:" in out and "0 worker(s)" in out
    # the plain pipeline builds exactly genaug's pairs, so the two time identical image work
    urls = list(module.resolve_shards(str(tmp_path)).urls)
    plain = {key: views for views, _, key in module.plain_pipeline(urls, 32, 0.5, 0, 0)}
    ours = {key: views for views, _, key in GenCLWebDataset(tmp_path, gamma=0.5, seed=0, image_size=32)}
    assert sorted(plain) == sorted(ours) and len(ours) == 8
    for key, views in ours.items():
        assert all(torch.equal(a, b) for a, b in zip(views, plain[key]))
