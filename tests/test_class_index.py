"""ImageNet-1k class indices: what class-conditional editors are given, for every kind of source.

Class folders keep label = folder position (json `label`, `cls`), but the editor gets the ImageNet-1k
index of the folder's wnid (json `class_index`); list and shard labels are taken as ImageNet-1k indices.
"""

import io
import json

import numpy as np
import pytest
from imagefactory import jpeg_bytes, make_wds_shards
from PIL import Image

from genaug.build.config import ConfigError
from genaug.build.pipeline import BuildConfig, BuildError, run_build
from genaug.build.preprocess import prepare
from genaug.build.sources import open_source
from genaug.build.sources.imagenet import as_imagenet1k_index, imagenet1k_index, imagenet1k_wnids
from genaug.testing import editors

SUBSET = {"n01440764": 0, "n02123045": 281}  # tench, tabby cat: their ImageNet-1k indices
PER_CLASS = 2


pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


def _class_folders(root, names, per_class=PER_CLASS):
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{name}_{i}.JPEG").write_bytes(jpeg_bytes(40, 36, seed=10 * c + i))
    return root


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    return _class_folders(tmp_path_factory.mktemp("subset") / "train", sorted(SUBSET))


def _build(data, out, **kw):
    return run_build(editors.build_config(out, data, **{"batch_size": 3, "seed": 1, "options": {"amplitude": 0},
                                                         **kw}))


def _metas(out):
    return {key: (json.loads(s["json"]), s) for key, s in editors.read_samples(out).items()}


def test_imagenet1k_index_uses_the_sorted_wnid_order():
    wnids = imagenet1k_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids) and wnids[-1] == "n15075141"
    assert {w: imagenet1k_index(w) for w in SUBSET} == SUBSET
    assert imagenet1k_index("n15075141") == 999
    assert imagenet1k_index("cats") is None and imagenet1k_index("n00000001") is None
    assert imagenet1k_index(None) is None
    assert [as_imagenet1k_index(v) for v in (None, 0, 999, 1000, -1)] == [None, 0, 999, None, None]


def test_sources_give_class_index(subset, tmp_path):
    items = list(open_source(str(subset)))
    assert [(i.wnid, i.label, i.class_index) for i in items] == [
        ("n01440764", 0, 0)] * PER_CLASS + [("n02123045", 1, 281)] * PER_CLASS
    other = _class_folders(tmp_path / "other", ["cats", "dogs"], per_class=1)
    assert [(i.label, i.class_index) for i in open_source(str(other))] == [(0, None), (1, None)]
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(40, 36))
    (tmp_path / "list.csv").write_text("a.jpg,281\na.jpg,1500\n")
    assert [(i.label, i.class_index) for i in open_source(str(tmp_path / "list.csv"))] == [(281, 281), (1500, None)]
    shards = make_wds_shards(tmp_path / "shards", n_shards=1, per_shard=3)
    assert [(i.label, i.class_index) for i in open_source(shards["pattern"])] == [(v, v) for v in shards["labels"]]


def test_subset_class_folders_condition_on_the_imagenet1k_class(subset, tmp_path):
    _build(subset, tmp_path / "o", options={"amplitude": 0, "class_source": "label"})
    seen = sorted((m["wnid"], m["label"], int(s["cls"]), m["class_index"], m["edit"]["label_seen"])
                  for m, s in _metas(tmp_path / "o").values())
    assert seen == [("n01440764", 0, 0, 0, 0)] * PER_CLASS + [("n02123045", 1, 1, 281, 281)] * PER_CLASS


def test_mask_editor_gets_the_imagenet1k_class(subset, tmp_path):
    _build(subset, tmp_path / "o", method="mask", preset="maskgit-tiny", options={"num_iter": 2})
    seen = sorted((m["wnid"], m["class_index"], m["edit"]["class_token"]) for m, _ in _metas(tmp_path / "o").values())
    assert seen == [("n01440764", 0, 0)] * PER_CLASS + [("n02123045", 281, 281)] * PER_CLASS


def test_non_wnid_class_folders_are_refused_before_work_when_labels_are_needed(tmp_path):
    data = _class_folders(tmp_path / "train", ["cats", "n01440764"], per_class=1)
    for method, preset, options, flag in (
        ("mask", "maskgit-tiny", {}, "--class-token"),
        (editors.METHOD, None, {"class_source": "label"}, "--class-source"),
    ):
        out = tmp_path / f"out-{method}"
        with pytest.raises(ConfigError) as info:
            _build(data, out, method=method, preset=preset, options=options)
        message = str(info.value)
        assert f"{flag} label" in message and "class folder 'cats'" in message and "ImageNet-1k wnid" in message
        assert not out.exists() or list(out.iterdir()) == []


