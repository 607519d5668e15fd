"""Building the editor of a resolved build: failures to load its weights become a ConfigError that
names the files, the preset and what to do (the build has changed nothing at that point)."""

from __future__ import annotations

import logging
import pickle
import zipfile

import torch

from genaug.config import ConfigError, ResolvedBuild
from genaug.registry import EditorContext
from genaug.weights import describe_load_error

log = logging.getLogger(__name__)

try:  # msgpack's unpack errors that are no ValueError (OutOfData, BufferFull)
    from msgpack.exceptions import UnpackException as _MsgpackError
except ImportError:  # msgpack is only needed by the MaskGIT loaders
    class _MsgpackError(Exception):
        """Placeholder: never raised."""

# what torch.load (weights_only), the flax msgpack reader and the converters raise on a damaged file
WEIGHT_LOAD_ERRORS = (pickle.UnpicklingError, KeyError, EOFError, zipfile.BadZipFile, _MsgpackError, RuntimeError,
                      OSError)


def build_editor(resolved: ResolvedBuild):
    ctx = EditorContext(
        preset=resolved.preset,
        weights=resolved.weights,
        device=resolved.device,
        precision=resolved.config.precision,
        options=resolved.options,
    )
    return resolved.preset.build(ctx)


def make_editor(resolved: ResolvedBuild):
    """The editor, or ConfigError: bad option values for the model, or weight files that cannot be loaded."""
    preset = resolved.preset.name
    try:
        return build_editor(resolved)
    except torch.cuda.OutOfMemoryError as err:  # a RuntimeError, but not the files' fault
        raise ConfigError(f"preset {preset!r}: the model does not fit on --device {resolved.device} ({err}); "
                          "free the device or use another --device") from err
    except ValueError as err:  # editors check their option values against the model; loaders check files
        if _names_weights(err, resolved):
            raise ConfigError(_weights_message(resolved, err)) from err
        raise ConfigError(f"{preset}: {err}") from err
    except WEIGHT_LOAD_ERRORS as err:
        if not resolved.weights:  # random-init presets load no file: not a user problem
            raise
        raise ConfigError(_weights_message(resolved, err)) from err


def _names_weights(err: Exception, resolved: ResolvedBuild) -> bool:
    text = str(err)
    return any(str(path) in text or path.name in text for path in resolved.weights.values())


def _weights_message(resolved: ResolvedBuild, err: Exception) -> str:
    preset = resolved.preset.name
    files = ", ".join(str(p) for p in resolved.weights.values()) or "(none)"
    if resolved.config.weights is not None:
        todo = f"check --weights {resolved.config.weights} (it must hold the files `genaug models` lists for {preset})"
    else:
        todo = "delete the damaged file(s) and rerun to download them again (`genaug models` lists the URLs)"
    return (f"preset {preset!r}: cannot load its weights from {files}: {describe_load_error(err)}. "
            f"The file may be corrupt or incomplete; {todo}.")
