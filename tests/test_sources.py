"""Sources: kind detection, deterministic streaming order, labels, key rules, file lists, shards."""

import hashlib
import logging
import os
import re
import shutil
import tarfile

import pytest
from imagefactory import jpeg_bytes, make_file_list, make_image_folder, make_imagenet_folder, make_wds_shards

from genaug.build.preprocess import BadInput, prepare
from genaug.build.sources import SourceError, SourceItem, open_source, read_item_bytes
from genaug.build.sources import base as sources
from genaug.build.sources.base import path_key

KEY_RULE = re.compile(r"[A-Za-z0-9_-]+")


def _check_keys(items):
    keys = [item.key for item in items]
    assert len(set(keys)) == len(keys), "keys must be unique"
    assert all(KEY_RULE.fullmatch(k) for k in keys), keys
    assert [item.index for item in items] == list(range(len(items)))


def test_imagenet_folder_labels_wnids_order_and_keys(tmp_path):
    made = make_imagenet_folder(tmp_path, n_classes=3, per_class=4)
    source = open_source(str(made["train"]))
    items = list(source)
    assert source.kind == "imagenet-folder" and source.labelled
    assert [item.source for item in items] == [str(p) for p in made["files"]]  # ignored files left out
    assert [item.label for item in items] == [made["labels"][p] for p in made["files"]]
    assert [item.wnid for item in items] == [p.parent.name for p in made["files"]]
    _check_keys(items)
    first = made["train"] / made["wnids"][0] / f"{made['wnids'][0]}_1000.JPEG"
    assert items[0].key == f"{made['wnids'][0]}_1000" and items[0].source == str(first)
    assert all(item.data is None for item in items)


def test_every_bad_file_and_nothing_else_is_rejected(tmp_path):
    made = make_imagenet_folder(tmp_path)
    rejected = {}
    for item in open_source(str(made["train"])):
        try:
            prepare(read_item_bytes(item), 16)
        except BadInput as err:
            rejected[item.source] = str(err)
    assert set(rejected) == {str(p) for p in made["skipped"]}
    assert all(rejected.values())


def test_imagenet_key_falls_back_to_hashed_path_for_generic_names(tmp_path):
    for wnid in ("cat", "dog"):
        (tmp_path / wnid).mkdir()
        for name in ("001.jpg", "001.png", f"{wnid}_x.jpg"):
            (tmp_path / wnid / name).write_bytes(jpeg_bytes(20, 20))
    items = list(open_source(str(tmp_path)))
    assert [i.label for i in items] == [0, 0, 0, 1, 1, 1]
    _check_keys(items)
    assert items[0].key == path_key("cat/001.jpg") and items[2].key == "cat_x"


def test_parent_of_class_folders_is_a_plain_image_folder(tmp_path):
    made = make_imagenet_folder(tmp_path, odd=False, broken=False)
    source = open_source(str(tmp_path))
    assert source.kind == "image-folder" and not source.labelled
    assert [i.source for i in source] == [str(p) for p in made["files"]]
    forced = open_source(str(made["train"]), kind="image-folder")
    assert forced.kind == "image-folder" and {i.label for i in forced} == {None}


def test_image_folder_order_keys_and_determinism(tmp_path):
    made = make_image_folder(tmp_path / "a", n=10, broken=True)
    items = list(open_source(str(made["root"])))
    assert [i.source for i in items] == [str(p) for p in made["files"]]  # sorted walk, depth first
    _check_keys(items)  # "x y.jpg", "x_y.jpg", "x/y.jpg" and "a/img_1.jpeg|png" all distinct
    assert {i.label for i in items} == {None}
    shutil.copytree(made["root"], tmp_path / "copy")
    again = list(open_source(str(tmp_path / "copy")))
    assert [i.key for i in again] == [i.key for i in items]  # keys depend on relative paths only


def test_path_key_scheme():
    digest = hashlib.blake2b(b"a b/photo.v2.jpg", digest_size=5).hexdigest()
    assert path_key("a b/photo.v2.jpg") == f"a_b_photo_v2-{digest}"
    assert path_key("x.jpg") != path_key("x.png")
    long_key = path_key("d" * 200 + "/tail.jpg")
    assert len(long_key) <= 71 and long_key.startswith("d") and "_tail-" in long_key
    assert KEY_RULE.fullmatch(path_key("日本/写真.jpg"))


def test_iteration_streams_one_folder_at_a_time(tmp_path, monkeypatch):
    for d in range(5):
        (tmp_path / f"d{d}").mkdir()
        (tmp_path / f"d{d}" / "sub").mkdir()
        (tmp_path / f"d{d}" / "sub" / "i.jpg").write_bytes(jpeg_bytes(20, 20))
    source = open_source(str(tmp_path))
    listed = []
    real_scandir = os.scandir

    def counting_scandir(path):
        listed.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(sources.os, "scandir", counting_scandir)
    first = next(iter(source))
    assert first.source.endswith(os.path.join("d0", "sub", "i.jpg"))
    assert len(listed) == 3  # root, d0, d0/sub: nothing else listed before the first item


