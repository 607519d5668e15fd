"""Weight files of the model presets: where they live, how they are fetched and checked.

Layout: ``<home>/<preset>/<filename>`` with ``<home>`` = ``$GENAUG_HOME`` (default ``~/.cache/genaug``).
A converted torch state dict (``genaug convert``) lives at ``<home>/<preset>/converted.pt`` and, when
present, replaces the official files of presets that registered a converter.

``--weights PATH`` overrides the cache:
  * a folder: every file of the preset is looked up in it by its file name (for archive members also by
    the member path inside the archive, e.g. ``icgan_biggan_imagenet_res256/G_ema_best0.pth``, and by
    the member's base name); a ``converted.pt`` in the folder wins for convertible presets;
  * a file: allowed for presets with a single weight file, or for a converted ``.pt`` file of a
    convertible preset.

Downloads go to a temporary name beside the target, are checked against the pinned sha256 when one is
known, and are renamed into place only when complete. The sha256 of every file used is recorded. Files
with a pinned sha256 are hashed from their bytes at every use (no cache, no sidecar); other files' sha256
is cached in a ``<file>.sha256.json`` sidecar keyed by inode, size, mtime and ctime (so large files are
hashed once and an in-place rewrite is never missed). Nothing is written beside a file whose checksum is refused.
Set ``GENAUG_OFFLINE=1`` to forbid downloads.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Mapping

from tqdm import tqdm

from genaug.hashing import file_digest
from genaug.methods.catalog import CONVERTERS as BUILTIN_CONVERTERS
from genaug.registry import CONVERTED_NAME, Preset, WeightFile

log = logging.getLogger(__name__)

CONVERTED_FILENAME = "converted.pt"  # its file name in the preset folder
_CHUNK = 1 << 20  # read/hash block size in bytes
_DOWNLOAD_TIMEOUT_S = 60  # socket timeout of one read

# preset name -> function(resolved official weights, output path) writing a converted state dict
CONVERTERS: dict[str, Callable[[Mapping[str, Path], Path], None]] = dict(BUILTIN_CONVERTERS)


class WeightsError(RuntimeError):
    """A weight file is missing, cannot be downloaded, or has the wrong checksum."""


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    paths: dict[str, Path]  # WeightFile.name (or CONVERTED_NAME) -> local file
    sha256: dict[str, str]  # file name -> sha256 of the file used


def register_converter(preset_name: str, fn: Callable[[Mapping[str, Path], Path], None]) -> None:
    """Declare that `preset_name` can be converted to a torch state dict by `fn` (see `genaug convert`)."""
    CONVERTERS[preset_name] = fn


def genaug_home() -> Path:
    """$GENAUG_HOME, else ~/.cache/genaug."""
    env = os.environ.get("GENAUG_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genaug"


def preset_dir(preset: Preset) -> Path:
    return genaug_home() / preset.name


def converted_path(preset: Preset) -> Path:
    return preset_dir(preset) / CONVERTED_FILENAME


def offline() -> bool:
    return os.environ.get("GENAUG_OFFLINE", "").strip().lower() in ("1", "true", "yes")


# ---- checksums ---------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """sha256 of `path`, cached in a ``<file>.sha256.json`` sidecar keyed by (device, inode, size, mtime_ns,
    ctime_ns): a rewrite in place that keeps size and mtime (touch -r, os.utime) still changes the ctime,
    which no user call can set back, so a stale sidecar is never used."""
    path = Path(path)
    stat = path.stat()
    sidecar = _sidecar(path)
    key = _cache_key(stat)
    try:
        cached = json.loads(sidecar.read_text())
        if {k: cached.get(k) for k in key} == key and isinstance(cached.get("sha256"), str):
            return cached["sha256"]
    except (OSError, ValueError):
        pass  # no usable sidecar: hash below
    value = hash_bytes(path)
    _write_sidecar(path, stat, value)
    return value


def hash_bytes(path: Path) -> str:
    """sha256 of the bytes of `path`, read now (no cache)."""
    return file_digest(path, "sha256")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _cache_key(stat: os.stat_result) -> dict:
    return {"dev": stat.st_dev, "ino": stat.st_ino, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "ctime_ns": stat.st_ctime_ns}


def _write_sidecar(path: Path, stat: os.stat_result, value: str) -> None:
    try:
        _sidecar(path).write_text(json.dumps({**_cache_key(stat), "sha256": value}))
    except OSError as err:  # read-only folder: fine, just not cached
        log.debug("cannot cache sha256 of %s: %s", path, err)


def _check_sha(path: Path, expected: str | None, url: str) -> str:
    """The sha256 of `path`. A pinned file (`expected` set) is hashed from its bytes every time: no cached
    value is used and nothing is written beside it. An unpinned one uses the sidecar cache."""
    if expected is None:
        return sha256_file(path)
    actual = hash_bytes(path)
    if actual != expected.lower():
        raise WeightsError(
            f"checksum mismatch for {path}: sha256 {actual}, expected {expected} (from {url}). "
            f"Delete the file and run again to re-download it, or fetch it yourself from {url}."
        )
    return actual


# ---- resolution ----------------------------------------------------------------------------------
def resolve(preset: Preset, override: str | Path | None = None, download: bool | None = None,
            use_converted: bool = True) -> ResolvedWeights:
    """Local paths (and sha256) of the files `preset` needs; downloads missing ones when allowed.

    download=None: download unless $GENAUG_OFFLINE is set. use_converted=False: always the official
    files (what `genaug convert` reads).
    """
    if not preset.files:
        return ResolvedWeights({}, {})
    if override is not None:
        paths = _from_override(preset, Path(override).expanduser(), use_converted)
    else:
        conv = converted_path(preset)
        if use_converted and preset.name in CONVERTERS and conv.is_file():
            log.info("%s: using converted weights %s", preset.name, conv)
            paths = {CONVERTED_NAME: conv}
        else:
            allow = (not offline()) if download is None else download
            paths = _from_cache(preset, allow)
    sha = {}
    by_name = {f.name: f for f in preset.files}
    for name, path in paths.items():
        wf = by_name.get(name)
        sha[path.name] = _check_sha(path, wf.sha256 if wf else None, wf.url if wf else str(path))
    return ResolvedWeights(paths, sha)


def _from_override(preset: Preset, path: Path, use_converted: bool = True) -> dict[str, Path]:
    convertible = use_converted and preset.name in CONVERTERS
    if path.is_file():
        if len(preset.files) == 1:
            return {preset.files[0].name: path}
        if convertible and path.suffix in (".pt", ".pth"):
            return {CONVERTED_NAME: path}
        raise WeightsError(
            f"--weights {path}: preset {preset.name!r} needs {len(preset.files)} files "
            f"({', '.join(f.filename for f in preset.files)}); pass the folder that holds them"
            + (f", or a file written by `genaug convert --preset {preset.name}`" if convertible else "")
        )
    if not path.is_dir():
        raise WeightsError(f"--weights {path}: no such file or folder")
    if convertible and (path / CONVERTED_FILENAME).is_file():
        return {CONVERTED_NAME: path / CONVERTED_FILENAME}
    found, missing = {}, []
    for wf in preset.files:
        hit = next((c for c in _override_candidates(path, wf) if c.is_file()), None)
        if hit is None:
            missing.append(wf.filename)
        else:
            found[wf.name] = hit
    if missing:
        raise WeightsError(
            f"--weights {path}: preset {preset.name!r} needs {missing} in that folder; "
            f"see `genaug models` for the files and their download URLs"
        )
    return found


def _override_candidates(folder: Path, wf: WeightFile) -> list[Path]:
    out = [folder / wf.filename]
    if wf.archive_member:
        out += [folder / wf.archive_member, folder / Path(wf.archive_member).name]
    return out


def _from_cache(preset: Preset, allow_download: bool) -> dict[str, Path]:
    folder = preset_dir(preset)
    found = {wf.name: folder / wf.filename for wf in preset.files if (folder / wf.filename).is_file()}
    for wf in preset.files:
        shared = None if wf.name in found else _shared_copy(preset, wf)
        if shared is not None:
            log.info("%s: using %s (the same file as another preset's)", preset.name, shared)
            found[wf.name] = shared
    missing = [wf for wf in preset.files if wf.name not in found]
    if missing and not allow_download:
        raise WeightsError(_missing_message(preset, missing, "downloads are disabled (GENAUG_OFFLINE=1 or --no-download)"))
    by_url: dict[str, list[WeightFile]] = {}
    for wf in missing:
        by_url.setdefault(wf.url, []).append(wf)
    failed: list[tuple[str, Exception]] = []
    for url, files in by_url.items():  # try every download, then name every file still missing
        try:
            fetch(url, files, folder)
        except (urllib.error.URLError, OSError, TimeoutError, WeightsError) as err:
            log.warning("%s: download of %s failed: %s", preset.name, url, err)
            failed.append((url, err))
            continue
        found.update({wf.name: folder / wf.filename for wf in files})
    if failed:
        still = [wf for wf in preset.files if wf.name not in found]
        why = "download failed: " + "; ".join(f"{url}: {err}" for url, err in failed)
        raise WeightsError(_missing_message(preset, still, why)) from failed[0][1]
    return {wf.name: found[wf.name] for wf in preset.files}


def _shared_copy(preset: Preset, wanted: WeightFile) -> Path | None:
    """A present file of another registered preset with the same URL, member and pin (e.g. the SwAV
    ResNet-50 shared by the IC-GAN presets), so it is downloaded once."""
    from genaug.registry import REGISTRY

    same = (wanted.url, wanted.archive_member, wanted.sha256)
    for other in REGISTRY.presets():
        if other.name == preset.name:
            continue
        for wf in other.files:
            path = preset_dir(other) / wf.filename
            if (wf.url, wf.archive_member, wf.sha256) == same and path.is_file():
                return path
    return None


def _missing_message(preset: Preset, files: list[WeightFile], why: str) -> str:
    lines = [f"preset {preset.name!r}: weight file(s) missing and {why}."]
    for wf in files:
        what = f" (extract {wf.archive_member} from the archive)" if wf.archive_member else ""
        lines.append(f"  download {wf.url}{what}\n    and put it at {preset_dir(preset) / wf.filename}")
    lines.append("or pass --weights PATH (a folder holding the files).")
    return "\n".join(lines)


# ---- download ------------------------------------------------------------------------------------
def fetch(url: str, files: list[WeightFile], folder: Path) -> None:
    """Download `url` once and place every file of `files` that comes from it into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _download(url, tmp)
        plain = [wf for wf in files if wf.archive_member is None]
        archived = [wf for wf in files if wf.archive_member is not None]
        if archived:
            try:
                _extract_members(tmp, archived, folder)
            except (tarfile.TarError, EOFError, zlib.error) as err:
                raise WeightsError(f"{url}: not a readable tar archive ({err}); try again, or fetch it by hand") from err
        for wf in plain:  # several plain files from one URL would be copies; presets name each once
            _check_sha(tmp, wf.sha256, url)
            os.replace(tmp, folder / wf.filename)
            log.info("downloaded %s -> %s", url, folder / wf.filename)
            break
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".sha256.json").unlink(missing_ok=True)


