"""Helpers shared by the built-in editors: input checks, per-sample generators, uint8 output, and the
fixed-shape compute chunks that make an editor's output independent of the batch size (precision
contexts: genaug.methods.precision, re-exported here)."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import time
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from genaug.methods.precision import (  # noqa: F401  (re-exported: the editors' precision helpers)
    PRECISIONS,
    autocast,
    dtype_name,
    encoder_uses_tf32,
    exact_fp32,
    resolve_precision,
    tf32_convolutions,
)
from genaug.seeding import generator, sample_seed

log = logging.getLogger(__name__)


RANDOM_INIT_WARNING = (
    "preset %r has RANDOM weights: its images are meaningless noise, for tests and smoke runs only. "
    "Use %r for real augmentations."
)


def check_batch(images: torch.Tensor, seeds: Sequence[int], labels: torch.Tensor, resolution: int) -> int:
    """Validate an edit() call; returns the batch size."""
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (3, resolution, resolution):
        raise ValueError(
            f"images: got {images.dtype} {tuple(images.shape)}; expected uint8 (B, 3, {resolution}, {resolution})"
        )
    batch = images.shape[0]
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {batch}; pass one seed per sample")
    if labels.shape != (batch,):
        raise ValueError(f"labels: got shape {tuple(labels.shape)}; expected ({batch},) with -1 = no label")
    return batch


def stream_generators(seeds: Sequence[int], stream: str, device: torch.device | str) -> list[torch.Generator]:
    """One generator per sample for a named random stream (independent streams per purpose)."""
    return [generator(sample_seed(int(s), "edit", stream), device) for s in seeds]


def stream_seed(seed: int, stream: str) -> int:
    """The seed of a sample's named stream, recorded in the edit params."""
    return sample_seed(int(seed), "edit", stream)


