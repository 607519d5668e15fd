"""Shard finishing off the feeding thread: closing a shard (re-reading its spooled tar for md5 and sha256,
fsync, the atomic rename, the stats file that marks it done) runs in one background thread, so the
thread that feeds the editor never waits for it. Shards finish in the order they were handed over; the
caller collects each one's stats (and any error) on its own thread."""

from __future__ import annotations

import collections
import concurrent.futures as cf


class ShardFinisher:
    """One background thread that runs `shard.finish()` for each shard handed over, in order."""

    def __init__(self) -> None:
        self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix="genaug-shard-finish")
        self._queue: collections.deque = collections.deque()  # (shard, future of its stats)

    def submit(self, shard) -> None:
        self._queue.append((shard, self._pool.submit(shard.finish)))

    def collect(self, block: bool) -> list[tuple[object, dict]]:
        """(shard, stats) of the shards finished so far, in order (all of them when `block`); re-raises
        the first error of a finish on the calling thread."""
        done = []
        while self._queue and (block or self._queue[0][1].done()):
            shard, future = self._queue.popleft()
            done.append((shard, future.result()))
        return done

    def close(self) -> None:
        """Wait for the finishes in flight (a finished shard is valid whatever happens next), then stop."""
        self._pool.shutdown(wait=True)
