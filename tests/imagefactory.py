"""Input images on disk for tests: ImageNet-style folders, plain folders, file lists, input shards.

Every image is small (24-96 px), deterministic from a seed, and structured (a colour gradient with
rectangles and a disc) so that JPEG coding, resizing and cropping change it measurably.

The ImageNet-style folder reproduces the awkward files of the real ILSVRC-2012 train set (a PNG
named .JPEG, CMYK JPEGs, grayscale) plus other formats users feed in (palette, RGBA, 16-bit, EXIF
rotation, very wide) and broken inputs that a build must skip (truncated, zero-byte, text, tiny,
decompression bomb). Each make_* function returns a dict saying which files exist, which are
expected to be readable (``good``), which are expected to be skipped (``skipped``: path -> kind) and
which are not image candidates at all (``ignored``).

Usage (tests/ is on sys.path under pytest): ``from imagefactory import make_imagenet_folder``.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# the first ImageNet-1k synsets, in their sorted order (label = position)
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331", "n01498041")
EXIF_ORIENTATION_TAG = 0x0112
ODD_KINDS = ("png_named_jpeg", "cmyk", "gray", "palette", "rgba", "gray16", "exif_rot6", "wide")
BROKEN_KINDS = ("truncated", "zero_byte", "text", "tiny", "bomb")


def pattern_array(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8: gradient background, two rectangles and a disc, from `seed`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(20, 235, size=3).astype(np.float32)
    slope = rng.uniform(-120, 120, size=(2, 3)).astype(np.float32)
    img = base + (xx[..., None] / max(width, 1)) * slope[0] + (yy[..., None] / max(height, 1)) * slope[1]
    for _ in range(2):
        x0, y0 = int(rng.integers(0, max(1, width // 2))), int(rng.integers(0, max(1, height // 2)))
        x1 = x0 + int(rng.integers(2, max(3, width // 2)))
        y1 = y0 + int(rng.integers(2, max(3, height // 2)))
        img[y0:y1, x0:x1] = rng.uniform(0, 255, size=3)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    radius = rng.uniform(2, max(2.5, min(width, height) / 3))
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < radius * radius] = rng.uniform(0, 255, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def pattern_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB PIL image of :func:`pattern_array`."""
    return Image.fromarray(pattern_array(width, height, seed), "RGB")


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48, seed: int = 0, quality: int = 90, mode: str = "RGB",
               exif_orientation: int | None = None) -> bytes:
    """A JPEG of the pattern in `mode` ("RGB", "L" or "CMYK"), optionally with an EXIF orientation."""
    image = pattern_image(width, height, seed)
    if mode != "RGB":
        image = image.convert(mode)
    options = {"quality": quality}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = exif_orientation
        options["exif"] = exif.tobytes()
    return _save(image, "JPEG", **options)


def png_bytes(width: int = 64, height: int = 48, seed: int = 0, mode: str = "RGB") -> bytes:
    """A PNG of the pattern in `mode`: "RGB", "L", "P" (16-colour palette), "RGBA" (alpha gradient)
    or "I;16" (16-bit grayscale using the full 0..65535 range)."""
    rgb = pattern_image(width, height, seed)
    if mode == "RGB":
        image = rgb
    elif mode == "L":
        image = rgb.convert("L")
    elif mode == "P":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode == "RGBA":
        alpha = np.tile(np.linspace(0, 255, width, dtype=np.float32), (height, 1)).astype(np.uint8)
        image = rgb.copy()
        image.putalpha(Image.fromarray(alpha, "L"))
    elif mode == "I;16":
        gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(gray)
    else:
        raise ValueError(f"png_bytes: unsupported mode {mode!r}; use RGB, L, P, RGBA or I;16")
    return _save(image, "PNG")


def webp_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    return _save(pattern_image(width, height, seed), "WEBP", quality=90)