def test_mask_messages_name_the_flag_to_add(tmp_path, monkeypatch):
    data = _class_folders(tmp_path / "train", ["cats"], per_class=1)
    with pytest.raises(ConfigError, match=r"add --class-token random \(or --class-token fixed:N\)"):
        _build(data, tmp_path / "o", method="mask", preset="maskgit-tiny", options={})
    monkeypatch.delenv("GENAUG_DATA", raising=False)  # no --data: the bundled (unlabelled) sample photos
    samples = BuildConfig(method="mask", preset="maskgit-tiny", out=tmp_path / "o")
    with pytest.raises(ConfigError, match=r"has no labels; add --class-token random \(or --class-token fixed:N\)"):
        run_build(samples)
    with pytest.raises(ConfigError, match=r"--mask-ratio applies to --mask random only"):  # probes keep the checks
        run_build(BuildConfig(method="mask", preset="maskgit-tiny", out=tmp_path / "o", options={"mask_ratio": 0.5}))


def test_non_wnid_class_folders_build_without_class_conditioning(tmp_path):
    data = _class_folders(tmp_path / "train", ["cats", "dogs"], per_class=1)
    _build(data, tmp_path / "o")
    seen = sorted((m["label"], m["class_index"], m["edit"]["label_seen"]) for m, _ in _metas(tmp_path / "o").values())
    assert seen == [(0, None, -1), (1, None, -1)]


def test_out_of_range_list_labels_are_skipped_with_a_reason(tmp_path):
    for i in range(4):
        (tmp_path / f"p{i}.jpg").write_bytes(jpeg_bytes(40, 36, seed=i))
    (tmp_path / "list.csv").write_text("p0.jpg,5\np1.jpg,1500\np2.jpg,999\np3.jpg,1000\n")
    summary = _build(tmp_path / "list.csv", tmp_path / "o", options={"amplitude": 0, "class_source": "label"})
    assert (summary.samples, summary.errors) == (2, 2)
    errors = [json.loads(line) for line in (tmp_path / "o" / "errors.jsonl").read_text().splitlines()]
    assert [e["path"].rsplit("/", 1)[1] for e in errors] == ["p1.jpg", "p3.jpg"]
    assert "label 1500 is not an ImageNet-1k class index (0..999)" in errors[0]["reason"]
    assert "--class-source label" in errors[0]["reason"]
    seen = sorted((m["label"], m["class_index"], m["edit"]["label_seen"]) for m, _ in _metas(tmp_path / "o").values())
    assert seen == [(5, 5, 5), (999, 999, 999)]
    # without an option that needs the class, every input is kept; the class index is unknown for 1500
    summary = _build(tmp_path / "list.csv", tmp_path / "all")
    assert (summary.samples, summary.errors) == (4, 0)
    seen = sorted((m["label"], m["class_index"]) for m, _ in _metas(tmp_path / "all").values())
    assert seen == [(5, 5), (999, 999), (1000, None), (1500, None)]


def test_editor_input_resample_reaches_the_decode_workers(subset, tmp_path):
    for resample in ("bilinear", "bicubic"):
        out = tmp_path / resample
        _build(subset, out, aug_format="png", options={"amplitude": 0, "input_resample": resample})
        for meta, sample in _metas(out).values():
            assert meta["resample"] == resample
            aug = np.asarray(Image.open(io.BytesIO(sample["aug.png"])).convert("RGB"))
            expected = 255 - prepare(sample["real.jpg"], editors.RESOLUTION, resample).image
            assert np.array_equal(aug, expected)
    bilinear, bicubic = (editors.read_samples(tmp_path / r) for r in ("bilinear", "bicubic"))
    assert any(bilinear[k]["aug.png"] != bicubic[k]["aug.png"] for k in bilinear)


def test_unknown_editor_input_resample_stops_before_work(subset, tmp_path):
    with pytest.raises(BuildError, match="input_resample resample='nearest'"):
        _build(subset, tmp_path / "o", options={"amplitude": 0, "input_resample": "nearest"})
    assert not list((tmp_path / "o").glob("shard-*"))
