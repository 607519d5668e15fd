"""Building the editor of a settings build: failures to load its weights become a ConfigError that
names the files, the preset and what to do (the build has changed nothing at that point)."""

from __future__ import annotations

import logging
import pickle
import zipfile

import torch
from msgpack.exceptions import UnpackException as _MsgpackError  # unpack errors that are no ValueError

from genaug.build.config import BuildSettings, ConfigError
from genaug.checkpoint import reason as load_error_reason
from genaug.registry import EditorContext

log = logging.getLogger(__name__)


# what torch.load (weights_only), the flax msgpack reader and the converters raise on a damaged file
WEIGHT_LOAD_ERRORS = (pickle.UnpicklingError, KeyError, EOFError, zipfile.BadZipFile, _MsgpackError, RuntimeError,
                      OSError)


def build_editor(settings: BuildSettings):
    ctx = EditorContext(
        preset=settings.preset,
        weights=settings.weights,
        device=settings.device,
        precision=settings.config.precision,
        options=settings.options,
    )
    return settings.preset.build(ctx)


def make_editor(settings: BuildSettings):
    """The editor, or ConfigError: bad option values for the model, or weight files that cannot be loaded."""
    preset = settings.preset.name
    try:
        return build_editor(settings)
    except torch.cuda.OutOfMemoryError as err:  # a RuntimeError, but not the files' fault
        raise ConfigError(f"preset {preset!r}: the model does not fit on --device {settings.device} ({err}); "
                          "free the device or use another --device") from err
    except ValueError as err:  # editors check their option values against the model; loaders check files
        if _names_weights(err, settings):
            raise ConfigError(_weights_message(settings, err)) from err
        raise ConfigError(f"{preset}: {err}") from err
    except WEIGHT_LOAD_ERRORS as err:
        if not settings.weights:  # random-init presets load no file: not a user problem
            raise
        raise ConfigError(_weights_message(settings, err)) from err


def _names_weights(err: Exception, settings: BuildSettings) -> bool:
    text = str(err)
    return any(str(path) in text or path.name in text for path in settings.weights.values())


def _weights_message(settings: BuildSettings, err: Exception) -> str:
    preset = settings.preset.name
    files = ", ".join(str(p) for p in settings.weights.values()) or "(none)"
    if settings.config.weights is not None:
        todo = f"check --weights {settings.config.weights} (it must hold the files `genaug models` lists for {preset})"
    else:
        todo = "delete the damaged file(s) and rerun to download them again (`genaug models` lists the URLs)"
    return (f"preset {preset!r}: cannot load its weights from {files}: {load_error_reason(err)}. "
            f"The file may be corrupt or incomplete; {todo}.")
