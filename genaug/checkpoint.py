"""The one checkpoint loader: ``torch.load(weights_only=True)`` of a file that must hold a dict, with one
mapping of what torch raises to a short reason. Nothing is ever unpickled beyond tensors and plain
containers, and messages never pass on torch's advice to retry with ``weights_only=False``."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

# what torch.load(weights_only=True) raises for files that are not (intact) checkpoints
LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, KeyError, EOFError, zipfile.BadZipFile, ValueError,
               TypeError, AttributeError, IndexError)


class CheckpointError(ValueError):
    """A file that is not a loadable checkpoint; the message names the file and the reason."""


def reason(err: BaseException) -> str:
    """One line on why a checkpoint did not load (torch's weights_only advice is not repeated)."""
    if isinstance(err, pickle.UnpicklingError):
        return "it holds pickled objects other than tensors and plain containers, which genaug never unpickles"
    first = (str(err).strip().splitlines() or [""])[0]
    if "weights_only" in first:
        first = "the weights-only loader refused it"
    return f"{type(err).__name__}: {first[:200] or 'no detail'}"


def load_checkpoint(path: str | Path, what: str) -> dict:
    """The dict in the checkpoint at `path` (on the CPU). FileNotFoundError when it is absent;
    CheckpointError naming the file, `what` it should hold and the reason, when it is no such checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err}); expected {what}") from err
    except LOAD_ERRORS as err:
        raise CheckpointError(f"{path}: not {what} ({reason(err)})") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not {what} (it holds a {type(payload).__name__}, not a dict)")
    return payload
