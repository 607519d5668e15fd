"""Real DDP (torchrun, gloo on CPU): every rank runs the same number of steps, equal to len(loader), with an
all-reduce per step (unequal counts would hang it; the process-group timeout turns a hang into a failure)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from genaug.testing.shardfactory import make_shards

WORKER = textwrap.dedent('''
    import datetime, json, os, sys
    import torch, torch.distributed as dist
    from torch.utils.data import DataLoader
    from genaug.loader import GenCLWebDataset

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    source, out = sys.argv[1], sys.argv[2]
    results = {}
    for name, options in {"indexed": {}, "resampled": {"resampled": True, "samples_per_epoch": 7}}.items():
        dataset = GenCLWebDataset(source, image_size=8, batch_size=3, **options)  # rank from torch.distributed
        loader = DataLoader(dataset, batch_size=3, num_workers=2, drop_last=False)
        steps, keys = 0, []
        for epoch in range(2):
            dataset.set_epoch(epoch)
            for _, _, batch in loader:
                flag = torch.ones(1)
                dist.all_reduce(flag)  # every rank must take part in every step
                steps += 1
                keys += list(batch) if epoch == 0 else []
        results[name] = {"steps": steps, "len": len(loader), "keys": keys}
    with open(os.path.join(out, f"rank{dist.get_rank()}.json"), "w") as handle:
        json.dump(results, handle)
    dist.destroy_process_group()
''')


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torchrun_three_ranks_equal_steps(tmp_path):
    make_shards(tmp_path / "run", n_samples=22, shard_size=5, real_size=(16, 20))  # 5 uneven shards
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3",
               str(script), str(tmp_path / "run"), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(3)]
    for name in ("indexed", "resampled"):
        assert len({r[name]["steps"] for r in ranks}) == 1
        for result in ranks:
            assert result[name]["steps"] == 2 * result[name]["len"]
    indexed = [set(r["indexed"]["keys"]) for r in ranks]
    assert len(set.union(*indexed)) == 22 and all(len(k) == 8 for k in indexed)  # ceil(22 / 3) each
