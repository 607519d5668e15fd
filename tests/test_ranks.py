"""Rank detection (torchrun, SLURM, --rank/--world-size), the device of a rank, and the lock on --out that
admits the ranks of one build and refuses anything else. In-process, no launcher."""

from __future__ import annotations

import os

import pytest

from genaug.build import runfiles
from genaug.build.config import BuildConfig
from genaug.build.distributed import joined, run_rank
from genaug.build.finalize import finalize
from genaug.build.ranks import FLAGS, SINGLE, SLURM, TORCHRUN, Ranks, detect_ranks, rank_device
from genaug.errors import ConfigError

TORCHRUN_ENV = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
SLURM_ENV = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}


def test_no_launcher_and_no_flags_is_one_process():
    assert detect_ranks(environ={}) == Ranks(0, 1, 0, SINGLE)


def test_torchrun_variables_come_first():
    assert detect_ranks(environ={**SLURM_ENV, **TORCHRUN_ENV}) == Ranks(1, 4, 1, TORCHRUN)


def test_slurm_variables():
    ranks = detect_ranks(environ=SLURM_ENV)
    assert ranks == Ranks(5, 8, 1, SLURM)
    assert ranks.meets and ranks.owns(13) and not ranks.owns(12)


def test_flags_make_ranks_that_do_not_meet():
    ranks = detect_ranks(2, 3, environ={})
    assert ranks == Ranks(2, 3, 0, FLAGS)
    assert ranks.distributed and not ranks.meets
    assert [c for c in range(9) if ranks.owns(c)] == [2, 5, 8]


def test_flags_override_a_one_task_slurm_job():
    """A job-array task is a one-task SLURM job: its SLURM_PROCID 0 of 1 must not hide --rank."""
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0"}
    assert detect_ranks(3, 4, environ=env) == Ranks(3, 4, 0, FLAGS)


def test_flags_equal_to_the_launcher_keep_the_launcher():
    assert detect_ranks(1, 4, environ=TORCHRUN_ENV).launcher == TORCHRUN


@pytest.mark.parametrize("flags, message", [
    ((0, 4), "disagree with torchrun"),
    ((1, None), "go together"),
    ((None, 2), "go together"),
    ((2, 2), "--rank 2"),
    ((-1, 2), "--rank -1"),
    ((0, 0), "--world-size 0"),
])
def test_bad_flags_are_named(flags, message):
    with pytest.raises(ConfigError, match=message):
        detect_ranks(*flags, environ=TORCHRUN_ENV if message.startswith("disagree") else {})


@pytest.mark.parametrize("env, message", [
    ({"RANK": "x", "WORLD_SIZE": "2"}, r"\$RANK='x'"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, r"\$RANK=2 is not below \$WORLD_SIZE=2"),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "0"}, r"\$SLURM_NTASKS='0'"),
])
def test_bad_launcher_variables_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        detect_ranks(environ=env)


def test_device_of_a_rank_without_cuda_is_unchanged(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rank_device("auto", Ranks(1, 2, 1, TORCHRUN)) == "auto"
    assert rank_device("cpu", Ranks(1, 2, 1, TORCHRUN)) == "cpu"


def test_device_of_a_rank_is_its_local_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device("auto", Ranks(3, 4, 1, SLURM)) == "cuda:1"
    assert rank_device("cuda", Ranks(3, 4, 1, SLURM)) == "cuda:1"
    assert rank_device("cuda:0", Ranks(3, 4, 1, SLURM)) == "cuda:0"
    assert rank_device("auto", Ranks(0, 1, 0, SINGLE)) == "auto"
    with pytest.raises(ConfigError, match="local rank 2 needs cuda:2, but this machine has 2"):
        rank_device("auto", Ranks(2, 4, 2, TORCHRUN))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one GPU bound to each task
    assert rank_device("auto", Ranks(2, 4, 2, SLURM)) == "cuda:0"


def test_overwrite_and_a_missing_rendezvous_are_refused_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "out"
    config = BuildConfig(method="mask", preset="maskgit-tiny", out=out, device="cpu")
    with pytest.raises(ConfigError, match=r"--overwrite with 2 ranks.*rm -r"):
        run_rank(BuildConfig(method="mask", out=out, overwrite=True), Ranks(0, 2, 0, FLAGS))
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ConfigError, match=r"\$MASTER_ADDR and \$MASTER_PORT is not set"):
        run_rank(config, Ranks(0, 2, 0, SLURM))
    assert not out.exists()


def test_lock_admits_the_ranks_of_one_build_only(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with joined(out, "fp", Ranks(0, 2, 0, FLAGS)):
        with joined(out, "fp", Ranks(1, 2, 0, FLAGS)):  # the other rank of the same build: admitted
            pass
        with pytest.raises(ConfigError, match="rank 0 of this build is already running"):
            with joined(out, "fp", Ranks(0, 2, 0, FLAGS)):
                pass
        with pytest.raises(ConfigError, match=r"another distributed build \(2 ranks\) is writing"):
            with joined(out, "fp", Ranks(1, 3, 0, FLAGS)):
                pass
        with pytest.raises(ConfigError, match="other settings"):
            with joined(out, "other-fp", Ranks(1, 2, 0, FLAGS)):
                pass
        with pytest.raises(ConfigError, match="another genaug build is writing there"):
            with runfiles.exclusive(out):  # a single-process build
                pass
    with joined(out, "other-fp", Ranks(0, 3, 0, FLAGS)):  # nobody holds --out any more: a new build may start
        pass


def test_a_single_process_build_keeps_ranks_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with runfiles.exclusive(out):
        with pytest.raises(ConfigError, match="another genaug build is writing there"):
            with joined(out, "fp", Ranks(0, 2, 0, FLAGS)):
                pass
    assert sorted(os.listdir(out / ".genaug-dist")) == ["join.lock"]


def test_finalize_refuses_a_folder_that_is_no_distributed_build(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        finalize(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no manifest.json of a genaug build"):
        finalize(tmp_path)
    (tmp_path / "manifest.json").write_text('{"config_fingerprint": "fp", "config": {"shard_size": 3}}')
    with pytest.raises(ConfigError, match="no distributed build state"):
        finalize(tmp_path)
    with runfiles.exclusive(tmp_path):  # a build is writing
        with pytest.raises(ConfigError, match="still writing there"):
            finalize(tmp_path)
