"""Stopping a build with worker processes: Ctrl-C ends it with one clean message (exit 130, no worker
tracebacks) and a rerun resumes; after kill -9 of the build its workers exit instead of lingering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imagefactory import make_imagenet_folder

CODE = "from genaug.testing import editors; editors.register(); from genaug.cli.main import main; main()"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=2, per_class=6, odd=False)


def _start(folder, out) -> subprocess.Popen:
    env = dict(os.environ)
    argv = ["build", "--method", "test", "--data", str(folder["train"]), "--out", str(out), "--shard-size", "3",
            "--batch-size", "1", "--num-workers", "2", "--delay", "0.3", "--quiet"]
    return subprocess.Popen([sys.executable, "-c", CODE, *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _state(pid: int) -> str | None:
    """The /proc state letter of `pid`, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def _wait_for_workers(proc: subprocess.Popen, out: Path, n: int = 2) -> list[int]:
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the build never started its workers"
        children = _children(proc.pid)
        if len(children) >= n and (out / "manifest.json").exists():
            return children
        time.sleep(0.1)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_a_resume_hint(folder, tmp_path):
    out = tmp_path / "out"
    proc = _start(folder, out)
    try:
        _wait_for_workers(proc, out)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = stderr.decode()
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "rerun the same command to resume" in text
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.slow
def test_workers_exit_when_the_build_is_killed(folder, tmp_path):
    out = tmp_path / "out"
    proc = _start(folder, out)
    try:
        children = _wait_for_workers(proc, out, n=3)  # two workers and the resource tracker
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        alive = children
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in children if _state(pid) not in (None, "Z")]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    for pid in alive:
        os.kill(pid, signal.SIGKILL)  # clean up before failing
    assert alive == [], f"processes {alive} outlived the killed build"


def _finish(proc: subprocess.Popen) -> str:
    try:
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    return stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [True, False], ids=["process-group", "build-process"])
def test_sigterm_stops_cleanly_marks_the_manifest_and_a_rerun_resumes(folder, tmp_path, to_group):
    """What SLURM does before SIGKILL: SIGTERM, to every process of the job or to the main one."""
    import json

    out = tmp_path / "out"
    proc = _start(folder, out)
    try:
        _wait_for_workers(proc, out)
        time.sleep(1.0)
        (os.killpg if to_group else os.kill)(proc.pid, signal.SIGTERM)
    finally:
        text = _finish(proc)
    assert proc.returncode == 143, text
    assert "Traceback" not in text and "leaked semaphore" not in text, text
    assert "terminated (SIGTERM)" in text and "rerun the same command to resume" in text
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the shard in progress was dropped
    rerun = _start(folder, out)
    assert _finish(rerun) == "" and rerun.returncode == 0
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def _wait_for_torch_loading(proc: subprocess.Popen) -> None:
    """Until the process maps torch's library: it is past click's start and loading the build command."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/maps", encoding="utf-8", errors="replace") as handle:
                if "libtorch" in handle.read():
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated (SIGTERM)")])
@pytest.mark.parametrize("after", [0.0, 0.5])
def test_a_signal_during_start_up_exits_with_its_code_and_one_line(folder, tmp_path, sig, code, word, after):
    """The real entry point, stopped while torch loads or the build starts: no 'Aborted!', no traceback."""
    env = dict(os.environ, GENAUG_OFFLINE="1", GENAUG_HOME=str(tmp_path / "home"))
    argv = ["build", "--method", "mask", "--data", str(folder["train"]), "--out", str(tmp_path / "out"), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-c", "from genaug.cli.main import main; main()", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for_torch_loading(proc)
        time.sleep(after)
        assert proc.poll() is None, "the command ended before the signal"
        os.killpg(proc.pid, sig)
    finally:
        text = _finish(proc)
    assert proc.returncode == code, text
    assert "Traceback" not in text and "Aborted!" not in text and word in text, text


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("after", [0.15, 0.5])
def test_a_signal_while_workers_are_starting_prints_no_worker_traceback(folder, tmp_path, sig, code, after):
    """The process group gets the signal while a spawned worker is still importing (before its initializer)."""
    out = tmp_path / "out"
    proc = _start(folder, out)
    try:
        deadline = time.monotonic() + 180
        while not (out / "manifest.json").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)  # the pool is made right after the first manifest write
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)  # the resource tracker and a first worker
        time.sleep(after)  # the worker is importing
        os.killpg(proc.pid, sig)
    finally:
        text = _finish(proc)
    assert proc.returncode == code, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
