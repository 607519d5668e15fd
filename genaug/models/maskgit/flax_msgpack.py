"""Reader for flax msgpack checkpoints (`flax.serialization.to_bytes` / `msgpack_serialize`),
written against the documented wire format, using the `msgpack` package only (no jax/flax).

Format: a msgpack map tree whose array leaves are msgpack ExtType values:
  code 1 (ndarray):  payload = msgpack [shape, dtype name, C-order bytes]
  code 2 (complex):  payload = msgpack [real, imag]
  code 3 (npscalar): as code 1, a 0-d array returned as a numpy scalar
Arrays above 2**30 bytes are split into a map {"__msgpack_chunked_array__": True,
"shape": {"0": d0, ...}, "chunks": {"0": flat0, ...}}.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

log = logging.getLogger(__name__)

EXT_NDARRAY = 1
EXT_COMPLEX = 2
EXT_NPSCALAR = 3
CHUNKED_MARKER = "__msgpack_chunked_array__"


class CheckpointFormatError(ValueError):
    """The bytes are not a flax msgpack checkpoint of the expected layout."""


def _decode_ndarray(payload: bytes) -> np.ndarray:
    shape, dtype_name, buffer = msgpack.unpackb(payload, raw=True)
    name = dtype_name.decode("ascii") if isinstance(dtype_name, bytes) else str(dtype_name)
    if name == "bfloat16":  # no numpy dtype: widen exactly to float32 (bf16 is the top half)
        bits = np.frombuffer(buffer, dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    try:
        dtype = np.dtype(name)
    except TypeError as err:
        raise CheckpointFormatError(f"unsupported array dtype {name!r} in flax msgpack data") from err
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _ext_hook(code: int, payload: bytes) -> Any:
    if code == EXT_NDARRAY:
        return _decode_ndarray(payload)
    if code == EXT_NPSCALAR:
        return _decode_ndarray(payload)[()]
    if code == EXT_COMPLEX:
        real, imag = msgpack.unpackb(payload)
        return complex(real, imag)
    raise CheckpointFormatError(f"unknown msgpack extension type {code} in flax msgpack data")


def _from_index_map(d: dict) -> list:
    return [d[str(i)] for i in range(len(d))]


def _unchunk(tree: Any) -> Any:
    if not isinstance(tree, dict):
        return tree
    if tree.get(CHUNKED_MARKER) is True:
        shape = tuple(int(s) for s in _from_index_map(tree["shape"]))
        return np.concatenate(_from_index_map(tree["chunks"])).reshape(shape)
    return {k: _unchunk(v) for k, v in tree.items()}


def loads(data: bytes) -> dict:
    """Decode flax msgpack bytes into a nested dict of numpy arrays (read-only views)."""
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except CheckpointFormatError:
        raise
    except ValueError as err:  # msgpack's ExtraData / FormatError / StackError are ValueErrors
        raise CheckpointFormatError(f"not a flax msgpack checkpoint: {err}") from err
    if not isinstance(tree, dict):
        raise CheckpointFormatError(f"flax msgpack data holds a {type(tree).__name__}, expected a dict tree")
    return _unchunk(tree)


def load(path: str | Path) -> dict:
    """Read a flax msgpack checkpoint file (e.g. the official `maskgit_imagenet256_checkpoint`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    log.info("reading flax msgpack checkpoint %s (%.1f MB)", path, path.stat().st_size / 1e6)
    try:
        return loads(path.read_bytes())
    except CheckpointFormatError as err:
        raise CheckpointFormatError(f"{path}: {err}") from err


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": x}} -> {"a/b": x}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = value
    return out
