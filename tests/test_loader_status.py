"""The loader warns (not fails) when pointed at a build whose manifest.json says it did not finish."""

import json
import logging

import pytest

from genaug.loader import GenCLMapDataset, GenCLWebDataset, resolve_shards
from genaug.testing.shardfactory import make_shards


def _set_status(run, status, **extra):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(status=status, **extra)
    (run / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def interrupted(tmp_path):
    run = tmp_path / "run"
    make_shards(run, n_samples=4, shard_size=2)
    _set_status(run, "running", config={"limit": 10, "shard_size": 2})
    return run


@pytest.mark.parametrize("target", ["folder", "index", "folder-without-index"])
def test_unfinished_build_is_a_warning(interrupted, caplog, target):
    if target == "folder-without-index":
        (interrupted / "index.json").unlink()
    source = interrupted / "index.json" if target == "index" else interrupted
    with caplog.at_level(logging.WARNING, logger="genaug"):
        index = resolve_shards(str(source))
    assert len(index.urls) == 2
    (record,) = [r for r in caplog.records if "build not finished" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "2 of at most 5 shard(s) done" in record.getMessage() and "rerun the same genaug build" in record.getMessage()


def test_datasets_warn_and_still_serve_the_finished_part(interrupted, caplog):
    with caplog.at_level(logging.WARNING, logger="genaug"):
        assert len(GenCLWebDataset(str(interrupted))) == 4
        assert len(GenCLMapDataset(str(interrupted))) == 4
    assert sum("build not finished" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize("status", ["complete", None])
def test_complete_or_unrecorded_status_is_silent(tmp_path, caplog, status):
    run = tmp_path / "run"
    make_shards(run, n_samples=2, shard_size=2)
    if status:
        _set_status(run, status, counts={"shards": 1})
    with caplog.at_level(logging.WARNING, logger="genaug"):
        resolve_shards(str(run))
    assert not [r for r in caplog.records if "not finished" in r.getMessage()]


def test_build_interrupted_before_its_first_shard_is_named(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"status": "running", "config": {"limit": 4, "shard_size": 2}}))
    with pytest.raises(FileNotFoundError, match="has not finished any shard yet") as err:
        resolve_shards(str(run))
    assert "rerun the same genaug build command" in str(err.value)
    (tmp_path / "plain").mkdir()  # no manifest: the plain message
    with pytest.raises(FileNotFoundError, match="neither index.json nor"):
        resolve_shards(str(tmp_path / "plain"))
