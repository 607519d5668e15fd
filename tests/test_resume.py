"""Resume: the fingerprint, refusal of a different configuration, damaged leftovers, and a build
killed with SIGKILL mid-shard that a rerun completes to the bytes of an uninterrupted build."""

import dataclasses
import fcntl
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from imagefactory import make_imagenet_folder

from genaug.build.config import BuildConfig, ConfigError, resolve
from genaug.build.pipeline import BuildError, run_build
from genaug.cli.main import main
from genaug.testing import editors

SHARD_SIZE = 3


pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=3, per_class=4, odd=False,
                                broken=True)


def _config(folder, out, **kw) -> BuildConfig:
    return editors.build_config(out, folder["train"], **{"shard_size": SHARD_SIZE, "batch_size": 2, "seed": 3, **kw})


@pytest.fixture(scope="module")
def baseline(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    run_build(_config(folder, out))
    return out


def test_fingerprint_ignores_speed_settings_only(folder, tmp_path):
    base = resolve(_config(folder, tmp_path))
    for speed in (dict(batch_size=7), dict(num_workers=3), dict(device="cpu"), dict(options={"delay": 0.5})):
        assert resolve(_config(folder, tmp_path, **speed)).fingerprint == base.fingerprint, speed
    for output in (dict(seed=4), dict(shard_size=4), dict(options={"amplitude": 1}), dict(aug_format="png"),
                   dict(quality=80), dict(limit=5), dict(preset="test-invert-x2"), dict(precision="fp32")):
        assert resolve(_config(folder, tmp_path, **output)).fingerprint != base.fingerprint, output


def test_fingerprint_covers_the_device_type_not_the_index(folder, tmp_path):
    """CPU and CUDA kernels differ in the last float bits: a resume on the other type is refused."""
    from genaug.build.runfiles import fingerprint_inputs, fingerprint_of

    base = resolve(_config(folder, tmp_path, device="cpu"))
    assert base.fingerprint_inputs["device_type"] == "cpu"
    args = (base.config, base.method, base.options, base.fingerprint_inputs["data"], base.weights_sha256)
    assert fingerprint_of(fingerprint_inputs(*args, "cpu")) == base.fingerprint
    assert fingerprint_of(fingerprint_inputs(*args, "cuda")) != base.fingerprint


def test_different_settings_are_refused_unless_overwrite(folder, baseline, tmp_path):
    out = tmp_path / "run"
    run_build(_config(folder, out))
    before = editors.output_bytes(out)
    with pytest.raises(ConfigError, match=r"differs in: options, seed.*--overwrite"):
        run_build(_config(folder, out, seed=9, options={"amplitude": 2}))
    assert editors.output_bytes(out) == before  # nothing touched
    run_build(_config(folder, out, seed=9, overwrite=True))
    assert editors.output_bytes(out)["shard-0000.tar"] != before["shard-0000.tar"]
    assert json.loads((out / "manifest.json").read_text())["fingerprint_inputs"]["seed"] == 9


def test_rerun_repairs_damaged_and_unfinished_shards(folder, baseline, tmp_path):
    out = tmp_path / "run"
    run_build(_config(folder, out))
    (out / ".shard-0001.tar.tmp").write_bytes(b"half a tar")  # temp files never count as done
    (out / ".shard-0001.tar.spool").write_bytes(b"spool")
    (out / "shard-0002.json").unlink()  # tar without its done-marker
    damaged = bytearray((out / "shard-0003.tar").read_bytes())
    damaged[700] ^= 0xFF  # same size, wrong md5
    (out / "shard-0003.tar").write_bytes(bytes(damaged))
    (out / "shard-0000.tar").unlink()  # done-marker without its tar
    summary = run_build(_config(folder, out, batch_size=5))
    assert summary.shards_resumed == summary.shards - 3
    assert editors.output_bytes(out) == editors.output_bytes(baseline)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    lines = (out / "errors.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == len(folder["skipped"])  # no duplicated error lines


def _build_argv(folder, out, *extra) -> list[str]:
    return ["build", "--method", editors.METHOD, "--data", str(folder["train"]), "--out", str(out),
            "--shard-size", str(SHARD_SIZE), "--seed", "3", "--num-workers", "0", *extra]


@pytest.mark.slow
def test_sigkill_mid_shard_then_rerun_gives_the_uninterrupted_output(folder, baseline, tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ)
    code = "from genaug.testing import editors; editors.register(); from genaug.cli.main import main; main()"
    argv = _build_argv(folder, out, "--batch-size", "1", "--delay", "0.4", "--quiet")
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not (out / "shard-0000.json").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the build never finished its first shard"
            time.sleep(0.05)
        time.sleep(0.5)  # into the next shard: a spool file is being filled
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    n_total = len(json.loads((baseline / "index.json").read_text())["shardlist"])
    assert 1 <= len(list(out.glob("shard-*.json"))) < n_total  # killed mid-run
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    result = CliRunner().invoke(main, _build_argv(folder, out, "--batch-size", "2"))
    assert result.exit_code == 0, result.output
    assert "resumed" in result.output
    assert editors.output_bytes(out) == editors.output_bytes(baseline)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_resolve_creates_nothing(folder, tmp_path):
    config = _config(folder, tmp_path / "new" / "deeper")
    resolved = resolve(config)
    assert resolved.config.out == (tmp_path / "new" / "deeper").resolve()
    assert list(tmp_path.iterdir()) == []  # --out is made only once every check has passed
    assert dataclasses.replace(config, seed=1) != config


def test_a_second_build_in_the_same_out_is_refused_while_one_runs(folder, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running build holds
        with pytest.raises(ConfigError, match="another genaug build is writing there"):
            run_build(_config(folder, out))
    finally:
        os.close(fd)
    assert list(out.iterdir()) == []
    assert run_build(_config(folder, out, limit=2)).inputs == 2  # the lock is gone with its holder


@pytest.mark.slow
def test_a_killed_worker_process_stops_the_build_cleanly(folder, baseline, tmp_path):
    out = tmp_path / "worker-killed"
    outcome = {}

    def build():
        try:
            run_build(_config(folder, out, batch_size=1, num_workers=1, options={"delay": 0.3}))
        except BuildError as err:
            outcome["error"] = err

    thread = threading.Thread(target=build)
    thread.start()
    deadline = time.monotonic() + 120
    while not (out / "shard-0000.json").exists() and thread.is_alive():
        assert time.monotonic() < deadline, "the build never finished its first shard"
        time.sleep(0.05)
    for worker in multiprocessing.active_children():
        os.kill(worker.pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert "worker process died" in str(outcome.get("error")), outcome
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    run_build(_config(folder, out))  # resumes from the shards completed before the kill
    assert editors.output_bytes(out) == editors.output_bytes(baseline)


@pytest.mark.parametrize("change,expected", [
    ({"options": {"amplitude": 2}}, "options.amplitude: 5 in --out, 2 now"),
    ({"seed": 9}, "seed: 0 in --out, 9 now"),
    ({"options": {"amplitude": 2}, "seed": 4}, "options.amplitude: 5 in --out, 2 now; seed: 0 in --out, 4 now"),
    ({"aug_format": "png"}, 'aug_format: "jpg" in --out, "png" now'),
])
def test_the_refusal_names_each_differing_setting_with_both_values(folder, tmp_path, change, expected):
    out = tmp_path / "run"
    run_build(_config(folder, out, seed=0, options={"amplitude": 5}, limit=2))
    kw = {"seed": 0, "options": {"amplitude": 5}, "limit": 2, **change}
    with pytest.raises(ConfigError) as err:
        run_build(_config(folder, out, **kw))
    assert expected in str(err.value), str(err.value)
