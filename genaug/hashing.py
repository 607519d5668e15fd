"""The digest of a file's bytes, read in blocks (weights' sha256, shards' md5 in the loader's check)."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20  # bytes read per step


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest (`algorithm`: "md5", "sha256", ...) of the bytes of `path`, read now."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
