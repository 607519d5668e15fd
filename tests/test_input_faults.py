"""Inputs a hostile user or an unlucky file system hands the build (issue 12): every folder entry the walk
cannot stat or read is recorded in errors.jsonl and the walk goes on, wherever it sits; oversized tar
members and files are recorded without being read; a gzip tar named .tar reads without a false
truncation line."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from imagefactory import jpeg_bytes, make_image_folder, make_imagenet_folder, make_wds_shards

from genaug import limits
from genaug.build.config import BuildConfig
from genaug.build.pipeline import run_build
from genaug.build.sources import base as sources
from genaug.build.sources import open_source
from genaug.format import iter_tar_stream
from genaug.inspect import inspect_shards
from genaug.testing import editors

pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_member_cap.py"


def _config(out, data, **kw) -> BuildConfig:
    base = dict(method=editors.METHOD, out=out, data=tuple(data), shard_size=4, batch_size=2, num_workers=0, seed=1)
    return BuildConfig(**{**base, **kw})


def _errors(out) -> dict[str, str]:
    lines = [json.loads(line) for line in (Path(out) / "errors.jsonl").read_text().splitlines()]
    return {Path(e["path"]).name: e["reason"] for e in lines}


def _loop(folder: Path, a: str, b: str) -> None:
    os.symlink(folder / b, folder / a)
    os.symlink(folder / a, folder / b)


# each maker puts one hostile entry into `folder`; returns (its name, the start of its recorded reason)
def _file_loop(folder):
    _loop(folder, "z_a.jpg", "z_b.jpg")
    return {"z_a.jpg": "cannot stat: Too many levels of symbolic links",
            "z_b.jpg": "cannot stat: Too many levels of symbolic links"}


def _first_loop(folder):
    _loop(folder, "0_a.jpg", "0_b.jpg")  # sorted first: the walk meets it before any image
    return {"0_a.jpg": "cannot stat: Too many levels", "0_b.jpg": "cannot stat: Too many levels"}


def _folder_loop(folder):
    _loop(folder, "m_dir", "m_dir2")  # names without an image suffix: it might be a folder
    return {"m_dir": "cannot stat: Too many levels", "m_dir2": "cannot stat: Too many levels"}


def _ancestor_link(folder):
    os.symlink(folder, folder / "up")  # a folder that links back to the root: followed once, then cut
    return {"up": "symlink loop"}


def _dangling(folder):
    os.symlink(folder / "gone.png", folder / "k.png")
    return {"k.png": "broken symlink"}


def _fifo(folder):
    os.mkfifo(folder / "pipe.jpg")  # reading it would block the build for ever
    return {"pipe.jpg": "not a regular file: a FIFO"}


def _socket(folder):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "sock.png"))
    return {"sock.png": "not a regular file: a socket"}


def _device(folder):
    os.symlink("/dev/zero", folder / "zero.jpg")  # a character device that never ends
    return {"zero.jpg": "not a regular file: a character device"}


MAKERS = [_file_loop, _first_loop, _folder_loop, _ancestor_link, _dangling, _fifo, _socket, _device]


@pytest.mark.parametrize("maker", MAKERS, ids=lambda m: m.__name__.strip("_"))
def test_a_hostile_entry_in_an_image_folder_is_recorded_and_the_walk_goes_on(tmp_path, maker):
    folder = make_image_folder(tmp_path / "imgs", n=5, odd=False)
    expected = maker(folder["root"])
    summary = run_build(_config(tmp_path / "o", [str(folder["root"])]))
    assert summary.samples == len(folder["good"])
    errors = _errors(tmp_path / "o")
    assert set(errors) == set(expected), errors
    for name, reason in expected.items():
        assert errors[name].startswith(reason), errors[name]


@pytest.mark.parametrize("maker", [_file_loop, _first_loop, _dangling, _fifo, _device],
                         ids=lambda m: m.__name__.strip("_"))
def test_a_hostile_entry_in_a_class_folder_is_recorded_and_labels_stay(tmp_path, maker):
    made = make_imagenet_folder(tmp_path / "inet", n_classes=2, per_class=3, odd=False, broken=False)
    class_dir = made["train"] / made["wnids"][1]
    expected = maker(class_dir)
    source = open_source(str(made["train"]))
    assert source.kind == "imagenet-folder"
    summary = run_build(_config(tmp_path / "o", [str(made["train"])]))
    assert summary.samples == len(made["good"])
    errors = _errors(tmp_path / "o")
    assert set(errors) == set(expected)
    labels = {Path(i.source).name: i.label for i in source}
    assert all(labels[name] == 1 for name in expected)


def test_a_hostile_entry_at_the_top_of_class_folders_makes_it_an_image_folder(tmp_path):
    made = make_imagenet_folder(tmp_path / "inet", n_classes=2, per_class=2, odd=False, broken=False)
    _loop(made["train"], "z_a.jpg", "z_b.jpg")  # an image-named entry at the top: not class folders
    assert open_source(str(made["train"])).kind == "image-folder"
    summary = run_build(_config(tmp_path / "o", [str(made["train"])]))
    assert summary.samples == len(made["good"]) and summary.errors == 2


@pytest.mark.parametrize("where", ["subfolder", "class-folder", "file"])
def test_permission_errors_are_recorded_and_the_walk_goes_on(tmp_path, monkeypatch, where):
    """Permission errors, simulated (tests run as root, where chmod does not stop reading)."""
    made = make_imagenet_folder(tmp_path / "inet", n_classes=3, per_class=2, odd=False, broken=False)
    locked = {"subfolder": made["train"] / made["wnids"][1] / "extra",
              "class-folder": made["train"] / made["wnids"][2],
              "file": made["good"][0]}[where]
    if where == "subfolder":
        (locked / "n.jpg").parent.mkdir()
        (locked / "n.jpg").write_bytes(jpeg_bytes(40, 40))
    real_scandir, real_stat = os.scandir, os.stat

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    def stat(path, *args, **kw):
        if where == "file" and Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kw)

    monkeypatch.setattr(sources.os, "scandir", scandir)
    monkeypatch.setattr(limits.os, "stat", stat)
    source = open_source(str(made["train"]))
    assert source.kind == "imagenet-folder" and len(source.classes) == 3  # labels do not depend on permissions
    summary = run_build(_config(tmp_path / "o", [str(made["train"])]))
    errors = _errors(tmp_path / "o")
    assert list(errors) == [locked.name] and "Permission denied" in errors[locked.name]
    lost = [p for p in made["good"] if locked in (p, *p.parents)]
    assert summary.samples == len(made["good"]) - len(lost)


def _sparse_tar(path: Path, big: int, field: str = "jpg") -> list[str]:
    """A tar whose first sample's `field` member is `big` bytes (a hole on disk), then 3 small samples."""
    with open(path, "wb") as raw:
        info = tarfile.TarInfo(f"big.{field}")
        info.size = big
        raw.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        raw.seek(-(-big // 512) * 512, io.SEEK_CUR)
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(3):
                data = jpeg_bytes(40, 40, seed=i)
                member = tarfile.TarInfo(f"s{i}.jpg")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    return [f"s{i}" for i in range(3)]


@pytest.mark.parametrize("limit,size", [(1000, 1001), (4096, 10_000_000), (limits.MAX_MEMBER_BYTES, None)])
def test_an_oversized_member_is_named_not_read(tmp_path, limit, size):
    size = limits.MAX_MEMBER_BYTES + 1 if size is None else size
    path = tmp_path / "in.tar"
    _sparse_tar(path, size)
    reads = []

    class Spy(io.FileIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    with Spy(path) as handle:
        samples = list(iter_tar_stream(handle, max_member_bytes=limit))
    assert [k for k, _ in samples] == ["big", "s0", "s1", "s2"]
    big = samples[0][1]
    assert dict(big) == {} and "over the" in big.oversized["jpg"] and str(size) in big.oversized["jpg"]
    assert max(n for n in reads if n is not None) < 1 << 21  # skipped in small blocks, never read whole


@pytest.mark.parametrize("field", ["jpg", "cls", "png", "aug.jpg"])
def test_an_oversized_member_of_an_input_shard_is_recorded_and_inspect_names_it(tmp_path, field):
    path = tmp_path / "in.tar"
    keys = _sparse_tar(path, limits.MAX_MEMBER_BYTES + 512, field)
    summary = run_build(_config(tmp_path / "o", [str(path)]))
    assert summary.samples == len(keys) and summary.errors == 1
    (reason,) = _errors(tmp_path / "o").values()
    assert f"tar member big.{field} is {limits.MAX_MEMBER_BYTES + 512} bytes" in reason and "not read" in reason
    if field == "aug.jpg":  # a genaug output field: inspect checks the sample and names the member
        problems = inspect_shards([str(path)], verify=True)["problems"]
        assert any(f"[big]: tar member big.aug.jpg is {limits.MAX_MEMBER_BYTES + 512} bytes" in p for p in problems)


def test_an_oversized_or_special_file_is_recorded_without_reading(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "imgs", n=3, odd=False)
    with open(folder["root"] / "huge.jpg", "wb") as handle:
        handle.truncate(1 << 20)  # sparse
    monkeypatch.setattr(limits, "MAX_MEMBER_BYTES", 1 << 19)
    summary = run_build(_config(tmp_path / "o", [str(folder["root"])]))
    assert summary.samples == 3
    assert _errors(tmp_path / "o")["huge.jpg"].startswith(f"the file is {1 << 20} bytes")


def test_the_pixel_limit_is_the_decompression_bomb_limit():
    from imagefactory import bomb_png_bytes
    from PIL import Image

    from genaug.build.preprocess import BadInput, open_image

    assert limits.MAX_IMAGE_PIXELS == 2 * Image.MAX_IMAGE_PIXELS  # Pillow's DecompressionBombError threshold
    with pytest.raises(BadInput, match="decompression bomb refused"):
        open_image(bomb_png_bytes())


def test_the_member_cap_benchmark_runs_and_prints_flat_memory():
    done = subprocess.run([sys.executable, str(BENCH), "--size-mib", "300"], capture_output=True, text=True,
                          timeout=300, check=True)
    assert "build-input  peak RSS" in done.stdout and "inspect      peak RSS" in done.stdout
    assert done.stdout.count("tar member huge.aug.jpg is 314572800 bytes") == 2, done.stdout


@pytest.mark.parametrize("name", ["gz-named.tar", "gz.tar.gz", "gz.tgz"])
def test_a_gzip_tar_reads_whole_without_a_truncation_line(tmp_path, name):
    made = make_wds_shards(tmp_path / "src", n_shards=1, per_shard=5)
    path = tmp_path / name
    path.write_bytes(gzip.compress(Path(made["urls"][0]).read_bytes(), mtime=0))
    summary = run_build(_config(tmp_path / "o", [str(path)]))
    assert summary.samples == 5 and summary.errors == 0
    assert (tmp_path / "o" / "errors.jsonl").read_text() == ""


def test_a_cut_gzip_tar_named_tar_is_still_recorded(tmp_path):
    made = make_wds_shards(tmp_path / "src", n_shards=1, per_shard=6)
    packed = gzip.compress(Path(made["urls"][0]).read_bytes(), mtime=0)
    path = tmp_path / "cut.tar"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    summary = run_build(_config(tmp_path / "o", [str(path)]))
    (reason,) = _errors(tmp_path / "o").values()
    assert reason.startswith("input shard truncated/corrupt") and summary.samples < 6


@pytest.mark.parametrize("n,shard_size", [(40, 4), (30, 8), (9, 1)])
def test_non_image_samples_make_empty_shards_that_the_summary_counts(tmp_path, n, shard_size):
    from click.testing import CliRunner

    from genaug.cli.main import main

    path = tmp_path / "text.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(n):
            data = f"caption {i}".encode()
            info = tarfile.TarInfo(f"s{i:05d}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["build", "--method", "test", "--data", str(path), "--out", str(out),
                                       "--shard-size", str(shard_size), "--num-workers", "0"])
    shards = -(-n // shard_size)
    assert result.exit_code == 1, result.output  # nothing written: the build says so
    assert f"{shards} shards (0 resumed, {shards} empty (every input skipped))" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["empty_shards"] == shards and manifest["counts"]["errors"] == n
    assert len((out / "errors.jsonl").read_text().splitlines()) == n
    assert len(json.loads((out / "index.json").read_text())["shardlist"]) == shards