def truncated_jpeg_bytes(width: int = 96, height: int = 72, seed: int = 0) -> bytes:
    """The first three quarters of a valid JPEG: the header parses, decoding runs out of data."""
    data = jpeg_bytes(width, height, seed)
    return data[: len(data) * 3 // 4]


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def bomb_png_bytes(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims width x height 1-bit pixels (PIL refuses it as a bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _png_chunk(b"IEND", b""))


def odd_file_bytes(kind: str, seed: int = 0) -> bytes:
    """Bytes of a valid but awkward input of `kind` (one of ODD_KINDS)."""
    makers = {
        "png_named_jpeg": lambda: png_bytes(60, 44, seed),
        "cmyk": lambda: jpeg_bytes(56, 48, seed, mode="CMYK"),
        "gray": lambda: jpeg_bytes(48, 56, seed, mode="L"),
        "palette": lambda: png_bytes(52, 40, seed, mode="P"),
        "rgba": lambda: png_bytes(48, 48, seed, mode="RGBA"),
        "gray16": lambda: png_bytes(44, 52, seed, mode="I;16"),
        "exif_rot6": lambda: jpeg_bytes(64, 40, seed, exif_orientation=6),  # shown as 40 x 64
        "wide": lambda: jpeg_bytes(320, 24, seed),
    }
    if kind not in makers:
        raise ValueError(f"unknown odd kind {kind!r}; choose from {ODD_KINDS}")
    return makers[kind]()


def broken_file_bytes(kind: str, seed: int = 0) -> bytes:
    """Bytes of an input of `kind` (one of BROKEN_KINDS) that preprocessing must reject."""
    makers = {
        "truncated": lambda: truncated_jpeg_bytes(seed=seed),
        "zero_byte": lambda: b"",
        "text": lambda: b"this is a text file, not an image\n" * 3,
        "tiny": lambda: jpeg_bytes(8, 8, seed),
        "bomb": bomb_png_bytes,
    }
    if kind not in makers:
        raise ValueError(f"unknown broken kind {kind!r}; choose from {BROKEN_KINDS}")
    return makers[kind]()


# file suffix used for odd kinds in an ImageNet-style folder (everything else is .JPEG, like ILSVRC)
_ODD_SUFFIX = {"palette": ".png", "rgba": ".png", "gray16": ".png"}


def make_imagenet_folder(root, n_classes: int = 3, per_class: int = 4, odd: bool = True,
                         broken: bool = True, seed: int = 0) -> dict:
    """Write root/train/<wnid>/<wnid>_<n>.JPEG (per_class RGB JPEGs per class) plus, spread over
    the classes, one file of each odd kind (valid, awkward) and each broken kind (to be skipped).
    Also writes a hidden file in train/ and a notes.txt in a class folder, which are not candidates.

    Returns {"root", "train", "wnids", "files" (every candidate, sorted), "good", "skipped"
    {path: kind}, "odd" {kind: path}, "broken" {kind: path}, "labels" {path: label}, "ignored"}.
    """
    if not 1 <= n_classes <= len(WNIDS):
        raise ValueError(f"n_classes={n_classes}: must be 1..{len(WNIDS)}")
    root = Path(root)
    train = root / "train"
    wnids = list(WNIDS[:n_classes])
    out = {"root": root, "train": train, "wnids": wnids, "good": [], "skipped": {}, "odd": {},
           "broken": {}, "labels": {}, "ignored": []}
    for label, wnid in enumerate(wnids):
        for i in range(per_class):
            path = train / wnid / f"{wnid}_{1000 + i}.JPEG"
            _write(path, jpeg_bytes(40 + 8 * (i % 4), 48 + 8 * (label % 3), seed * 7919 + 100 * label + i))
            out["good"].append(path)
            out["labels"][path] = label
    extras = ([("odd", k) for k in ODD_KINDS] if odd else []) + ([("broken", k) for k in BROKEN_KINDS] if broken else [])
    for j, (group, kind) in enumerate(extras):
        label = j % n_classes
        wnid = wnids[label]
        path = train / wnid / f"{wnid}_{group}_{kind}{_ODD_SUFFIX.get(kind, '.JPEG')}"
        maker = odd_file_bytes if group == "odd" else broken_file_bytes
        _write(path, maker(kind, seed * 7919 + 5000 + j))
        out[group][kind] = path
        out["labels"][path] = label
        if group == "odd":
            out["good"].append(path)
        else:
            out["skipped"][path] = kind
    for path in (train / ".DS_Store", train / wnids[0] / "notes.txt"):
        _write(path, b"not an image candidate\n")
        out["ignored"].append(path)
    out["good"].sort()
    out["files"] = sorted(out["good"] + list(out["skipped"]))
    return out


def make_image_folder(root, n: int = 6, odd: bool = True, broken: bool = False, seed: int = 0) -> dict:
    """Write an unlabelled nested folder: n plain images spread over root/, root/a/, root/a/b/,
    names with spaces and extra dots, names whose slugs collide ("x y.jpg", "x_y.jpg", "x/y.jpg"),
    mixed extensions (.jpg .jpeg .png .webp, some upper case) and, if asked, odd and broken files.

    Returns {"root", "files" (candidates, sorted by path), "good", "skipped", "ignored"}.
    """
    root = Path(root)
    names = ["img_0.jpg", "a/img_1.jpeg", "a/b/img_2.PNG", "a/b/holiday photo.v2.jpg", "c/img_4.webp",
             "x y.jpg", "x_y.jpg", "x/y.jpg", "a/img_1.png", "IMG_9.JPG"]
    out = {"root": root, "good": [], "skipped": {}, "ignored": []}
    for i in range(n):
        name = names[i % len(names)] if i < len(names) else f"more/img_{i}.jpg"
        path = root / name
        suffix = path.suffix.lower()
        maker = {".png": png_bytes, ".webp": webp_bytes}.get(suffix, jpeg_bytes)
        _write(path, maker(40 + 4 * (i % 5), 44 + 4 * (i % 3), seed * 7919 + i))
        out["good"].append(path)
    if odd:
        for j, kind in enumerate(ODD_KINDS):
            path = root / "odd" / f"{kind}{'.png' if kind in _ODD_SUFFIX else '.jpg'}"
            _write(path, odd_file_bytes(kind, seed * 7919 + 3000 + j))
            out["good"].append(path)
    if broken:
        for j, kind in enumerate(BROKEN_KINDS):
            path = root / "broken" / f"{kind}.jpg"
            _write(path, broken_file_bytes(kind, seed * 7919 + 4000 + j))
            out["skipped"][path] = kind
    for path in (root / "readme.txt", root / "a" / ".hidden.jpg"):
        _write(path, b"not an image candidate\n")
        out["ignored"].append(path)
    out["good"].sort()
    out["files"] = sorted(out["good"] + list(out["skipped"]))
    return out


def make_file_list(root, n: int = 5, labelled: bool = True, header: bool = False, absolute: bool = False,
                   list_name: str = "list.csv", seed: int = 0) -> dict:
    """Write n JPEGs under root/imgs/ and a list file root/<list_name> of `path[,label]` lines
    (paths relative to the list's folder unless absolute), with an optional header line.

    Returns {"list", "files" (absolute paths, in list order), "labels" (list or None), "lines"}.
    """
    root = Path(root)
    files, labels, lines = [], [], ["path,label" if labelled else "path"] if header else []
    for i in range(n):
        path = root / "imgs" / f"photo_{i:03d}.jpg"
        _write(path, jpeg_bytes(48, 40 + 4 * (i % 3), seed * 7919 + i))
        files.append(path)
        label = (3 * i + 1) % 5
        labels.append(label)
        shown = str(path) if absolute else path.relative_to(root).as_posix()
        lines.append(f"{shown},{label}" if labelled else shown)
    list_path = root / list_name
    _write(list_path, ("\n".join(lines) + "\n").encode())
    return {"list": list_path, "files": files, "labels": labels if labelled else None, "lines": lines}


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def make_wds_shards(root, n_shards: int = 2, per_shard: int = 4, field: str = "jpg", with_cls: bool = True,
                    prefix: str = "imagenet1k-train", seed: int = 0) -> dict:
    """Write input shards in the public imagenet1k WebDataset layout: root/<prefix>-{0000..}.tar with
    members <wnid>_<n>.<field> and <wnid>_<n>.cls (ASCII class index); field is jpg, jpeg, png or webp.

    Returns {"pattern" (brace pattern), "urls", "keys", "labels" (in order), "images" (bytes by key)}.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    maker = {"jpg": jpeg_bytes, "jpeg": jpeg_bytes, "png": png_bytes, "webp": webp_bytes}[field]
    out = {"urls": [], "keys": [], "labels": [], "images": {}}
    for s in range(n_shards):
        url = root / f"{prefix}-{s:04d}.tar"
        with tarfile.open(url, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(per_shard):
                index = s * per_shard + i
                label = index % len(WNIDS)
                key = f"{WNIDS[label]}_{10026 + index}"
                image = maker(48 + 4 * (index % 3), 40 + 4 * (index % 4), seed * 7919 + index)
                _tar_add(tar, f"{key}.{field}", image)
                if with_cls:
                    _tar_add(tar, f"{key}.cls", str(label).encode("ascii"))
                out["keys"].append(key)
                out["labels"].append(label if with_cls else None)
                out["images"][key] = image
        out["urls"].append(str(url))
    out["pattern"] = str(root / f"{prefix}-{{0000..{n_shards - 1:04d}}}.tar")
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
