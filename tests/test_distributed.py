"""A build spread over processes writes the bytes of a single-process build: under torchrun (2 and 3
processes), under SLURM's variables, as job-array tasks + `genaug finalize`, and after kill -9 of one
rank followed by a rerun with one process. CPU, gloo; the test method of genaug/testing/editors.py, and the
README's torchrun command with a tiny preset."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imagefactory import make_imagenet_folder

from genaug.runstatus import read_build_status

TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parent
# genaug with the test method of genaug/testing/editors.py
CODE = "from genaug.testing import editors; editors.register(); from genaug.cli.main import main; main()"
BUILD = ["build", "--method", "test", "--shard-size", "3", "--batch-size", "2", "--num-workers", "0", "--seed", "3",
         "--quiet"]
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
                 "SLURM_LOCALID", "TORCHELASTIC_RUN_ID")
# manifest fields that belong to one run, not to its output (docs/build.md)
PER_RUN = ("started_at", "finished_at", "wall_time_s", "timing", "distributed", "command")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """15 inputs (5 of them broken) -> 5 shards of 3, some with skipped inputs."""
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=2, per_class=5, odd=False,
                                broken=True)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")])))
    env.update(extra)
    return env


def _genaug(*args) -> list[str]:
    return [sys.executable, "-c", CODE, *args]


def _run(argv, timeout=300, **env) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=_env(**env), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def baseline(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "out"
    _ok(_run(_genaug(*BUILD, "--data", str(folder["train"]), "--out", str(out))))
    return out


def _shards(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("shard-*.tar"))


def assert_same_build(out: Path, baseline: Path) -> None:
    """Every shard, index.json and errors.jsonl byte-identical; the manifest equal but for per-run fields."""
    assert _shards(out) == _shards(baseline) and len(_shards(out)) == 5
    for name in _shards(out) + ["index.json", "errors.jsonl"]:
        assert (out / name).read_bytes() == (baseline / name).read_bytes(), name
    assert len((out / "errors.jsonl").read_text().splitlines()) == 5
    ours, theirs = (json.loads((o / "manifest.json").read_text()) for o in (out, baseline))
    assert ours["status"] == theirs["status"] == "complete"
    for manifest in (ours, theirs):
        for key in PER_RUN:
            manifest.pop(key, None)
        manifest["config"].pop("out")
        manifest["counts"].pop("shards_resumed")
    assert ours == theirs


@pytest.mark.parametrize("nproc", [2, 3])
def test_torchrun_writes_the_bytes_of_one_process(folder, baseline, tmp_path, nproc):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "--no-python", *_genaug(*BUILD, "--data", str(folder["train"]), "--out", str(out))]
    _ok(_run(argv))
    assert_same_build(out, baseline)
    ranks = json.loads((out / "manifest.json").read_text())["distributed"]
    assert ranks["world_size"] == nproc and ranks["launcher"] == "torchrun"
    assert [r["shards_built"] for r in ranks["ranks"]] == [len(range(r, 5, nproc)) for r in range(nproc)]
    assert read_build_status(out).finished


def _slurm_ranks(folder, out, world, port, extra=()) -> list[subprocess.Popen]:
    procs = []
    for rank in range(world):
        env = _env(SLURM_PROCID=str(rank), SLURM_NTASKS=str(world), SLURM_LOCALID=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        argv = _genaug(*BUILD, "--data", str(folder["train"]), "--out", str(out), *extra)
        procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True))
    return procs


def test_slurm_variables_write_the_bytes_of_one_process(folder, baseline, tmp_path):
    out = tmp_path / "out"
    procs = _slurm_ranks(folder, out, 2, _free_port())
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    assert_same_build(out, baseline)
    assert json.loads((out / "manifest.json").read_text())["distributed"]["launcher"] == "slurm"
    _ok(_run(_genaug("inspect", str(out), "--verify")))  # the run folder checks out like a one-process one


def test_job_array_tasks_and_finalize_write_the_bytes_of_one_process(folder, baseline, tmp_path):
    out = tmp_path / "out"
    task = _genaug(*BUILD, "--data", str(folder["train"]), "--out", str(out), "--world-size", "2", "--rank")
    _ok(_run(task + ["1"], SLURM_PROCID="0", SLURM_NTASKS="1", SLURM_LOCALID="0"))  # a one-task array job
    assert _shards(out) == ["shard-0001.tar", "shard-0003.tar"]
    assert not (out / "index.json").exists() and not read_build_status(out).finished
    early = _run(_genaug("finalize", str(out)))
    assert early.returncode == 1 and "rank(s) [0] of 2" in early.stderr, early.stderr
    assert "--rank" not in json.loads((out / "manifest.json").read_text())["command"]
    _ok(_run(task + ["0"]))
    assert not read_build_status(out).finished  # written by finalize only
    _ok(_run(_genaug("finalize", str(out))))
    assert_same_build(out, baseline)
    assert json.loads((out / "manifest.json").read_text())["distributed"]["launcher"] == "flags"


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_kill_9_of_one_rank_loses_only_its_shard_and_a_one_process_rerun_completes(folder, baseline, tmp_path):
    out = tmp_path / "out"
    rank0, rank1 = _slurm_ranks(folder, out, 2, _free_port(), extra=("--delay", "0.4"))
    try:
        _wait_for(out / "shard-0001.json", rank1)  # rank 1 finished its first shard and works on shard 3
        time.sleep(0.3)
        os.killpg(rank1.pid, signal.SIGKILL)
        rank1.wait(timeout=60)
        _, stderr = rank0.communicate(timeout=300)
    finally:
        for proc in (rank0, rank1):
            if proc.poll() is None:
                proc.kill()
    assert rank0.returncode == 1, stderr
    assert "another rank stopped before finishing" in stderr and "rerun the same command" in stderr, stderr
    survivors = {"shard-0000.tar", "shard-0001.tar", "shard-0002.tar", "shard-0004.tar"}
    assert set(_shards(out)) == survivors  # rank 0 finished all of its own; rank 1 lost only shard 3
    assert not read_build_status(out).finished and not (out / "index.json").exists()
    verify = _run(_genaug("inspect", str(out), "--verify"))
    assert verify.returncode != 0 and "build not finished" in verify.stdout + verify.stderr
    rerun = _ok(_run(_genaug(*[a for a in BUILD if a != "--quiet"], "--data", str(folder["train"]),
                             "--out", str(out))))
    assert "5 shards (4 resumed)" in rerun.stdout
    assert_same_build(out, baseline)


def _readme_torchrun() -> list[str]:
    """The one-node torchrun command of README.md (also in docs/build.md), as arguments after `torchrun`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^torchrun (--standalone --nproc-per-node 8 -m genaug build [^\n]*)$", readme, re.M)
    assert match, "README.md has no one-node torchrun command"
    assert match.group(0) in (ROOT / "docs" / "build.md").read_text(encoding="utf-8")
    return match.group(1).split()