def _download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, disable=None) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                bar.update(len(block))
        if total is not None and out.tell() != total:
            raise WeightsError(f"{url}: download truncated at {out.tell()} of {total} bytes")


def _extract_members(archive: Path, files: list[WeightFile], folder: Path) -> None:
    """Stream the wanted regular-file members out of a tarball; nothing else is written."""
    with tarfile.open(archive, "r:*") as tar:
        for wf in files:
            try:
                member = tar.getmember(wf.archive_member)
            except KeyError as err:
                raise WeightsError(f"{wf.url}: archive has no member {wf.archive_member!r}") from err
            try:
                member = tarfile.data_filter(member, str(folder))  # rejects links, absolute, '..'
            except tarfile.FilterError as err:
                raise WeightsError(f"{wf.url}: unsafe archive member {wf.archive_member!r}: {err}") from err
            if not member.isfile():
                raise WeightsError(f"{wf.url}: archive member {wf.archive_member!r} is not a regular file")
            source = tar.extractfile(member)
            fd, part = tempfile.mkstemp(prefix=".extract-", suffix=".part", dir=folder)
            try:
                with os.fdopen(fd, "wb") as out:
                    for block in iter(functools.partial(source.read, _CHUNK), b""):
                        out.write(block)
                _check_sha(Path(part), wf.sha256, f"{wf.url}#{wf.archive_member}")
                os.replace(part, folder / wf.filename)
            finally:
                Path(part).unlink(missing_ok=True)
                Path(part + ".sha256.json").unlink(missing_ok=True)
            log.info("extracted %s from %s -> %s", wf.archive_member, wf.url, folder / wf.filename)


# ---- listing (genaug models) ---------------------------------------------------------------------
def status(preset: Preset) -> dict:
    """JSON-serialisable facts about a preset's files in the cache (nothing is hashed or fetched)."""
    folder = preset_dir(preset)
    files = []
    for wf in preset.files:
        own = folder / wf.filename
        path = own if own.is_file() else (_shared_copy(preset, wf) or own)
        files.append({
            "name": wf.name, "filename": wf.filename, "url": wf.url, "archive_member": wf.archive_member,
            "sha256": wf.sha256, "description": wf.description, "path": str(path), "present": path.is_file(),
        })
    conv = converted_path(preset)
    return {
        "cache": str(folder),
        "files": files,
        "convertible": preset.name in CONVERTERS,
        "converted": str(conv) if preset.name in CONVERTERS and conv.is_file() else None,
        "ready": not preset.files or all(f["present"] for f in files)
        or (preset.name in CONVERTERS and conv.is_file()),
    }