def test_missing_path_is_a_source_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(SourceError, match=str(missing)):
        open_source(str(missing))
    assert issubclass(SourceError, ValueError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no image files"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="kind"):
        open_source(str(tmp_path), kind="shards")
    (tmp_path / "one.jpg").write_bytes(jpeg_bytes())
    with pytest.raises(SourceError, match="single image"):
        open_source(str(tmp_path / "one.jpg"))
    (tmp_path / "binary.lst").write_bytes(jpeg_bytes())
    with pytest.raises(SourceError, match="not a UTF-8"):
        open_source(str(tmp_path / "binary.lst"))


@pytest.mark.parametrize("header,absolute", [(False, False), (True, False), (True, True)])
def test_file_list_labelled(tmp_path, header, absolute):
    made = make_file_list(tmp_path, n=5, header=header, absolute=absolute)
    source = open_source(str(made["list"]))
    items = list(source)
    assert source.kind == "file-list" and source.labelled
    assert [i.source for i in items] == [str(p) for p in made["files"]]
    assert [i.label for i in items] == made["labels"]
    _check_keys(items)
    assert read_item_bytes(items[0]) == made["files"][0].read_bytes()


def test_file_list_unlabelled_comments_and_repeats(tmp_path):
    made = make_file_list(tmp_path, n=2, labelled=False, header=True)
    rel = made["lines"][1]
    made["list"].write_text(f"path\n# a comment\n\n{rel}\n{rel}\n")
    items = list(open_source(str(made["list"])))
    assert [i.label for i in items] == [None, None]
    assert items[0].source == items[1].source and items[0].key != items[1].key


@pytest.mark.parametrize("text,match", [
    ("a.jpg,1\nb.jpg,cat\n", "line 2: label 'cat'"),
    ("a.jpg,cat\n", "line 1: label 'cat'"),
    ("a.jpg,1\nb.jpg,-3\n", "line 2: label '-3'"),
    ("a.jpg,1,2\n", "line 1: expected"),
    ("a.jpg,1\nb.jpg\n", "some lines have a label"),
    ("# only a comment\n", "no entries"),
])
def test_file_list_errors_name_the_line(tmp_path, text, match):
    listing = tmp_path / "list.csv"
    listing.write_text(text)
    with pytest.raises(SourceError, match=match):
        open_source(str(listing))


def test_file_list_missing_file_is_bad_input(tmp_path):
    (tmp_path / "list.txt").write_text("gone.jpg\n")
    (item,) = list(open_source(str(tmp_path / "list.txt")))
    with pytest.raises(BadInput, match="cannot read"):
        read_item_bytes(item)


def test_tsv_list(tmp_path):
    made = make_file_list(tmp_path, n=3, labelled=False)
    (tmp_path / "l.tsv").write_text("".join(f"{line}\t{i}\n" for i, line in enumerate(made["lines"])))
    assert [i.label for i in open_source(str(tmp_path / "l.tsv"))] == [0, 1, 2]


def test_shards_pattern_list_and_single_tar(tmp_path):
    made = make_wds_shards(tmp_path, n_shards=3, per_shard=4)
    for data in (made["pattern"], made["urls"], [made["pattern"]]):
        source = open_source(data)
        items = list(source)
        assert source.kind == "shards" and source.labelled
        assert [i.key for i in items] == made["keys"]
        assert [i.label for i in items] == made["labels"]
        assert [i.data for i in items] == [made["images"][k] for k in made["keys"]]
        assert items[0].source == f"{made['urls'][0]}#{made['keys'][0]}" and items[0].wnid == "n01440764"
        _check_keys(items)
    single = list(open_source(made["urls"][1]))
    assert [i.key for i in single] == made["keys"][4:8] and single[0].index == 0


def test_shards_png_unlabelled_and_missing(tmp_path):
    made = make_wds_shards(tmp_path, n_shards=1, per_shard=3, field="png", with_cls=False)
    source = open_source(made["pattern"])
    assert not source.labelled
    assert [prepare(read_item_bytes(i), 16).meta["orig_format"] for i in source] == ["PNG"] * 3
    with pytest.raises(SourceError, match="imagenet1k-train-0001.tar"):
        open_source(made["pattern"].replace("0000}", "0001}"))


def test_shard_sample_without_image_is_bad_input(tmp_path):
    path = tmp_path / "in.tar"
    with tarfile.open(path, "w") as tar:
        for name in ("a.cls", "sub/b.jpg", "sub/b.cls"):
            member = tmp_path / name.replace("/", "_")
            member.write_bytes(b"1" if name.endswith("cls") else jpeg_bytes(20, 20))
            tar.add(member, arcname=name)
    items = list(open_source(str(path)))
    assert [i.source.split("#")[1] for i in items] == ["a", "sub/b"]
    assert items[1].key == sources.slug_key("sub/b") and items[1].label == 1
    with pytest.raises(BadInput, match="no image bytes"):
        read_item_bytes(items[0])


def test_default_source_env_then_bundled_samples(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="genaug.build.sources")
    samples = open_source(None)
    assert samples.kind == "samples" and not samples.labelled
    items = list(samples)
    assert len(items) >= 6 and all(i.source.endswith(".jpg") for i in items)
    assert all(prepare(read_item_bytes(i), 64).image.shape == (64, 64, 3) for i in items)
    assert "bundled sample photos" in caplog.text
    made = make_image_folder(tmp_path, n=3, odd=False)
    monkeypatch.setenv("GENAUG_DATA", str(made["root"]))
    assert open_source(None).kind == "image-folder"
    assert "GENAUG_DATA" in caplog.text


def test_read_item_bytes(tmp_path):
    empty = tmp_path / "e.jpg"
    empty.write_bytes(b"")
    with pytest.raises(BadInput, match="zero-byte"):
        read_item_bytes(SourceItem(0, "e", str(empty), None, None, None))
    assert read_item_bytes(SourceItem(0, "k", "unused#k", None, None, b"abc")) == b"abc"