def to_uint8(images: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Float images in [low, high] (unclipped) -> uint8 (clamp, scale, round)."""
    scaled = (images.float() - low) * (255.0 / (high - low))
    return scaled.clamp_(0.0, 255.0).round_().to(torch.uint8)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def random_init_seeded(build, seed: int):
    """Run `build()` with the CPU RNG seeded to `seed`, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# ---- batch-size independence ----------------------------------------------------------------------
# Batched kernels round differently for different batch shapes (oneDNN convolution algorithms, GEMM
# blocking, cuBLAS split-K) and for different CPU thread counts. At ONE fixed shape a sample's result is
# bit-identical whatever its position in the batch and whatever its neighbours (measured on both tiny
# presets, CPU, 1 and 2 threads, chunks of 8 and 16). So the editors run every model stage on chunks of
# exactly `compute_chunk` samples, whatever batch the pipeline hands over, and on the CPU pin torch's
# intra-op threads to CPU_THREADS while they compute.
#
# The CUDA chunk (40, every stage of both methods) is chosen by reasoning until measured on a GPU
# (benchmarks/bench_device.py sweeps chunks; see docs/build.md "Compute chunks"): it divides the default
# --shard-size 1000, so no batch of a default build is padded; 40 x 257 = 10,280 tokens per transformer
# GEMM (80 row tiles of 128 x 3 to 12 column tiles: >= 1.8 waves on 132 SMs); VQGAN and BigGAN activations
# at 256 px of 40 images fit a 24 GB card in bf16, so every common GPU runs the same chunk (same bytes).
COMPUTE_CHUNKS = {"cpu": 8, "cuda": 40}  # samples per model call, by device type (every preset)
DEFAULT_COMPUTE_CHUNK = 8  # other device types
CPU_THREADS = 1  # torch intra-op threads of CPU editor stages (CPU builds are smoke runs)
AUTO_BATCH = "auto"  # --batch-size auto: the editor's compute chunk
FALLBACK_AUTO_BATCH = 16  # --batch-size auto for editors without fixed compute chunks


def compute_chunk_for(device: torch.device) -> int:
    """The fixed number of samples per model call on `device` (independent of --batch-size)."""
    return COMPUTE_CHUNKS.get(torch.device(device).type, DEFAULT_COMPUTE_CHUNK)


def auto_batch_size(editor) -> int:
    """--batch-size auto: the editor's compute chunk times its chunk workers (whole chunks, so no padding,
    one per CPU core), or FALLBACK_AUTO_BATCH for editors that take any batch as it comes."""
    chunk = getattr(editor, "compute_chunk", None)
    return int(chunk) * int(getattr(editor, "chunk_workers", 1) or 1) if chunk else FALLBACK_AUTO_BATCH


def cpu_chunk_workers() -> int:
    """Threads that compute CPU chunks side by side: the cores this process may use (each chunk runs on
    one thread with one torch intra-op thread, so a chunk's bytes do not depend on this number)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_chunks(fn: Callable[..., Any], chunk: int | None, *args: Any, workers: int = 1) -> Any:
    """fn over fixed-shape chunks of exactly `chunk` samples; returns fn's outputs for the real samples.

    args: per-sample tensors (leading dim B) or sequences of B items; fn returns a tensor or a tuple of
    tensors / lists with one entry per sample of its chunk. The last chunk is padded by repeating its last
    sample; padding results are discarded. Per-sample torch.Generators must not be passed (a padding copy
    would consume the real sample's draws): pass seeds and make the generators inside fn, so padding gets
    fresh generators. chunk None: one call on the whole batch (the unpadded path of timing probes).
    workers > 1: chunks run concurrently in that many threads (each under the caller's grad mode), results
    in chunk order; only for CPU work with one torch intra-op thread (see FixedChunks)."""
    n = len(args[0])
    if any(len(a) != n for a in args):
        raise ValueError(f"map_chunks: per-sample arguments of lengths {[len(a) for a in args]}")
    if any(isinstance(a, (list, tuple)) and any(isinstance(v, torch.Generator) for v in a) for a in args):
        raise TypeError("map_chunks: pass seeds, not torch.Generators (padding would share their draws)")
    if chunk is None or n == 0:
        return fn(*args)
    grad = torch.is_grad_enabled()

    def one(start: int):
        real = min(chunk, n - start)
        with torch.set_grad_enabled(grad):  # grad mode is per thread
            out = fn(*(_pad(a[start:start + real], chunk) for a in args))
        return tuple(o[:real] for o in out) if isinstance(out, tuple) else out[:real]

    starts = range(0, n, chunk)
    if workers > 1 and len(starts) > 1:
        with cf.ThreadPoolExecutor(min(workers, len(starts)), thread_name_prefix="genaug-chunk") as pool:
            pieces = list(pool.map(one, starts))
    else:
        pieces = [one(start) for start in starts]
    if not isinstance(pieces[0], tuple):
        return _join(pieces)
    return tuple(_join(list(parts)) for parts in zip(*pieces))


def _pad(part: Any, size: int) -> Any:
    missing = size - len(part)
    if missing == 0:
        return part
    if isinstance(part, torch.Tensor):
        return torch.cat([part, part[-1:].expand(missing, *part.shape[1:])])
    return list(part) + [part[-1]] * missing


def _join(parts: list) -> Any:
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [v for p in parts for v in p]


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """torch intra-op threads set to `threads` inside (None: unchanged); the caller's count restored after.
    The setting is process-global."""
    saved = torch.get_num_threads()
    change = threads is not None and threads != saved
    try:
        if change:
            torch.set_num_threads(threads)
        yield
    finally:
        if change:
            torch.set_num_threads(saved)


@contextlib.contextmanager
def heuristic_cudnn() -> Iterator[None]:
    """cuDNN picks its convolution algorithms by shape heuristics inside (`torch.backends.cudnn.benchmark`
    False), not by timing them, which can pick different algorithms from run to run; restored after."""
    saved = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


class FixedChunks:
    """Mixin of the built-in editors: model stages on fixed-shape chunks, CPU threads pinned.

    compute_chunk: samples per model call (None: the whole batch, see `unchunked`); cpu_threads: torch
    threads while computing on the CPU (None on other devices: left as the caller set them)."""

    compute_chunk: int | None = None
    cpu_threads: int | None = None
    chunk_workers: int = 1  # chunks computed side by side (CPU only: one thread each)

    def init_chunks(self, device: torch.device) -> None:
        self.compute_chunk = compute_chunk_for(device)
        self.cpu_threads = CPU_THREADS if device.type == "cpu" else None
        self.chunk_workers = cpu_chunk_workers() if device.type == "cpu" else 1
        self._chunk_hint_logged = False

    def run_chunked(self, fn: Callable[..., Any], *args: Any) -> Any:
        """map_chunks(fn, self.compute_chunk, *args) with the CPU threads pinned and cuDNN autotuning off."""
        n, chunk = len(args[0]), self.compute_chunk
        if chunk and n % chunk and not getattr(self, "_chunk_hint_logged", True):
            self._chunk_hint_logged = True
            log.info("batch of %d is not a multiple of the editor's fixed compute chunk of %d samples: the last "
                     "chunk of each batch is padded (same output, wasted compute); use a --batch-size that is a "
                     "multiple of %d", n, chunk, chunk)
        workers = self.chunk_workers if self.cpu_threads == 1 else 1
        # exact fp32 held by this thread for the whole call, so the chunk threads' own (nested) contexts
        # find the flags as they want them and write nothing (the flags are process-global)
        with pinned_threads(self.cpu_threads), heuristic_cudnn(), \
                (exact_fp32() if workers > 1 else contextlib.nullcontext()):
            return map_chunks(fn, chunk, *args, workers=workers)

    def chunk_facts(self) -> dict:
        """For describe(): the settings that fix the kernels' shapes and threads (chunk_workers does not
        change the output)."""
        return {"compute_chunk": self.compute_chunk, "cpu_threads": self.cpu_threads,
                "chunk_workers": self.chunk_workers}


class BuiltinSettings(FixedChunks):
    """Mixin of the built-in editors: the run settings each keeps and describes (the preset's name and
    random_init, device, precision and its autocast dtypes, options) and the fixed-shape chunks."""

    def init_settings(self, preset: Any, device: torch.device, precision: str, options: Any) -> None:
        """amp_dtype: autocast dtype of the main stages; encoder_dtype: of the sensitive encoder stage
        (its output picks discrete things: VQ token ids, instance features), see resolve_precision."""
        self.preset = preset.name
        self.random_init = preset.random_init
        self.device = device
        self.precision = precision
        self.amp_dtype = resolve_precision(precision, device)
        self.encoder_dtype = resolve_precision(precision, device, sensitive=True)
        self.encoder_tf32 = encoder_uses_tf32(precision, device)
        self.options = dict(options)
        self.init_chunks(device)

    def settings_facts(self) -> dict:
        """For describe(): precision, autocast dtypes, device, random_init and the chunk settings."""
        return {"precision": self.precision, "autocast": dtype_name(self.amp_dtype),
                "autocast_encoder": dtype_name(self.encoder_dtype, self.encoder_tf32), "device": str(self.device),
                "random_init": self.random_init, **self.chunk_facts()}


@contextlib.contextmanager
def unchunked(editor) -> Iterator[None]:
    """Inside, a FixedChunks editor runs each edit() call as ONE model call on the batch as given (no
    padding): for timing a true batch-1 (or batch-B) forward. Its output may then differ from the build's
    in the last float bits. A no-op for other editors."""
    if not isinstance(editor, FixedChunks):
        yield
        return
    saved = editor.compute_chunk
    editor.compute_chunk = None
    try:
        yield
    finally:
        editor.compute_chunk = saved


def time_editor(editor, batch_size: int, n_images: int, seed: int = 0, chunked: bool = False) -> float:
    """Seconds per image of `editor.edit` at `batch_size`, over at least `n_images` images after one
    warm-up batch (random uint8 inputs, labels 0, synchronised on CUDA). For benchmarks.

    chunked False (default): one model call on exactly `batch_size` samples (`unchunked`: batch 1 is a
    true batch-1 forward); True: as the build runs it, in the editor's fixed compute chunks."""
    device = getattr(editor, "device", torch.device("cpu"))
    r = editor.resolution
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 3, r, r), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.zeros(batch_size, dtype=torch.long, device=device)
    batches = max(1, -(-n_images // batch_size))

    def run(i: int) -> None:
        editor.edit(images, [seed + i * batch_size + j for j in range(batch_size)], labels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with contextlib.nullcontext() if chunked else unchunked(editor):
        run(-1)  # warm-up: allocator, kernels, autotuning
        start = time.perf_counter()
        for i in range(batches):
            run(i)
        return (time.perf_counter() - start) / (batches * batch_size)


def sweep_batch_sizes(editor, batch_sizes: Sequence[int], n_images: int) -> list[dict]:
    """time_editor (unchunked: one model call per batch) at each batch size:
    [{batch_size, ms_per_image, images_per_s, ratio_to_batch1}].

    The ratio is batch 1's ms/image divided by this batch size's (the speed-up), measured in this run."""
    rows = []
    for bs in batch_sizes:
        s = time_editor(editor, bs, max(n_images, bs))
        rows.append({"batch_size": bs, "ms_per_image": 1000.0 * s, "images_per_s": 1.0 / s})
    base = next((r["ms_per_image"] for r in rows if r["batch_size"] == 1), None)
    for r in rows:
        r["ratio_to_batch1"] = base / r["ms_per_image"] if base else None
    return rows