def test_the_readme_torchrun_command_runs_with_a_tiny_preset_on_cpu(folder, tmp_path):
    """The README's command as written, on 2 CPU processes with the tiny preset, equals one process."""
    args = _readme_torchrun()
    args[args.index("--nproc-per-node") + 1] = "2"
    args[args.index("--data") + 1] = str(folder["train"])
    outs = {}
    for name, launcher in (("single", [sys.executable]), ("torchrun", [sys.executable, "-m", "torch.distributed.run",
                                                                       *args[:3]])):
        out = tmp_path / name / "out"
        argv = [*launcher, *args[3:]]
        argv[argv.index("--out") + 1] = str(out)
        _ok(_run([*argv, "--preset", "maskgit-tiny", "--device", "cpu", "--shard-size", "4", "--num-workers", "0",
                  "--limit", "8", "--quiet"], timeout=600))
        outs[name] = out
    assert _shards(outs["torchrun"]) == ["shard-0000.tar", "shard-0001.tar"]
    for name in _shards(outs["single"]) + ["index.json", "errors.jsonl"]:
        assert (outs["torchrun"] / name).read_bytes() == (outs["single"] / name).read_bytes(), name


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_ctrl_c_to_torchrun_stops_every_rank_and_a_rerun_completes(folder, baseline, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
            *_genaug(*BUILD, "--data", str(folder["train"]), "--out", str(out), "--delay", "0.4")]
    proc = subprocess.Popen(argv, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(out / "shard-0000.json", proc)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the launcher and its ranks
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, stderr
    # torchrun passes the signal on to its ranks (its own or SIGTERM): each stops cleanly, saying so
    assert stderr.count("interrupted: completed shards") + stderr.count("terminated (SIGTERM): completed") == 2, stderr
    time.sleep(1.0)
    assert _processes_mentioning(str(out)) == []  # the ranks run in sessions of their own: look by command line
    assert not read_build_status(out).finished
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*.spool")), sorted(p.name for p in out.iterdir())
    _ok(_run(_genaug(*BUILD, "--data", str(folder["train"]), "--out", str(out))))
    assert_same_build(out, baseline)
