"""CPU work of the build, run in worker processes: read + decode + resize, and image encoding.

Tasks work on whole batches (one pickle round trip per batch). `make_executor(0)` runs every
task in-process, immediately, behind the same `submit()` interface, so the pipeline has one
code path. Workers are started with the "spawn" method (safe beside CUDA and threads) and pin
their thread pools to one thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
PARENT_POLL_S = 1.0  # how often a worker checks that the build process is still alive
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # left to the build process, which stops the pool


@dataclasses.dataclass
class Decoded:
    """One input after the decode stage: either `prepared` or an error `reason`."""

    item: Any  # genaug.build.sources.SourceItem (bytes dropped after decoding)
    prepared: Any = None  # genaug.build.preprocess.Prepared, None when the input is bad
    reason: str | None = None  # why the input was skipped


def init_worker(parent_pid: int | None = None) -> None:
    """Process initialiser: one thread per worker (the machine's cores are shared); Ctrl-C and SIGTERM
    (sent to the whole process group by a terminal or SLURM) are left to the build process, which stops
    the pool cleanly; the worker exits when the build process dies."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked since the spawn (_QuietSpawnProcess)
    for name in _THREAD_ENV:
        os.environ[name] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="genaug-parent-watch",
                         daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    """Exit at once when the build process is gone (e.g. killed with SIGKILL), instead of lingering."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def decode_batch(items: Sequence[Any], resolution: int, resample: str = "bicubic") -> tuple[list[Decoded], float]:
    """Read and preprocess each item (resized with the `resample` filter, see preprocess.prepare); bad
    inputs become a Decoded with a reason. Returns seconds spent."""
    from genaug.build.preprocess import BadInput, prepare
    from genaug.build.sources.base import read_item_bytes

    start = time.perf_counter()
    out = []
    for item in items:
        try:
            prepared = prepare(read_item_bytes(item), resolution, resample)
        except BadInput as err:
            out.append(Decoded(dataclasses.replace(item, data=None), reason=str(err) or type(err).__name__))
            continue
        except OSError as err:  # e.g. permission denied or a file that vanished mid-run
            reason = f"cannot read: {err.strerror or err}"
            out.append(Decoded(dataclasses.replace(item, data=None), reason=reason))
            continue
        out.append(Decoded(dataclasses.replace(item, data=None), prepared=prepared))
    return out, time.perf_counter() - start


def encode_image(image: np.ndarray, fmt: str, quality: int) -> bytes:
    """(3, H, W) uint8 -> encoded bytes (JPEG/WebP at `quality`, PNG lossless)."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), mode="RGB")
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, format="PNG", compress_level=6)
    elif fmt == "jpg":
        pil.save(buf, format="JPEG", quality=quality)
    elif fmt == "webp":
        pil.save(buf, format="WEBP", quality=quality, method=4)
    else:
        raise ValueError(f"unknown image format {fmt!r}; choose one of {sorted(_PIL_FORMATS)}")
    return buf.getvalue()


def encode_batch(images: np.ndarray, fmt: str, quality: int) -> tuple[list[bytes], float]:
    """images: (B, 3, H, W) uint8 -> B encoded images, and the seconds spent."""
    start = time.perf_counter()
    out = [encode_image(img, fmt, quality) for img in images]
    return out, time.perf_counter() - start


class InlineExecutor(cf.Executor):
    """Runs each task at submit time in the calling process (``--num-workers 0``)."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # handed to the caller through the future, as a pool would
            future.set_exception(err)
        return future


class _QuietSpawnProcess(multiprocessing.get_context("spawn").Process):
    """A spawned worker that starts with Ctrl-C and SIGTERM blocked, so a signal sent to the process group
    while it is still importing cannot print a KeyboardInterrupt traceback (init_worker ignores both,
    then unblocks them). The spawning thread blocks them only while it starts the child: nothing is lost,
    a signal that came meanwhile is delivered to it right after."""

    def start(self) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _QuietSpawnContext(type(multiprocessing.get_context("spawn"))):
    Process = _QuietSpawnProcess


def make_executor(num_workers: int) -> cf.Executor:
    """A process pool of `num_workers` spawned workers, or an InlineExecutor for 0."""
    if num_workers == 0:
        return InlineExecutor()
    return cf.ProcessPoolExecutor(
        max_workers=num_workers,
        mp_context=_QuietSpawnContext(),
        initializer=init_worker,
        initargs=(os.getpid(),),
    )
