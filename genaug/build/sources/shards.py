"""WebDataset tar shards as a build input (rules in docs/inputs-and-inspect.md).

Checked before any work: every local shard exists, is listed once, and starts with a readable tar
header. While the build runs, a shard that breaks mid-stream (truncated, corrupt, a remote URL that
fails) keeps the samples read before the break and adds one item standing for the break (its key
derived from the shard name, its ``error`` the reason), which the build records in errors.jsonl;
reading then goes on with the next shard. The item takes one index like a sample, so the order
(and the chunk of every later sample) is the same on every run over the same files.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tarfile
from pathlib import Path

from genaug.build.sources.base import (
    CLEAN_KEY,
    LABEL,
    SHARD_IMAGE_FIELDS,
    SHARD_READ_ERRORS,
    WNID_KEY,
    Source,
    SourceError,
    slug_key,
)
from genaug.format import INDEX_KIND, index_urls, is_remote, iter_tar_samples

log = logging.getLogger(__name__)

LABEL_PROBE = 3  # shards tried for a first sample when remote ones fail
END_CHECK_BYTES = 1 << 20  # bytes after a tar's last member checked to be zero padding
META_MAX_BYTES = 1 << 16  # an input text/JSON field larger than this is not copied into source_meta


class ShardSource(Source):
    """WebDataset tar shards, read member by member in the given order.

    Key: the sample's key in the shard when key-safe (e.g. n01440764_10026; input shards must not
    repeat keys), else slug_key of it. wnid: the key's 'nXXXXXXXX_' prefix when present."""

    kind = "shards"

    def __init__(self, urls: list[str], named: str = "--data"):
        self.urls = urls
        _check_local_shards(urls, named)
        first = _first_sample(urls, named)
        self.labelled = "cls" in first[1]
        self.description = f"{len(urls)} WebDataset shard(s) {urls[0]}{' ...' if len(urls) > 1 else ''}"

    def _records(self):
        for url in self.urls:
            count, problem = 0, None
            try:
                for member_key, fields in iter_tar_samples(url):
                    yield self._record(url, member_key, fields)
                    count += 1
                problem = tar_end_problem(url)  # tarfile ends silently at a bad or missing header
            except SHARD_READ_ERRORS as err:
                problem = f"{type(err).__name__}: {err}"
            if problem is not None:
                reason = f"input shard truncated/corrupt after {count} samples: {problem}"
                log.warning("%s: %s; going on with the next shard", url, reason)
                yield broken_shard_key(url), url, None, None, None, reason

    def _record(self, url: str, member_key: str, fields: dict):
        key = member_key if CLEAN_KEY.fullmatch(member_key) else slug_key(member_key)
        image = next((fields[f] for f in SHARD_IMAGE_FIELDS if f in fields), b"")
        wnid_match = WNID_KEY.fullmatch(member_key)
        label = _shard_label(fields.get("cls"), f"{url}#{member_key}") if self.labelled else None
        wnid = wnid_match.group(1) if wnid_match else None
        oversized = getattr(fields, "oversized", None)
        if oversized:  # a member over genaug.limits.MAX_MEMBER_BYTES: the sample is skipped, nothing read
            return key, f"{url}#{member_key}", label, wnid, None, "; ".join(oversized.values())
        return key, f"{url}#{member_key}", label, wnid, image, None, source_meta(fields)

    def relative(self, source: str) -> str:
        """'<shard file name>#<member key>' (a shard's own record: its file name)."""
        url, sep, member = source.partition("#")
        return f"{url.rstrip('/').rsplit('/', 1)[-1]}{sep}{member}"


def source_meta(fields: dict) -> dict | None:
    """The input sample's text and JSON fields (img2dataset's caption ``txt`` and ``json`` with url, size
    and status; a ``json`` with ImageNet's ``filename``), kept under ``source_meta`` in the sample json:
    ``txt``-like fields as text, ``json``-like ones parsed (as text when they do not parse). A field over
    META_MAX_BYTES is kept as {"omitted_bytes": n}. None when the sample has none."""
    meta = {}
    for name in sorted(fields):
        kind = name.rsplit(".", 1)[-1]
        if kind not in ("txt", "json") or name in SHARD_IMAGE_FIELDS:
            continue
        raw = fields[name]
        if len(raw) > META_MAX_BYTES:
            meta[name] = {"omitted_bytes": len(raw)}
            continue
        text = raw.decode("utf-8", errors="replace")
        if kind == "json":
            try:
                meta[name] = json.loads(text)
                continue
            except ValueError:
                pass
        meta[name] = text
    return meta or None


