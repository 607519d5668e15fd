"""Read samples out of a shard with a cap on member size and a check of the shard's sample count.

Members are grouped into samples by the shard contract's one grouper (``genaug.format.group_members``,
as webdataset groups them: the key is the path up to the first '.' of the file name). A member larger than :data:`MAX_MEMBER_BYTES`
is skipped in the tar stream without being read (memory stays flat whatever a member's size): an
oversized ``real.jpg`` makes the sample bad (handed to the error handler, which raises by default), an
oversized aug image makes the pair fall back to two real views, any other oversized field is dropped,
each with a warning.

When a segment reads a shard to its end and index.json gave the shard's sample count, a shard holding
fewer or more samples than that raises :class:`ShardMismatchError` whatever the handler: a short shard
would leave this rank with fewer steps than the others, and DDP would hang at the end of the epoch.
"""

from __future__ import annotations

import logging
import tarfile
from typing import Iterator

import webdataset as wds

from genaug.format import group_members, split_member
from genaug.loader.plan import Segment

log = logging.getLogger(__name__)

# The one place the loader's per-member cap is defined: far above any real image (a 50-megapixel
# camera JPEG is 20-30 MB), far below what would exhaust a worker's memory.
MAX_MEMBER_BYTES = 256 * 1024 * 1024


class ShardMismatchError(ValueError):
    """A shard's content disagrees with its index.json entry (sample count, size or md5)."""


class OversizedMember:
    """Stands in for the bytes of a member that was not read because it is over the cap."""

    def __init__(self, name: str, size: int, limit: int):
        self.name, self.size, self.limit = name, size, limit

    def reason(self) -> str:
        return (f"tar member {self.name!r} is {self.size} bytes ({self.size / 2**20:.0f} MiB), over the cap of "
                f"{self.limit} bytes per member (genaug.loader.tarread.MAX_MEMBER_BYTES); not read")


def member_cap() -> int:
    """The cap in force (read at call time, so that tests can lower it)."""
    return MAX_MEMBER_BYTES


def tar_samples(stream, url: str, limit: int | None = None, skip: int = 0) -> Iterator[dict]:
    """``{"__key__", "__url__", field: bytes}`` per sample in tar order, grouped by
    :func:`genaug.format.group_members`; an oversized member's bytes are an :class:`OversizedMember`.
    The members of the first `skip` samples are not read (empty bytes; a local file seeks past them)."""
    limit = member_cap() if limit is None else limit
    seekable = getattr(stream, "seekable", lambda: False)()
    state = {"key": None, "ordinal": -1}

    def load(info: tarfile.TarInfo):  # called while the tar stream is at this member
        key = split_member(info.name)[0]
        if key != state["key"]:
            state.update(key=key, ordinal=state["ordinal"] + 1)
        if state["ordinal"] < skip:
            return b""  # a sample the caller skips
        if info.size > limit:
            return OversizedMember(info.name, info.size, limit)  # the stream skips it unread
        return tar.extractfile(info).read()

    def members():
        for info in tar:
            if info.isreg():
                yield info.name, info
            tar.members = []  # the reader need not remember members (memory stays flat on long shards)

    try:
        tar = tarfile.open(fileobj=stream, mode="r:*" if seekable else "r|*")  # a file seeks past skipped data
        for key, fields in group_members(members(), load=load):
            yield {"__key__": key, "__url__": url, **fields}
    except (tarfile.TarError, EOFError) as err:
        raise ShardMismatchError(f"shard {url!r} is not a readable tar past this point ({err}); it is "
                                 "truncated or corrupt: rebuild it (rerun the genaug build command)") from err


def drop_oversized(sample: dict) -> dict:
    """Remove unread oversized members from a sample; a missing real image then fails in the pair rule."""
    for field in [f for f, v in sample.items() if isinstance(v, OversizedMember)]:
        member = sample.pop(field)
        if field == "real.jpg":
            raise ValueError(f"sample {sample['__key__']!r} ({sample['__url__']}): {member.reason()}")
        log.warning("sample %s: %s; the field %r is left out", sample["__key__"], member.reason(), field)
    return sample


def segment_samples(segment: Segment, limit: int | None = None) -> Iterator[dict]:
    """The samples of one segment, each with ``__index__`` (index.json position, -1 when unknown)."""
    stream = wds.gopen(segment.url)
    try:
        samples = tar_samples(stream, segment.url, limit, segment.skip)
        end = None if segment.take is None else segment.skip + segment.take
        count = 0  # samples of the shard seen so far
        for sample in samples:
            if end is not None and count >= end:
                if end == segment.nsamples:  # the shard goes on past its index.json count
                    _check_count(segment, count + 1 + sum(1 for _ in samples))
                return
            if count >= segment.skip:
                sample["__index__"] = -1 if segment.start is None else segment.start + count
                yield sample
            count += 1
        _check_count(segment, count)  # the shard ended: it must hold what index.json says
    finally:
        stream.close()


def _check_count(segment: Segment, seen: int) -> None:
    if segment.nsamples is not None and seen != segment.nsamples:
        raise ShardMismatchError(
            f"shard {segment.url!r} holds {seen} samples but index.json says {segment.nsamples}: it is "
            "truncated or was replaced; rebuild it (rerun the genaug build command), or check it with "
            "`genaug inspect --verify`")
