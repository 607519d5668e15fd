"""Precision of the editors' model stages: bf16 autocast, IEEE float32 (no TF32) and TF32 convolutions,
each entered and left around one stage with the caller's global settings restored."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from genaug.registry import PRECISIONS


def resolve_precision(precision: str, device: torch.device, sensitive: bool = False) -> torch.dtype | None:
    """Autocast dtype of a model stage: bf16 for 'bf16', and for 'auto' on CUDA unless the stage is
    `sensitive` (its output picks discrete things: VQ token ids, instance features); else None (fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {list(PRECISIONS)}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda" and not sensitive):
        return torch.bfloat16
    return None


def encoder_uses_tf32(precision: str, device: torch.device) -> bool:
    """--precision auto on CUDA runs the convolutions of the sensitive encoder stages (VQGAN encoder,
    SwAV ResNet-50: both all-convolution) in TF32: measured VQ token agreement with exact fp32 ~99.8%
    (TF32 emulated on the CPU, docs/methods.md "Precision policy") against ~97.5% for bf16, at tensor-core
    speed (an H100's dense TF32 peak is ~7x its non-tensor fp32 peak). Matmuls, among them the VQ
    nearest-code search, stay exact fp32."""
    return precision == "auto" and torch.device(device).type == "cuda"


def dtype_name(dtype: torch.dtype | None, tf32: bool = False) -> str:
    if dtype is None:
        return "tf32" if tf32 else "fp32"
    return str(dtype).replace("torch.", "")


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None, tf32: bool = False) -> Iterator[None]:
    """One model stage: bf16 autocast on `device` when dtype is set, else plain fp32; every float32
    convolution and matmul in it is IEEE float32 (no TF32, see exact_fp32), unless `tf32` (and no dtype):
    then float32 convolutions may use TF32 tensor cores, matmuls stay exact (see tf32_convolutions)."""
    if tf32 and dtype is None:
        with tf32_convolutions():
            yield
        return
    with exact_fp32():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """Run float32 convolutions and matmuls in IEEE float32 inside; restore the caller's settings after.

    PyTorch lets cuDNN use TF32 for float32 convolutions by default (`torch.backends.cudnn.allow_tf32`
    is True), and `torch.set_float32_matmul_precision("high"/"medium")` does the same for matmuls, so
    "fp32" on an Ampere+ GPU is otherwise not float32 and can flip VQ token ids. The settings are
    changed through the API family in which the caller's state reads consistently: the legacy flags
    normally, the `fp32_precision` properties when the caller has mixed the two and the legacy getters
    refuse to answer. The settings are process-global: other threads running torch ops meanwhile see
    them too. Costs nothing on the CPU (the flags only steer cuDNN/cuBLAS and oneDNN matmuls)."""
    with _float32_mode(tf32=False):
        yield


@contextlib.contextmanager
def tf32_convolutions() -> Iterator[None]:
    """Inside, float32 cuDNN convolutions may run as TF32 (10-bit mantissa operands, float32
    accumulation); matmuls and CPU (oneDNN) work stay IEEE float32; the caller's settings restored after,
    through the same API family as exact_fp32."""
    with _float32_mode(tf32=True):
        yield


@contextlib.contextmanager
def _float32_mode(tf32: bool) -> Iterator[None]:
    legacy = None
    if not _backend_wide_fp32_precision():
        try:
            legacy = (torch.get_float32_matmul_precision(), bool(torch.backends.cudnn.allow_tf32))
        except RuntimeError:  # "mix of the legacy and new APIs": the caller uses fp32_precision
            legacy = None
    with (_exact_fp32_new_api(tf32) if legacy is None else _exact_fp32_legacy(*legacy, tf32=tf32)):
        yield


def _backend_wide_fp32_precision() -> bool:
    """True when the caller set a backend-wide `fp32_precision` (torch >= 2.9), which the legacy
    per-library flags do not override."""
    b = torch.backends
    values = [getattr(b, "fp32_precision", "none"), getattr(b.cudnn, "fp32_precision", "none"),
              getattr(b.mkldnn, "fp32_precision", "none")]
    return any(v != "none" for v in values)


@contextlib.contextmanager
def _exact_fp32_legacy(matmul_precision: str, cudnn_tf32: bool, tf32: bool = False) -> Iterator[None]:
    """Through torch.set_float32_matmul_precision ('highest') and torch.backends.cudnn.allow_tf32 (True
    when `tf32`, else False); flags already as wanted are left untouched, so in the default state exact
    mode changes nothing but cuDNN's."""
    want_matmul = "highest"
    try:
        if matmul_precision != want_matmul:
            torch.set_float32_matmul_precision(want_matmul)
        if cudnn_tf32 != tf32:
            torch.backends.cudnn.allow_tf32 = tf32
        yield
    finally:
        if cudnn_tf32 != tf32:
            torch.backends.cudnn.allow_tf32 = cudnn_tf32
        if matmul_precision != want_matmul:
            torch.set_float32_matmul_precision(matmul_precision)


def _fp32_precision_ops() -> list:
    """The per-backend float32 precision settings of the fp32_precision API (torch >= 2.9)."""
    b = torch.backends
    return [b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn, b.mkldnn.matmul, b.mkldnn.conv]


@contextlib.contextmanager
def _exact_fp32_new_api(tf32: bool = False) -> Iterator[None]:
    """Through the fp32_precision properties: each op 'ieee' inside (cuDNN conv 'tf32' when `tf32`), its
    own string restored after."""
    ops = _fp32_precision_ops()
    saved = [op.fp32_precision for op in ops]
    conv = torch.backends.cudnn.conv
    try:
        for op in ops:
            op.fp32_precision = "tf32" if tf32 and op is conv else "ieee"
        yield
    finally:
        for op, value in zip(ops, saved):
            op.fp32_precision = value
