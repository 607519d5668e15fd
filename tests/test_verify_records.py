"""`genaug inspect --verify` checks a run folder against its own records (issue 12): a shard that index.json
or a stats file lists is present, sizes, md5 sums and sample counts agree, a finished build has its
index.json and the counts its manifest records."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from genaug.cli.main import main
from genaug.inspect import inspect_shards
from genaug.testing.shardfactory import make_shards


@pytest.fixture
def run(tmp_path):
    """A finished run of 5 shards x 8 samples, its manifest marked complete with its counts."""
    paths = make_shards(tmp_path, n_samples=40, shard_size=8)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest.update(status="complete", counts={"shards": 5, "samples": 40, "inputs": 40, "errors": 0})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path, paths


def _index(folder) -> dict:
    return json.loads((folder / "index.json").read_text())


def _set_index(folder, doc) -> None:
    (folder / "index.json").write_text(json.dumps(doc))


def _problems(folder) -> list[str]:
    return inspect_shards([str(folder)], verify=True)["problems"]


def test_an_intact_run_verifies(run):
    folder, _ = run
    assert _problems(folder) == []


@pytest.mark.parametrize("which", [0, 2, 4])
def test_a_listed_shard_that_is_missing_is_a_problem(run, which):
    folder, paths = run
    paths[which].unlink()  # its stats file and index.json entry remain
    problems = _problems(folder)
    assert any(str(paths[which]) in p and "missing" in p and "index.json" in p for p in problems), problems
    result = CliRunner().invoke(main, ["inspect", str(folder), "--verify"])
    assert result.exit_code == 1 and "verify: OK" not in result.output


def test_a_shard_missing_with_its_stats_file_is_a_problem(run):
    folder, paths = run
    paths[3].unlink()
    paths[3].with_suffix(".json").unlink()  # only index.json still lists it
    problems = _problems(folder)
    assert any(f"{paths[3]}: missing, but index.json list(s) it" in p for p in problems), problems


def test_a_missing_index_of_a_finished_build_is_a_problem(run):
    folder, _ = run
    (folder / "index.json").unlink()
    assert any("index.json is missing" in p for p in _problems(folder))


@pytest.mark.parametrize("field,value", [("md5sum", "0" * 32), ("filesize", 1), ("nsamples", 9)])
def test_an_index_entry_that_disagrees_with_the_tar_is_a_problem(run, field, value):
    folder, _ = run
    doc = _index(folder)
    doc["shardlist"][1][field] = value
    _set_index(folder, doc)
    problems = _problems(folder)
    assert any(f"entry shard-0001.tar: {field} is {value!r} but the tar has" in p for p in problems), problems


def test_a_shard_left_out_of_the_index_is_a_problem(run):
    folder, _ = run
    doc = _index(folder)
    del doc["shardlist"][2]
    _set_index(folder, doc)
    assert any("shard-0002.tar: has a stats file but is not listed in index.json" in p for p in _problems(folder))


@pytest.mark.parametrize("name,value", [("shards", 6), ("samples", 41)])
def test_manifest_counts_that_disagree_are_a_problem(run, name, value):
    folder, _ = run
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["counts"][name] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert any(f"counts.{name} is {value}" in p for p in _problems(folder))


def test_a_single_shard_given_is_checked_against_its_index_entry(run):
    folder, paths = run
    doc = _index(folder)
    doc["shardlist"][0]["nsamples"] = 7
    _set_index(folder, doc)
    problems = inspect_shards([str(paths[0])], verify=True)["problems"]
    assert any("entry shard-0000.tar: nsamples is 7 but the tar has 8" in p for p in problems), problems
