"""Tiny genaug shards for tests and benchmarks, written exactly in the format of docs/contracts.md.

Independent of the real writer (genaug/build/shard.py): it builds small structured images (gradients,
rectangles, discs) so that crops, flips and colour transforms change them measurably, and writes

    out_dir/shard-XXXX.tar   <key>.real.jpg (full image), <key>.aug.<fmt> (64 px), [<key>.cls], <key>.json
    out_dir/shard-XXXX.json  stats (done-marker)
    out_dir/index.json       wids-shard-index-v1, urls relative to out_dir
    out_dir/manifest.json    run facts (timing, editor)
    out_dir/errors.jsonl     empty

Usage (tests/ is on sys.path under pytest): ``from shardfactory import make_shards``; from the repo
root: ``from tests.shardfactory import make_shards``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from genaug.geometry import centre_square

AUG_SIZE = 64  # side of the generative image, like a small editor output
N_CLASSES = 4  # labels cycle over this many classes
AUG_FORMATS = ("jpg", "png", "webp")


def sample_key(index: int, labelled: bool) -> str:
    """Deterministic key without '.' or '/': ImageNet-like when labelled."""
    if labelled:
        return f"n{1440764 + index % N_CLASSES:08d}_{index:05d}"
    return f"img_{index:05d}"


def structured_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: a colour gradient with a few rectangles and a disc."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    slope = rng.uniform(-1.5, 1.5, size=(2, 3)).astype(np.float32)
    img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    for _ in range(3):
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        x1, y1 = x0 + int(rng.integers(4, width // 2)), y0 + int(rng.integers(4, height // 2))
        img[y0:y1, x0:x1] = rng.uniform(0, 255, size=3)
    cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, min(width, height) / 3)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def centre_crop_box(width: int, height: int) -> list[int]:
    """[left, top, right, bottom] of the centred square crop (the model input region), by the build's
    rule (``genaug.geometry.centre_square``), as the json ``crop_box`` stores it."""
    return list(centre_square(width, height))


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    pil_format = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt]
    options = {"quality": 95} if fmt in ("jpg", "webp") else {}
    Image.fromarray(array).save(buf, format=pil_format, **options)
    return buf.getvalue()


def _augment(real: np.ndarray, box: list[int], rng: np.random.Generator) -> np.ndarray:
    """A stand-in 'generative' edit: the model crop at 64 px with a colour shift and a new blob."""
    crop = Image.fromarray(real).crop(tuple(box)).resize((AUG_SIZE, AUG_SIZE), Image.BICUBIC)
    out = np.asarray(crop).astype(np.float32) + rng.uniform(-40, 40, size=3)
    x0, y0 = (int(v) for v in rng.integers(0, AUG_SIZE // 2, size=2))
    out[y0 : y0 + 12, x0 : x0 + 12] = rng.uniform(0, 255, size=3)
    return np.clip(out, 0, 255).astype(np.uint8)


def _metadata(index: int, key: str, label: int | None, size: tuple[int, int], box: list[int], seed: int) -> dict:
    return {
        "key": key,
        "source": f"/synthetic/{key}.png",
        "label": label,
        "wnid": key.split("_")[0] if label is not None else None,
        "class_index": label,
        "orig_size": list(size),
        "orig_mode": "RGB",
        "orig_format": "PNG",
        "exif_transposed": False,
        "crop_box": box,
        "resolution": AUG_SIZE,
        "resample": "bicubic",
        "method": "mask",
        "preset": "shardfactory-synthetic",
        "weights_sha256": {},
        "seed": seed * 1_000_003 + index,
        "run_seed": seed,
        "edit": {"synthetic": True},
        "genaug_version": "0.1.0",
    }


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _sample_members(index: int, labelled: bool, aug_format: str, broken: set[str], missing: set[str],
                    rng: np.random.Generator, seed: int, real_size: tuple[int, int]) -> list[tuple[str, bytes]]:
    key = sample_key(index, labelled)
    width, height = (int(v) for v in rng.integers(real_size[0], real_size[1], size=2))
    real = structured_image(rng, width, height)
    box = centre_crop_box(width, height)
    label = index % N_CLASSES if labelled else None
    members = [(f"{key}.real.jpg", _encode(real, "jpg"))]
    if key in broken:
        members.append((f"{key}.aug.{aug_format}", b"this is not an image" + bytes(rng.integers(0, 255, 64, dtype=np.uint8))))
    elif key not in missing:
        members.append((f"{key}.aug.{aug_format}", _encode(_augment(real, box, rng), aug_format)))
    if labelled:
        members.append((f"{key}.cls", str(label).encode("ascii")))
    meta = _metadata(index, key, label, (width, height), box, seed)
    members.append((f"{key}.json", json.dumps(meta, sort_keys=True).encode()))
    return members


def _write_stats(tar_path: Path, shard_no: int, nsamples: int, nerrors: int) -> dict:
    data = tar_path.read_bytes()
    stats = {
        "shard": shard_no,  # chunk number, as genaug/build/pipeline.py writes it
        "nsamples": nsamples,
        "nerrors": nerrors,
        "filesize": len(data),
        "md5sum": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "config_fingerprint": "shardfactory",
        "batch_size": 8,
        "device": "cpu",
        "device_name": "synthetic",
        "timings_s": {"read_decode": 0.01, "model": 0.02, "encode": 0.01, "write": 0.01, "wall": 0.05},
        "images_per_s": nsamples / 0.05,
    }
    tar_path.with_suffix(".json").write_text(json.dumps(stats, indent=1, sort_keys=True))
    return stats


def make_shards(out_dir, n_samples: int = 24, shard_size: int = 8, labelled: bool = True,
                aug_format: str = "jpg", broken_aug_keys: Iterable[str] = (), seed: int = 0,
                missing_aug_keys: Iterable[str] = (), real_size: tuple[int, int] = (72, 120)) -> list[Path]:
    """Write ceil(n_samples / shard_size) shards plus stats, index.json and manifest.json into out_dir.

    broken_aug_keys: keys whose aug member holds undecodable bytes; missing_aug_keys: keys with no aug
    member at all. Keys are ``sample_key(i, labelled)``. real_size: [low, high) of the real images'
    width and height (benchmarks use ImageNet-like sizes). Returns the shard paths in order.
    """
    if aug_format not in AUG_FORMATS:
        raise ValueError(f"aug_format {aug_format!r}: choose one of {AUG_FORMATS}")
    if not 16 <= real_size[0] < real_size[1]:
        raise ValueError(f"real_size={real_size}: need 16 <= low < high")
    if n_samples < 1 or shard_size < 1:
        raise ValueError(f"n_samples={n_samples} and shard_size={shard_size} must both be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    broken, missing = set(broken_aug_keys), set(missing_aug_keys)
    paths, shardlist = [], []
    for shard_no, start in enumerate(range(0, n_samples, shard_size)):
        path = out / f"shard-{shard_no:04d}.tar"
        count = min(shard_size, n_samples - start)
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for index in range(start, start + count):
                for name, data in _sample_members(index, labelled, aug_format, broken, missing, rng, seed,
                                                      real_size):
                    _add_member(tar, name, data)
        stats = _write_stats(path, shard_no, count, 0)
        shardlist.append({"url": path.name, "nsamples": count, "filesize": stats["filesize"], "md5sum": stats["md5sum"]})
        paths.append(path)
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": out.name, "shardlist": shardlist}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    manifest = {
        "timing": {"batch1_ms_per_image": 5.0, "batch_ms_per_image": 1.0, "batch_size": 8,
                   "device": "cpu", "device_name": "synthetic"},
        "editor": {"method": "mask", "preset": "shardfactory-synthetic", "parameters": 0},
        "nsamples": n_samples,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    (out / "errors.jsonl").write_text("")
    return paths


def _raw_member(handle, name: str, data: bytes | None, size: int | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if data is not None else size
    handle.write(info.tobuf(format=tarfile.USTAR_FORMAT))
    padded = -(-info.size // 512) * 512
    if data is None:
        handle.seek(padded, 1)  # a hole: zeros when read, nothing written, no memory used
    else:
        handle.write(data + b"\0" * (padded - len(data)))


def add_big_member(path, key: str, field: str, size: int) -> None:
    """Rewrite the tar at `path` with one more sample `key` whose `field` member is `size` bytes of zeros,
    stored as a hole (a sparse file: cheap to make at any size). Unless `field` is real.jpg, the sample
    also gets a small real.jpg (a copy of the first one). The stats/index.json entries are not updated."""
    with tarfile.open(path) as src:
        members = [(m.name, src.extractfile(m).read()) for m in src.getmembers()]
    real = next(data for name, data in members if name.endswith("real.jpg"))
    with open(path, "wb") as handle:
        for name, data in members:
            _raw_member(handle, name, data)
        if field != "real.jpg":
            _raw_member(handle, f"{key}.real.jpg", real)
        _raw_member(handle, f"{key}.{field}", None, size)
        handle.write(b"\0" * 1024)  # end of archive
