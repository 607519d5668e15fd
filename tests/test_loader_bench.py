"""benchmarks/bench_loader.py runs end to end on tiny shards (figures only; no timing is asserted), and the
plain pipeline it times against builds exactly genaug's pairs."""

import subprocess
import sys
from pathlib import Path

import torch

from genaug.loader import GenCLWebDataset
from genaug.loader.shardindex import resolve_shards
from genaug.testing.loaderbench import plain_pipeline
from genaug.testing.shardfactory import make_shards

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_loader.py"


def test_benchmark_prints_its_ratio(tmp_path):
    make_shards(tmp_path, n_samples=8, shard_size=4)
    result = subprocess.run([sys.executable, str(BENCH), "--shards", str(tmp_path), "--samples", "8", "--rounds", "1",
                             "--workers", "0", "--image-size", "32", "--batch-size", "4"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "ratio genaug/plain:" in out and "genaug bookkeeping:" in out and "0 worker(s)" in out
    # the plain pipeline builds exactly genaug's pairs, so the two time identical image work
    urls = list(resolve_shards(str(tmp_path)).urls)
    plain = {key: views for views, _, key in plain_pipeline(urls, 32, 0.5, 0, 0)}
    ours = {key: views for views, _, key in GenCLWebDataset(tmp_path, gamma=0.5, seed=0, image_size=32)}
    assert sorted(plain) == sorted(ours) and len(ours) == 8
    for key, views in ours.items():
        assert all(torch.equal(a, b) for a, b in zip(views, plain[key]))
