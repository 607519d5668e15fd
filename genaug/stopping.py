"""How a run stops: on a signal, or on an operating-system error.

SIGTERM (what SLURM, `kill` and container runtimes send before SIGKILL)
is turned into a `Terminated` exception in the main thread, so it unwinds like Ctrl-C's
KeyboardInterrupt: the shard being written is dropped cleanly, manifest.json is marked "interrupted",
and the CLI says how to resume and exits 143 (128 + SIGTERM; Ctrl-C exits 130). Imports nothing heavy:
the CLI installs the handler before it loads torch.
"""

from __future__ import annotations

import contextlib
import errno
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


OS_ERROR_HINTS = {
    errno.ENOSPC: "free disk space (e.g. df -h on --out)",
    errno.EDQUOT: "free disk space or raise your quota",
    errno.EACCES: "check the permissions of that file or folder",
    errno.EPERM: "check the permissions of that file or folder",
    errno.EROFS: "choose an --out on a writable file system",
    errno.EIO: "check the disk (an I/O error)",
}


def os_error_message(err: OSError) -> str:
    """'the build stopped: <reason> (<file>); <what to do> and rerun', the hint matching the errno
    (the disk-space hint only for a full disk or quota)."""
    where = f" ({err.filename})" if err.filename else ""
    hint = OS_ERROR_HINTS.get(err.errno, "fix that")
    return f"the build stopped: {err.strerror or err}{where}; {hint} and rerun"
