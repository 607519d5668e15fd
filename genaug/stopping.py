"""Stopping a run on a signal: SIGTERM (what SLURM, `kill` and container runtimes send before SIGKILL)
is turned into a `Terminated` exception in the main thread, so it unwinds like Ctrl-C's
KeyboardInterrupt: the shard being written is dropped cleanly, manifest.json is marked "interrupted",
and the CLI says how to resume and exits 143 (128 + SIGTERM; Ctrl-C exits 130). Imports nothing heavy:
the CLI installs the handler before it loads torch.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

EXIT_SIGINT = 130  # 128 + SIGINT
EXIT_SIGTERM = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt, so `except Exception` never swallows it)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"received signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises Terminated (main thread only); the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(err: BaseException) -> int:
    """The exit status for a stop by `err`: 143 for Terminated, 130 for KeyboardInterrupt."""
    return EXIT_SIGTERM if isinstance(err, Terminated) else EXIT_SIGINT
