"""The sample json keeps what the input said about each sample (issue 11): input-side text and JSON
fields of shard samples under ``source_meta`` (img2dataset captions and URLs, ImageNet's ``filename``),
and ``source_rel``, the source relative to --data, beside the absolute ``source``."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from imagefactory import jpeg_bytes, make_file_list, make_image_folder, make_imagenet_folder

from genaug.build.config import BuildConfig
from genaug.build.pipeline import run_build
from genaug.build.sources.shards import META_MAX_BYTES
from genaug.testing import editors

pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


def _build(tmp_path, data) -> dict[str, dict]:
    out = tmp_path / "out"
    run_build(BuildConfig(method=editors.METHOD, out=out, data=(str(data),), shard_size=8, batch_size=4,
                          num_workers=0))
    return {key: json.loads(s["json"]) for key, s in editors.read_samples(out).items()}


def _tar(path: Path, samples: list[dict[str, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, fields in enumerate(samples):
            for field, data in fields.items():
                info = tarfile.TarInfo(f"{i:09d}.{field}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_img2dataset_caption_and_json_are_kept(tmp_path):
    meta = {"url": "https://example.com/a.jpg", "caption": "a red bus", "status": "success", "width": 64}
    _tar(tmp_path / "00000.tar", [
        {"jpg": jpeg_bytes(64, 48, seed=1), "txt": "a red bus\n".encode(), "json": json.dumps(meta).encode()},
        {"jpg": jpeg_bytes(64, 48, seed=2), "txt": "caf\u00e9 \u2615".encode()},
        {"jpg": jpeg_bytes(64, 48, seed=3)},
    ])
    docs = _build(tmp_path, tmp_path / "00000.tar")
    assert docs["000000000"]["source_meta"] == {"txt": "a red bus\n", "json": meta}
    assert docs["000000001"]["source_meta"] == {"txt": "caf\u00e9 \u2615"}
    assert "source_meta" not in docs["000000002"]
    assert docs["000000000"]["source"].endswith("00000.tar#000000000")
    assert docs["000000000"]["source_rel"] == "00000.tar#000000000"


def test_imagenet_filename_json_odd_fields_and_large_ones(tmp_path):
    _tar(tmp_path / "in.tar", [
        {"jpeg": jpeg_bytes(64, 48, seed=1), "cls": b"3", "json": b'{"filename": "n01440764_10026.JPEG"}'},
        {"jpeg": jpeg_bytes(64, 48, seed=2), "cls": b"4", "json": b"{not json", "caption.txt": b"x",
         "big.txt": b"y" * (META_MAX_BYTES + 1), "npy": b"\x93NUMPY binary is not kept"},
    ])
    docs = _build(tmp_path, tmp_path / "in.tar")
    assert docs["000000000"]["source_meta"] == {"json": {"filename": "n01440764_10026.JPEG"}}
    assert docs["000000001"]["source_meta"] == {"json": "{not json", "caption.txt": "x",
                                                "big.txt": {"omitted_bytes": META_MAX_BYTES + 1}}


def test_source_rel_of_folders_and_lists(tmp_path):
    folder = make_image_folder(tmp_path / "imgs", n=4, odd=False)
    docs = _build(tmp_path / "a", folder["root"])
    for doc in docs.values():
        assert Path(doc["source"]).is_absolute()
        assert doc["source_rel"] == Path(doc["source"]).relative_to(folder["root"]).as_posix()
    inet = make_imagenet_folder(tmp_path / "inet", n_classes=2, per_class=2, odd=False, broken=False)
    docs = _build(tmp_path / "b", inet["train"])
    assert sorted(d["source_rel"] for d in docs.values()) == sorted(
        p.relative_to(inet["train"]).as_posix() for p in inet["good"])
    listed = make_file_list(tmp_path / "list", n=3)
    docs = _build(tmp_path / "c", listed["list"])
    assert sorted(d["source_rel"] for d in docs.values()) == sorted(f"imgs/{Path(d['source']).name}"
                                                                    for d in docs.values())
