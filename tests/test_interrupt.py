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
