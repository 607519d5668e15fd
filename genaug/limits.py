"""Size limits on what genaug reads into memory: one tar member (or input file), and decoded pixels.

Every reader of tars (the build's input shards, `genaug inspect`, the report, the loader) reads a
member whole, so its memory follows the largest member. Real images are far below
``MAX_MEMBER_BYTES`` (a 50-megapixel camera JPEG is some 20-30 MB); anything larger is recorded as a
bad input *without reading it* (a streamed tar skips over its data in small blocks). ``MAX_IMAGE_PIXELS`` is Pillow's decompression-bomb limit
(``PIL.Image.DecompressionBombError`` is raised above twice ``Image.MAX_IMAGE_PIXELS``), checked
from the image header before any pixel is decoded. Rules in docs/inputs-and-inspect.md.
"""

from __future__ import annotations

import os
import stat
from typing import IO

MAX_MEMBER_BYTES = 256 * 1024 * 1024  # one tar member or input file, in bytes
MAX_IMAGE_PIXELS = 2 * 89_478_485  # width x height; Pillow's DecompressionBombError threshold
_READ_CHUNK = 1 << 20


class OversizedInput(ValueError):
    """A member or file over MAX_MEMBER_BYTES; str(err) is the reason recorded for it."""


def oversize_reason(size: int, what: str, limit: int = MAX_MEMBER_BYTES) -> str | None:
    """Why `what` of `size` bytes is not read (None when it is within `limit`)."""
    if size <= limit:
        return None
    return (f"{what} is {size} bytes ({size / 2**20:.0f} MiB), over the {limit // 2**20} MiB limit per "
            "member (genaug.limits.MAX_MEMBER_BYTES); not read")


def check_member_size(size: int, what: str, limit: int = MAX_MEMBER_BYTES) -> None:
    """Raise OversizedInput when `size` is over `limit` (for readers that stop instead of recording)."""
    reason = oversize_reason(size, what, limit)
    if reason is not None:
        raise OversizedInput(reason)


def pixels_reason(width: int, height: int, limit: int = MAX_IMAGE_PIXELS) -> str | None:
    """Why an image of width x height is not decoded (None when within `limit`)."""
    if width * height <= limit:
        return None
    return (f"decompression bomb refused: {width}x{height} = {width * height} pixels, over the {limit} pixel "
            "limit (genaug.limits.MAX_IMAGE_PIXELS)")


def read_capped(handle: IO[bytes], what: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """Everything in `handle`, or OversizedInput once more than `limit` bytes came (memory <= limit)."""
    parts, total = [], 0
    while chunk := handle.read(min(_READ_CHUNK, limit + 1 - total)):
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise OversizedInput(f"{what} is over the {limit // 2**20} MiB limit per member "
                                 "(genaug.limits.MAX_MEMBER_BYTES); not read")
    return b"".join(parts)


def regular_file_problem(mode: int) -> str | None:
    """Why a file of st_mode `mode` is not read as an image (a FIFO would block; a device never ends)."""
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), f"file type {oct(stat.S_IFMT(mode))}")
    return f"not a regular file: {kind}"


def read_file_capped(path: str, limit: int | None = None) -> bytes:
    """The bytes of the regular file at `path`; OSError when it cannot be opened, OversizedInput when it
    is over `limit` (default MAX_MEMBER_BYTES), ValueError (reason text) when it is not a regular file.
    Never blocks on a FIFO."""
    limit = MAX_MEMBER_BYTES if limit is None else limit
    problem = regular_file_problem(os.stat(path).st_mode)
    if problem is not None:
        raise ValueError(problem)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        problem = regular_file_problem(info.st_mode)  # swapped since the stat above
        if problem is not None:
            raise ValueError(problem)
        check_member_size(info.st_size, "the file", limit)
        return read_capped(handle, "the file", limit)
