"""Weight resolution: cache layout, downloads from a local HTTP server, checksums, tarball members,
--weights overrides and the missing-file error."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import random
import tarfile
import threading
from pathlib import Path

import pytest

from genaug import weights
from genaug.registry import Preset, WeightFile


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Serve a folder on 127.0.0.1; yields (folder, base_url)."""
    root = tmp_path_factory.mktemp("served")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # keep test output quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _preset(*files: WeightFile, name: str = "test-preset") -> Preset:
    return Preset(name=name, method="mask", description="test", files=tuple(files), build=lambda ctx: None)


def _tarball(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def test_home_defaults_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GENAUG_HOME", str(tmp_path / "h"))
    assert weights.genaug_home() == tmp_path / "h"
    assert weights.preset_dir(_preset()) == tmp_path / "h" / "test-preset"
    monkeypatch.delenv("GENAUG_HOME")
    assert weights.genaug_home() == Path.home() / ".cache" / "genaug"


def test_download_places_file_and_records_sha(server):
    root, url = server
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read blocks
    (root / "a.bin").write_bytes(data)
    preset = _preset(WeightFile("a", "a.bin", url + "a.bin", _sha(data)))
    resolved = weights.resolve(preset, download=True)
    path = resolved.paths["a"]
    assert path == weights.preset_dir(preset) / "a.bin"
    assert path.read_bytes() == data
    assert resolved.sha256 == {"a.bin": _sha(data)}
    assert not list(path.parent.glob("*.part")), "temp files must not be left behind"


def test_checksum_mismatch_leaves_nothing(server):
    root, url = server
    (root / "b.bin").write_bytes(b"not what was pinned")
    preset = _preset(WeightFile("b", "b.bin", url + "b.bin", "0" * 64))
    with pytest.raises(weights.WeightsError, match="checksum mismatch"):
        weights.resolve(preset, download=True)
    assert not (weights.preset_dir(preset) / "b.bin").exists()
    assert not list(weights.preset_dir(preset).glob(".download-*"))


def test_present_file_with_wrong_pinned_sha_is_refused(tmp_path):
    preset = _preset(WeightFile("c", "c.bin", "http://127.0.0.1:9/c.bin", _sha(b"right")))
    folder = weights.preset_dir(preset)
    folder.mkdir(parents=True)
    (folder / "c.bin").write_bytes(b"wrong")
    with pytest.raises(weights.WeightsError, match="checksum mismatch"):
        weights.resolve(preset, download=False)


def test_missing_offline_names_url_and_path(monkeypatch):
    monkeypatch.setenv("GENAUG_OFFLINE", "1")
    preset = _preset(WeightFile("d", "d.bin", "http://127.0.0.1:9/d.bin", None))
    with pytest.raises(weights.WeightsError) as err:
        weights.resolve(preset)
    text = str(err.value)
    assert "http://127.0.0.1:9/d.bin" in text
    assert str(weights.preset_dir(preset) / "d.bin") in text


def test_unreachable_url_names_url_and_path():
    preset = _preset(WeightFile("e", "e.bin", "http://127.0.0.1:9/e.bin", None))  # port 9: discard, closed
    with pytest.raises(weights.WeightsError, match="download failed") as err:
        weights.resolve(preset, download=True)
    assert str(weights.preset_dir(preset) / "e.bin") in str(err.value)


def test_every_missing_file_is_named_when_downloads_fail():
    files = [WeightFile("f", "f.bin", "http://127.0.0.1:9/f.bin", None),
             WeightFile("g", "g.bin", "http://127.0.0.1:9/g.bin", None),
             WeightFile("h", "h.bin", "http://127.0.0.1:9/h.tar.gz", None, archive_member="x/h.bin")]
    preset = _preset(*files)
    with pytest.raises(weights.WeightsError, match="download failed") as err:
        weights.resolve(preset, download=True)
    text = str(err.value)
    for wf in files:  # one error names every file: its URL and the exact path to put it at
        assert wf.url in text and str(weights.preset_dir(preset) / wf.filename) in text, text
    assert "x/h.bin" in text


def test_convert_names_every_missing_file(monkeypatch):
    from click.testing import CliRunner

    from genaug.cli.main import main
    from genaug.registry import REGISTRY

    files = [WeightFile("t", "t.bin", "http://127.0.0.1:9/t.bin", None),
             WeightFile("u", "u.bin", "http://127.0.0.1:9/u.bin", None)]
    preset = _preset(*files, name="test-convertible")
    REGISTRY.register_preset(preset)
    monkeypatch.setitem(weights.CONVERTERS, preset.name, lambda paths, out: None)
    try:
        result = CliRunner().invoke(main, ["convert", "--preset", preset.name])
    finally:
        REGISTRY.unregister_preset(preset.name)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    for wf in files:
        assert wf.url in result.output and str(weights.preset_dir(preset) / wf.filename) in result.output


def test_convert_of_a_damaged_file_is_a_clear_error(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from genaug.cli.main import main
    from genaug.registry import REGISTRY

    def converter(paths, out):
        raise KeyError("unexpected key in the weights_only unpickler")

    preset = _preset(WeightFile("t", "t.bin", "http://127.0.0.1:9/t.bin", None), name="test-convert-damaged")
    (tmp_path / "t.bin").write_bytes(b"damaged")
    REGISTRY.register_preset(preset)
    monkeypatch.setitem(weights.CONVERTERS, preset.name, converter)
    try:
        result = CliRunner().invoke(main, ["convert", "--preset", preset.name, "--weights", str(tmp_path),
                                           "--out", str(tmp_path / "c.pt")])
    finally:
        REGISTRY.unregister_preset(preset.name)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert str(tmp_path / "t.bin") in result.output and "check --weights" in result.output


def test_http_404_is_a_weights_error(server):
    _, url = server
    preset = _preset(WeightFile("f", "f.bin", url + "nope.bin", None))
    with pytest.raises(weights.WeightsError, match="nope.bin"):
        weights.resolve(preset, download=True)


def test_tarball_member_extracted_once_for_two_files(server):
    root, url = server
    g, s = os.urandom(1000), os.urandom(500)
    (root / "exp.tar.gz").write_bytes(_tarball({"exp/G_ema_best0.pth": g, "exp/state_dict_best0.pth": s}))
    preset = _preset(
        WeightFile("g", "G.pth", url + "exp.tar.gz", _sha(g), archive_member="exp/G_ema_best0.pth"),
        WeightFile("s", "S.pth", url + "exp.tar.gz", None, archive_member="exp/state_dict_best0.pth"),
    )
    resolved = weights.resolve(preset, download=True)
    assert resolved.paths["g"].read_bytes() == g and resolved.paths["s"].read_bytes() == s
    assert resolved.sha256["G.pth"] == _sha(g)
    assert sorted(p.name for p in weights.preset_dir(preset).iterdir() if not p.name.endswith(".json")) == [
        "G.pth", "S.pth"]


def test_tarball_link_member_is_refused(server):
    root, url = server
    link = tarfile.TarInfo("exp/evil.pth")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    (root / "evil.tar.gz").write_bytes(_tarball({}, [link]))
    preset = _preset(WeightFile("g", "G.pth", url + "evil.tar.gz", None, archive_member="exp/evil.pth"))
    with pytest.raises(weights.WeightsError, match="evil.pth"):
        weights.resolve(preset, download=True)
    assert not (weights.preset_dir(preset) / "G.pth").exists()


def test_archive_that_is_not_a_tarball(server):
    root, url = server
    (root / "page.tar.gz").write_bytes(b"<html>rate limited</html>")
    preset = _preset(WeightFile("g", "G.pth", url + "page.tar.gz", None, archive_member="exp/G.pth"))
    with pytest.raises(weights.WeightsError, match="not a readable tar archive"):
        weights.resolve(preset, download=True)
    assert not list(weights.preset_dir(preset).iterdir())


def test_sha_sidecar_is_reused_and_invalidated(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"one")
    assert weights.sha256_file(path) == _sha(b"one")
    sidecar = tmp_path / "w.bin.sha256.json"
    assert sidecar.is_file()
    text = sidecar.read_text().replace(_sha(b"one"), "f" * 64)  # a cached value is trusted ...
    sidecar.write_text(text)
    assert weights.sha256_file(path) == "f" * 64
    path.write_bytes(b"two!")  # ... until size/mtime change
    assert weights.sha256_file(path) == _sha(b"two!")


def test_override_folder_file_and_errors(tmp_path):
    two = _preset(
        WeightFile("g", "G.pth", "http://x/exp.tar.gz", None, archive_member="exp/G_ema_best0.pth"),
        WeightFile("swav", "swav.tar", "http://x/swav.tar", None),
    )
    folder = tmp_path / "w"
    (folder / "exp").mkdir(parents=True)
    (folder / "exp" / "G_ema_best0.pth").write_bytes(b"g")  # found by archive member path
    (folder / "swav.tar").write_bytes(b"s")
    resolved = weights.resolve(two, override=folder)
    assert resolved.paths == {"g": folder / "exp" / "G_ema_best0.pth", "swav": folder / "swav.tar"}
    with pytest.raises(weights.WeightsError, match="needs 2 files"):
        weights.resolve(two, override=folder / "swav.tar")
    (folder / "swav.tar").unlink()
    with pytest.raises(weights.WeightsError, match="swav.tar"):
        weights.resolve(two, override=folder)
    with pytest.raises(weights.WeightsError, match="no such file or folder"):
        weights.resolve(two, override=tmp_path / "absent")
    one = _preset(WeightFile("only", "only.bin", "http://x/only.bin", None))
    assert weights.resolve(one, override=folder / "exp" / "G_ema_best0.pth").paths == {
        "only": folder / "exp" / "G_ema_best0.pth"}


def test_converted_file_preferred_when_registered(tmp_path, monkeypatch):
    preset = _preset(WeightFile("a", "a.bin", "http://127.0.0.1:9/a.bin", None), name="conv-preset")
    monkeypatch.setitem(weights.CONVERTERS, "conv-preset", lambda paths, out: None)
    conv = weights.converted_path(preset)
    conv.parent.mkdir(parents=True)
    conv.write_bytes(b"converted")
    assert weights.resolve(preset, download=False).paths == {weights.CONVERTED_NAME: conv}
    with pytest.raises(weights.WeightsError, match="a.bin"):  # convert itself reads the official files
        weights.resolve(preset, download=False, use_converted=False)
    single = tmp_path / "mine.pt"
    single.write_bytes(b"x")
    two = _preset(WeightFile("a", "a", "u", None), WeightFile("b", "b", "u2", None), name="conv-preset")
    assert weights.resolve(two, override=single).paths == {weights.CONVERTED_NAME: single}
    status = weights.status(preset)
    assert status["converted"] == str(conv) and status["ready"] and not status["files"][0]["present"]


def test_file_shared_between_presets_is_reused():
    from genaug.registry import REGISTRY

    i256, i64 = REGISTRY.preset("icgan-imagenet256"), REGISTRY.preset("icgan-imagenet64")
    for preset in (i256, i64):
        weights.preset_dir(preset).mkdir(parents=True)
    (weights.preset_dir(i256) / "swav_800ep_pretrain.pth.tar").write_bytes(b"swav")
    (weights.preset_dir(i64) / "G_ema_best0.pth").write_bytes(b"g64")
    resolved = weights.resolve(i64, download=False)
    assert resolved.paths["swav"] == weights.preset_dir(i256) / "swav_800ep_pretrain.pth.tar"
    assert resolved.paths["generator"] == weights.preset_dir(i64) / "G_ema_best0.pth"
    with pytest.raises(weights.WeightsError, match="G_ema_best0.pth"):  # generators differ per preset
        weights.resolve(REGISTRY.preset("icgan-imagenet128"), download=False)


def _rewrite_keeping_size_and_mtime(path, data: bytes) -> None:
    before = path.stat()
    assert len(data) == before.st_size
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # what `touch -r` or a careful tool does


@pytest.mark.parametrize("pinned", [True, False])
def test_an_in_place_rewrite_that_keeps_size_and_mtime_is_never_missed(tmp_path, pinned):
    path = tmp_path / "w.bin"
    path.write_bytes(b"good")
    preset = _preset(WeightFile("w", "w.bin", "http://x/w.bin", _sha(b"good") if pinned else None))
    assert weights.resolve(preset, override=path).sha256 == {"w.bin": _sha(b"good")}
    weights.sha256_file(path)  # a sidecar from an earlier `genaug models` / unpinned use
    _rewrite_keeping_size_and_mtime(path, b"evil")
    if pinned:
        with pytest.raises(weights.WeightsError, match="checksum mismatch"):
            weights.resolve(preset, override=path)
    else:
        assert weights.resolve(preset, override=path).sha256 == {"w.bin": _sha(b"evil")}
    assert weights.sha256_file(path) == _sha(b"evil")


@pytest.mark.parametrize("where", ["override-file", "override-folder"])
def test_nothing_is_written_beside_a_refused_file(tmp_path, where):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"bad")
    preset = _preset(WeightFile("w", "w.bin", "http://x/w.bin", _sha(b"good")))
    with pytest.raises(weights.WeightsError, match="checksum mismatch"):
        weights.resolve(preset, override=folder / "w.bin" if where == "override-file" else folder)
    assert sorted(p.name for p in folder.iterdir()) == ["w.bin"]


def test_a_pinned_download_leaves_no_sidecar_of_a_refused_file(server):
    root, url = server
    (root / "bad.bin").write_bytes(b"tampered")
    preset = _preset(WeightFile("w", "w.bin", url + "bad.bin", _sha(b"original")))
    with pytest.raises(weights.WeightsError):
        weights.resolve(preset, download=True)
    assert not list(weights.preset_dir(preset).iterdir())


@pytest.mark.parametrize("payload", [random.Random(0).randbytes(2000), b"\x80\x04\x95" + random.Random(1).randbytes(64),
                                     b"PK\x03\x04junk"], ids=["random", "pickle-head", "zip-head"])
def test_load_errors_never_repeat_torchs_weights_only_false_advice(tmp_path, payload):
    import torch

    path = tmp_path / "w.pth"
    path.write_bytes(payload)
    with pytest.raises(Exception) as err:  # noqa: PT011 (whatever torch raises for this payload)
        torch.load(path, map_location="cpu", weights_only=True)
    from genaug.checkpoint import reason

    text = reason(err.value)
    assert "weights_only" not in text and "False" not in text and "will likely succeed" not in text
