"""The input stream cut into chunks and batches: chunk i (``shard_size`` inputs in source order) becomes
shard i; batches never span chunks, and an end marker follows each chunk, so a finished chunk is one atomic
unit that resume (and another rank) can skip without reading it. Also the background count of the inputs
that gives the progress bar its total."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Iterable, Iterator

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Batch:
    chunk: int  # shard index
    items: list  # SourceItems of one batch, all of the same chunk


@dataclasses.dataclass(frozen=True)
class _ChunkEnd:
    chunk: int


def iter_batches(items: Iterable, shard_size: int, batch_size: int, limit: int | None,
                 skip: set[int]) -> Iterator[_Batch | _ChunkEnd]:
    """Group the item stream into batches within chunks, with an end marker after each chunk.
    Items of chunks in `skip` are passed over without being read."""
    current, batch = None, []
    for item in items:
        if limit is not None and item.index >= limit:
            break
        chunk = item.index // shard_size
        if chunk != current:
            if batch:
                yield _Batch(current, batch)
                batch = []
            if current is not None and current not in skip:
                yield _ChunkEnd(current)
            current = chunk
        if chunk in skip:
            continue
        batch.append(item)
        if len(batch) == batch_size:
            yield _Batch(chunk, batch)
            batch = []
    if batch:
        yield _Batch(current, batch)
    if current is not None and current not in skip:
        yield _ChunkEnd(current)



def count_inputs_in_background(source, limit: int | None, progress: Any) -> threading.Thread | None:
    """Count the inputs in a thread and hand the total to ``progress.set_total`` (a pipeline.Progress; for an ETA).
    Shard sources are not counted: that would read every image twice."""
    if source.kind == "shards" or not hasattr(progress, "set_total"):
        return None

    def count() -> None:
        n = 0
        try:
            for _ in source:
                n += 1
                if limit is not None and n >= limit:
                    break
        except (OSError, ValueError) as err:  # the build itself reports problems with the source
            log.debug("counting the inputs stopped: %s", err)
            return
        progress.set_total(n)

    thread = threading.Thread(target=count, name="genaug-count-inputs", daemon=True)
    thread.start()
    return thread
