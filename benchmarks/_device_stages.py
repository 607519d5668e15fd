"""Per-stage timing of the two editors for bench_device.py: ms/image, achieved TFLOP/s (FLOPs counted by
torch.utils.flop_counter at one image), MFU against a peak table and peak device memory, per chunk size.
Every stage runs in the precision context the editor uses in a build."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from genaug.methods.editing import autocast, pinned_threads

# dense (no sparsity) peaks in TFLOP/s: bf16 tensor (fp32 accumulate), TF32 tensor, non-tensor fp32.
# First matching name fragment wins (so "H100 PCIe" before "H100").
PEAKS = (
    ("H200", {"bf16": 989.0, "tf32": 494.7, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100", {"bf16": 989.0, "tf32": 494.7, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    ("4090", {"bf16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    ("3090", {"bf16": 71.0, "tf32": 35.6, "fp32": 35.6}),
)


def peak_for(device_name: str) -> dict | None:
    for fragment, peaks in PEAKS:
        if fragment.lower() in device_name.lower():
            return peaks
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mask_stages(editor, device: torch.device) -> dict[str, tuple[str, Callable[[int], Callable[[], object]]]]:
    """name -> (precision label, make(chunk) -> a no-argument call running the stage on `chunk` images)."""
    m, cfg = editor.model, editor.model.config
    enc_label = "tf32" if editor.encoder_tf32 else ("bf16" if editor.encoder_dtype else "fp32")
    amp = "bf16" if editor.amp_dtype else "fp32"

    def inputs(chunk: int):
        g = torch.Generator().manual_seed(chunk)
        x = torch.rand(chunk, 3, cfg.image_size, cfg.image_size, generator=g).to(device)
        tokens = torch.randint(0, cfg.codebook_size, (chunk, cfg.latent_size, cfg.latent_size), generator=g)
        seq = tokens.flatten(1).clone()
        seq.view(chunk, cfg.latent_size, cfg.latent_size)[:, 1:-1, 1:-1] = -1
        seq = torch.cat([torch.full((chunk, 1), cfg.codebook_size), seq], dim=1).to(device)
        return x, tokens.to(device), seq, torch.arange(chunk, dtype=torch.int64, device=device)

    def encode(chunk):
        x, *_ = inputs(chunk)
        return lambda: _run(device, editor.encoder_dtype, editor.encoder_tf32, lambda: m.encode(x))

    def one_pass(chunk):
        _, _, seq, _ = inputs(chunk)
        return lambda: _run(device, editor.amp_dtype, False, lambda: m.codebook_logits(seq))

    def decode_loop(chunk):
        _, _, seq, seeds = inputs(chunk)
        return lambda: _run(device, editor.amp_dtype, False, lambda: m.inpaint(seq, seeds=seeds))

    def vq_decode(chunk):
        _, tokens, _, _ = inputs(chunk)
        return lambda: _run(device, editor.amp_dtype, False, lambda: m.decode(tokens))

    return {"vqgan_encode": (enc_label, encode), "transformer_pass": (amp, one_pass),
            "decode_12_steps": (amp, decode_loop), "vqgan_decode": (amp, vq_decode)}


def noise_stages(editor, device: torch.device) -> dict:
    enc_label = "tf32" if editor.encoder_tf32 else ("bf16" if editor.encoder_dtype else "fp32")
    amp = "bf16" if editor.amp_dtype else "fp32"
    r = editor.resolution

    def swav(chunk):
        images = torch.randint(0, 256, (chunk, 3, r, r), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(chunk)).to(device)
        return lambda: torch.no_grad()(editor._features)(images)

    def generator(chunk):
        g = torch.Generator().manual_seed(chunk)
        z = torch.randn(chunk, editor.dim_z, generator=g).to(device)
        feats = torch.nn.functional.normalize(torch.randn(chunk, 2048, generator=g), dim=1).to(device)
        return lambda: torch.no_grad()(editor._generate)(z, feats)

    return {"swav_resnet50": (enc_label, swav), "generator": (amp, generator)}


@torch.no_grad()
def _run(device, dtype, tf32, fn):
    with autocast(device, dtype, tf32):
        return fn()


def count_flops(make: Callable[[int], Callable[[], object]]) -> int:
    """FLOPs of one image (matmuls and convolutions), counted by torch.utils.flop_counter."""
    call = make(1)
    with FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def time_stage(make, chunk: int, device: torch.device, min_seconds: float, max_reps: int) -> dict:
    """ms/image and peak memory of one stage at `chunk` images per call (one warm-up call first)."""
    call = make(chunk)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with pinned_threads(1 if device.type == "cpu" else None):
        call()
        _sync(device)
        reps, start = 0, time.perf_counter()
        while reps < max_reps and (reps == 0 or time.perf_counter() - start < min_seconds):
            call()
            reps += 1
        _sync(device)
        seconds = (time.perf_counter() - start) / (reps * chunk)
    row = {"chunk": chunk, "ms_per_image": 1000.0 * seconds, "images_per_s": 1.0 / seconds, "reps": reps}
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def sweep(stages: dict, chunks: list[int], device: torch.device, peaks: dict | None, min_seconds: float,
          max_reps: int, deadline: float = float("inf")) -> list[dict]:
    """Every stage at every chunk; rows past `deadline` (a perf_counter time) are skipped and say so."""
    rows = []
    for name, (precision, make) in stages.items():
        flops = count_flops(make)
        for chunk in chunks:
            if time.perf_counter() > deadline:
                rows.append({"stage": name, "chunk": chunk, "error": "skipped: time budget spent"})
                continue
            try:
                row = time_stage(make, chunk, device, min_seconds, max_reps)
            except torch.cuda.OutOfMemoryError:
                rows.append({"stage": name, "chunk": chunk, "error": "out of memory"})
                torch.cuda.empty_cache()
                continue
            tflops = flops * row["images_per_s"] / 1e12
            mfu = tflops / peaks[precision] if peaks else None
            rows.append({"stage": name, "precision": precision, "gflop_per_image": flops / 1e9,
                         "tflop_per_s": tflops, "mfu": mfu, **row})
    return rows
