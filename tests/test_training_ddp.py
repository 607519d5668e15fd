"""The protocol under torchrun: 2 processes on gloo (CPU), the loader's rank split, then rank-0 evaluation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genaug.testing.shardfactory import make_shards

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_vicreg.py"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_torchrun_two_processes_gloo(tmp_path):
    make_shards(tmp_path / "train", n_samples=32, shard_size=8)
    make_shards(tmp_path / "val", n_samples=8, shard_size=8, seed=1)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(EXAMPLE),
               "--shards", str(tmp_path / "train"), "--out", str(out), "--steps", "6", "--batch-size", "16",
               "--image-size", "32", "--arch", "small", "--mlp", "32-32", "--base-lr", "20", "--workers", "0",
               "--device", "cpu", "--log-every", "2", "--eval-train", str(tmp_path / "train"), "--eval-val",
               str(tmp_path / "val"), "--probe-epochs", "2", "--eval-batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    log = json.loads((out / "train_log.json").read_text())
    assert len(log["losses"]) == 6 and log["steps_per_epoch"] == 2  # 32 samples / 2 ranks / 8 per rank
    assert sum(log["pair_counts"].values()) > 0
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["n_val"] == 8 and 0.0 <= row["knn_top1"] <= 1.0
    assert "step 6/6" in done.stderr and done.stderr.count("fixed-batch loss") == 2  # both ranks trained
