"""A disk that fills up at any write of a run (issue 12): every write site (first manifest, spool, tar,
stats, errors.jsonl, index.json, final manifest; on a fresh build and on a resume) ends in one clean
BuildError naming the file with the disk-space hint, leaves no temporary file, and a rerun produces the
same bytes as an undisturbed build. Other OS errors get their own hint, not the disk-space one."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from imagefactory import make_image_folder

from genaug.build.config import BuildConfig
from genaug.build.pipeline import BuildError, run_build
from genaug.build.shard import ShardWriter
from genaug.cli.main import main
from genaug.stopping import os_error_message
from genaug.testing import editors

pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("imgs"), n=10, odd=False)["root"]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    run_build(_config(out, data))
    return editors.output_bytes(out)


def _config(out, data) -> BuildConfig:
    return BuildConfig(method=editors.METHOD, out=out, data=(str(data),), shard_size=4, batch_size=2, num_workers=0,
                       seed=3)


def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def _fail_fsync_of(monkeypatch, name: str, occurrence: int) -> None:
    """os.fsync raises ENOSPC at the `occurrence`-th fsync of a file called `name` (temp names included)."""
    real, seen = os.fsync, []

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if Path(path).name in (name, f".{name}.tmp"):
            seen.append(path)
            if len(seen) == occurrence:
                raise _enospc(path)
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _fail_add_to_shard(monkeypatch, index: int) -> None:
    """ShardWriter.add raises ENOSPC for shard `index`: the build stops before that chunk ends. (A failure while
    a shard finishes stops the build too, but the finisher thread still completes shards handed over after it.)"""
    real_add = ShardWriter.add

    def add(self, key, members):
        if self.index == index:
            raise _enospc(self.path)
        return real_add(self, key, members)

    monkeypatch.setattr(ShardWriter, "add", add)


SITES = [("manifest.json", 1), ("manifest.json", 2), ("shard-0001.tar", 1), ("shard-0000.json", 1),
         ("errors.jsonl", 1), ("index.json", 1), ("index.json", 2)]


@pytest.mark.parametrize("name,occurrence", SITES, ids=[f"{n}#{o}" for n, o in SITES])
def test_a_full_disk_at_any_write_is_one_clean_error_and_a_rerun_is_identical(data, reference, tmp_path,
                                                                             monkeypatch, name, occurrence):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _fail_fsync_of(patch, name, occurrence)
        with pytest.raises(BuildError) as err:
            run_build(_config(out, data))
    message = str(err.value)
    assert "No space left on device" in message and name in message and "free disk space" in message
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp file left
    run_build(_config(out, data))
    assert editors.output_bytes(out) == reference


@pytest.mark.parametrize("name", ["manifest.json", "shard-0002.json"])
def test_a_disk_full_when_a_resume_starts_is_clean(data, reference, tmp_path, monkeypatch, name):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _fail_add_to_shard(patch, 1)  # a first run stops after shard 0 (in the feeding thread: shard 2 never starts)
        with pytest.raises(BuildError):
            run_build(_config(out, data))
    with monkeypatch.context() as patch:
        _fail_fsync_of(patch, name, 1)  # the resume finds the disk full at once (or at its first new shard)
        with pytest.raises(BuildError, match="No space left on device"):
            run_build(_config(out, data))
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    run_build(_config(out, data))
    assert editors.output_bytes(out) == reference


def test_a_full_disk_while_spooling_through_the_cli_prints_no_traceback(data, tmp_path, monkeypatch):
    _fail_add_to_shard(monkeypatch, 1)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", "--method", "test", "--data", str(data), "--out", str(out),
                                       "--shard-size", "4", "--num-workers", "0", "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "No space left on device" in result.output and "rerun the same command to resume" in result.output
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("code,hint", [(errno.ENOSPC, "free disk space"), (errno.EDQUOT, "quota"),
                                       (errno.EACCES, "permissions"), (errno.EROFS, "writable file system"),
                                       (errno.EIO, "check the disk"), (errno.ENAMETOOLONG, "fix that")])
def test_the_hint_matches_the_error(code, hint):
    message = os_error_message(OSError(code, os.strerror(code), "/x/f"))
    assert hint in message and "(/x/f)" in message
    assert ("free disk space" in message) == (code == errno.ENOSPC or code == errno.EDQUOT)


def test_folders_are_fsynced_after_renames(data, tmp_path, monkeypatch):
    real, synced = os.fsync, []

    def fsync(fd):
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        synced.append(path.name if path.is_dir() else "file")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "out"
    run_build(_config(out, data))
    # every rename (3 tars, their 3 stats files, index/errors/manifest) is followed by a folder fsync
    assert synced.count("out") >= 3 + 2 + 2 and synced[-1] == "out"
