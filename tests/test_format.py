"""The shard contract has one home, genaug/format.py: docs/contracts.md lists the same names, and a real
build writes exactly them."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from genaug import format as F
from genaug.build.pipeline import run_build

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"
pytestmark = pytest.mark.usefixtures("test_method")


def _paragraph(start: str) -> str:
    """The text of docs/contracts.md from the line starting with `start` to the next blank line."""
    text = CONTRACTS.read_text(encoding="utf-8")
    at = text.index("\n" + start) + 1
    end = text.find("\n\n", at)
    return text[at:end if end >= 0 else len(text)]


def _names(start: str) -> list[str]:
    """The backquoted names after the paragraph's first ':'."""
    return re.findall(r"`([^`]+)`", _paragraph(start)[len(start):])


def test_json_fields_in_the_docs_are_the_format_fields():
    assert _names("`json` fields:") == list(F.JSON_FIELDS) + list(F.OPTIONAL_JSON_FIELDS)


def test_stats_error_and_index_names_in_the_docs_are_the_format_names():
    assert _names("Stats fields:") == list(F.STATS_FIELDS)
    timings = _names("Timings (`timings_s`):")
    assert timings == list(F.STAGES) + ["wall", "scores"]
    assert _names("Error fields (one errors.jsonl line):") == list(F.ERROR_FIELDS)
    assert _names("Index kind (`index.json` `__kind__`):") == [F.INDEX_KIND]
    assert _names("Run files in `--out`:") == [F.ERRORS, F.MANIFEST, F.INDEX]


def test_member_names_in_the_docs_are_the_format_members():
    table = _paragraph("| member | content |")
    members = re.findall(r"`<key>\.([^`]+)`", table)
    members += re.findall(r"/ `\.([^`]+)`", table)
    assert sorted(members) == sorted([F.REAL, F.CLS, F.JSON, *F.AUG_MEMBERS])


def test_shard_names_parse_back():
    for index in (0, 7, 9999, 10000):
        assert F.parse_shard_file(F.shard_name(index)) == (index, "tar")
        assert F.parse_shard_file(F.stats_name(index)) == (index, "json")
        assert F.shard_number(F.shard_name(index)) == index
    assert F.parse_shard_file(".shard-0000.tar.tmp") is None and not F.is_stats_file("manifest.json")


def test_is_remote_is_one_rule():
    for url in ("http://h/x.tar", "https://h/x.tar", "s3://b/x.tar", "gs://b/x.tar", "pipe:cat x.tar"):
        assert F.is_remote(url), url
    for path in ("/data/x.tar", "x.tar", "rel/shard-{0000..0003}.tar"):
        assert not F.is_remote(path), path


def test_members_group_like_webdataset():
    members = [("a/k1.real.jpg", 1), ("a/k1.JSON", 2), ("a/k2.json", 3), (".hidden", 4), ("noext", 5), ("k3.cls", 6)]
    assert list(F.group_members(members)) == [("a/k1", {"real.jpg": 1, "json": 2}), ("a/k2", {"json": 3}),
                                              ("k3", {"cls": 6})]
    assert list(F.group_members(members[:2], lower=False)) == [("a/k1", {"real.jpg": 1, "JSON": 2})]


def test_a_build_writes_exactly_the_format(tmp_path):
    from imagefactory import make_image_folder

    from genaug.testing import editors

    make_image_folder(tmp_path / "images", n=5, odd=False)
    out = tmp_path / "out"
    run_build(editors.build_config(out, tmp_path / "images", shard_size=3, batch_size=2, options={"amplitude": 0}))
    tars = F.find_shards(out)
    assert [t.name for t in tars] == [F.shard_name(0), F.shard_name(1)]
    for tar in tars:
        stats = json.loads((out / F.stats_name(F.shard_number(tar))).read_text())
        assert sorted(stats) == sorted(F.STATS_FIELDS)
        assert sorted(stats["timings_s"]) == sorted([*F.STAGES, "wall"])
        for key, fields in F.iter_tar_samples(str(tar)):
            assert set(fields) - {F.CLS} == {F.REAL, F.JSON, F.aug_member("jpg")}, key
            assert sorted(json.loads(fields[F.JSON])) == sorted(F.JSON_FIELDS)
        with tarfile.open(tar) as handle:
            assert all(F.split_member(m.name) for m in handle.getmembers())
    index = json.loads((out / F.INDEX).read_text())
    assert F.is_index_document(index) and F.index_urls(index, out) == [str(t) for t in tars]