def tar_end_problem(url: str) -> str | None:
    """Why a local, uncompressed tar that tarfile read to its end did not end properly, else None.

    tarfile stops without an error at a header that is cut off or invalid after the first one, which
    would silently drop the rest of the shard; a proper tar ends with two zero blocks and zero padding
    (only headers are read here: tarfile seeks over the member data)."""
    if is_remote(url) or compression(url) is not None:
        return None  # compressed (whatever its name) or remote: only what tarfile itself reports
    with tarfile.open(url, "r:") as tar:
        for _ in tar:
            pass
        end = tar.offset
    size = os.path.getsize(url)
    with open(url, "rb") as handle:
        handle.seek(end)
        tail = handle.read(END_CHECK_BYTES)
    if size - end < 2 * tarfile.BLOCKSIZE:
        return f"the tar ends at byte {size} without its end-of-archive blocks (cut off after byte {end})"
    if tail[:2 * tarfile.BLOCKSIZE].strip(b"\0"):
        return f"invalid tar header at byte {end}"
    if tail.strip(b"\0"):
        return f"data after the end-of-archive blocks at byte {end} (concatenated tars?)"
    return None


COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


def compression(path: str) -> str | None:
    """The compression of a local file by its first bytes ("gzip" | "bzip2" | "xz"), None for none
    (a gzip-compressed tar named .tar is read as the gzip stream it is)."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    return next((name for magic, name in COMPRESSION_MAGIC if head.startswith(magic)), None)


def broken_shard_key(url: str) -> str:
    """Key of the item that records a broken input shard: the shard's file name, made key-safe."""
    name = url.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0] or "shard"
    return slug_key(f"{name}_input_error", hashed=url)


def _check_local_shards(urls: list[str], named: str) -> None:
    """Every local shard exists and starts with a tar header; no shard is given twice."""
    missing = [u for u in urls if not is_remote(u) and not os.path.isfile(u)]
    if missing:
        raise SourceError(f"{named}: shard file {missing[0]} does not exist ({len(missing)} of {len(urls)} "
                          "shards missing); check the path or brace pattern")
    seen: dict[str, str] = {}
    for url in urls:
        ident = url if is_remote(url) else os.path.realpath(url)
        if ident in seen:
            raise SourceError(f"{named}: shard {url} is given twice (also as {seen[ident]}); give each input "
                              "shard once (its samples would be duplicated)")
        seen[ident] = url
        if is_remote(url):
            _check_scheme(url, named)
        else:
            _check_header(url, named)


def _check_scheme(url: str, named: str) -> None:
    """A remote shard URL whose scheme webdataset.gopen can open (else it would fail mid-run)."""
    import webdataset  # noqa: F401  (loads webdataset.gopen; the build process has torch already)

    scheme = "pipe" if url.startswith("pipe:") else url.split("://", 1)[0].lower()
    schemes = set(sys.modules["webdataset.gopen"].gopen_schemes) - {"__default__"} | {"file"}
    if scheme not in schemes:
        raise SourceError(f"{named}: shard URL {url}: webdataset cannot open {scheme}:// URLs (it opens "
                          f"{', '.join(sorted(schemes))}); use pipe:<command> (e.g. pipe:aws s3 cp {url} -) "
                          "or a local copy")


def _check_header(path: str, named: str) -> None:
    try:
        with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
            tar.next()
    except SHARD_READ_ERRORS as err:
        raise SourceError(f"{named}: shard {path} is not a readable tar file ({type(err).__name__}: {err}); "
                          "re-download or remove it") from err


def _first_sample(urls: list[str], named: str) -> tuple[str, dict]:
    """The first sample of the first readable shard (to tell whether the shards are labelled)."""
    for url in urls[:LABEL_PROBE]:
        try:
            first = next(iter_tar_samples(url), None)
        except SHARD_READ_ERRORS as err:  # the build records it when it gets there
            log.warning("%s: cannot be read (%s); trying the next shard for a first sample", url, err)
            continue
        if first is not None:
            return first
        if url == urls[0]:
            raise SourceError(f"{named}: shard {url} holds no samples")
    raise SourceError(f"{named}: none of the first {min(len(urls), LABEL_PROBE)} shard(s) yields a sample "
                      f"({urls[0]} ...); check that they are complete WebDataset tars (re-download them)")



def _shard_label(raw: bytes | None, where: str) -> int | None:
    if raw is None:
        return None
    text = raw.decode("ascii", errors="replace").strip()
    if not LABEL.fullmatch(text):
        log.warning("%s: cls %r is not a non-negative integer; treating the sample as unlabelled", where, text)
        return None
    return int(text)


def read_wids_index(path: Path, named: str) -> list[str]:
    """Shard urls of a wids index.json (``shardlist[].url``, relative ones against its folder)."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SourceError(f"{named}: cannot read it as a JSON shard index ({err}); give a wids index.json, "
                          "shards, a folder or a path[,label] list") from err
    shardlist = doc.get("shardlist") if isinstance(doc, dict) else None
    if not isinstance(shardlist, list) or not shardlist or not all(
            isinstance(s, dict) and isinstance(s.get("url"), str) for s in shardlist):
        kind = doc.get("__kind__") if isinstance(doc, dict) else None
        raise SourceError(f"{named}: not a wids shard index (__kind__ {kind!r}, expected {INDEX_KIND!r} with a "
                          "non-empty shardlist of {url, ...}); give shards, a folder or a path[,label] list")
    return index_urls(doc, path.parent)
