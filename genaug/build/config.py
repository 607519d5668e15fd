"""Build configuration: the user's settings, their validation before any work, and the resume fingerprint.

`BuildConfig` holds what the user asked for. `resolve()` checks every value (method, preset,
options, numbers, device, data, output folder, weights, scores) and returns a `BuildSettings`;
nothing is decoded, loaded or written before it succeeds. The fingerprint covers only the
settings that change the output: batch size, worker count and device index do not (device type does).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from genaug import __version__
from genaug.build.runfiles import fingerprint_inputs, fingerprint_of
from genaug.device import resolve_device
from genaug.errors import ConfigError
from genaug.format import AUG_FORMATS
from genaug.registry import PRECISIONS, REGISTRY, MethodSpec, Preset

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What the user asked `genaug build` to do."""

    method: str  # augmentation method: "mask" | "noise" (or a registered test method)
    out: Path  # output folder for shards and run files
    data: tuple[str, ...] | None = None  # folder / file list / shard urls; None -> $GENAUG_DATA -> samples
    preset: str | None = None  # model preset; None -> the method's default preset
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # method options, None = default
    batch_size: int | str = "auto"  # images per editor call; "auto": the compute chunk (not output-affecting)
    num_workers: int = 2  # decode/encode worker processes; 0 = all in-process (not output-affecting)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" (not output-affecting)
    precision: str = "auto"  # "auto" | "fp32" | "bf16", handed to the editor
    limit: int | None = None  # process only the first `limit` inputs
    seed: int = 0  # run seed; per-sample seed = sample_seed(seed, key)
    shard_size: int = 1000  # inputs per shard: input chunk i -> shard-{i:04d}.tar
    aug_format: str = "jpg"  # encoding of the augmented image: jpg | png | webp
    quality: int = 95  # JPEG/WebP quality 1..100 (PNG is lossless and ignores it)
    weights: Path | None = None  # weight file or folder overriding the preset's cached files
    overwrite: bool = False  # replace a build with a different configuration in `out`
    scores: tuple[str, ...] = ()  # per-sample scores stored in each json, e.g. ("ssim",)
    command: tuple[str, ...] = ()  # the command line, recorded in manifest.json


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """A validated configuration with everything looked up (immutable); made once by `resolve`."""

    config: BuildConfig
    method: MethodSpec
    preset: Preset
    options: Mapping[str, Any]  # validated method options with defaults filled in
    device: torch.device
    source: Any  # genaug.build.sources.Source
    weights: dict  # WeightFile.name -> Path
    weights_sha256: dict  # file name -> sha256
    fingerprint_inputs: dict  # the output-affecting settings
    fingerprint: str  # sha256 of fingerprint_inputs
    label_options: tuple[str, ...] = ()  # options set to "label": samples without a usable class are skipped


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"--{name} {value!r}: must be an integer {bound}")


def check_numbers(config: BuildConfig) -> None:
    """Validate the plain settings (no file system, no registry)."""
    if config.batch_size != "auto":
        if isinstance(config.batch_size, str):
            raise ConfigError(f"--batch-size {config.batch_size!r}: must be auto or an integer >= 1")
        _check_int("batch-size", config.batch_size, 1)
    _check_int("num-workers", config.num_workers, 0, 256)
    _check_int("shard-size", config.shard_size, 1)
    _check_int("seed", config.seed, 0, (1 << 63) - 1)
    _check_int("quality", config.quality, 1, 100)
    if config.limit is not None:
        _check_int("limit", config.limit, 1)
    if config.aug_format not in AUG_FORMATS:
        raise ConfigError(f"--aug-format {config.aug_format!r}: choose one of {list(AUG_FORMATS)}")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"--precision {config.precision!r}: choose one of {list(PRECISIONS)}")


def check_scores(names: Sequence[str]) -> tuple[str, ...]:
    if not names:
        return ()
    from genaug.report.scores import SCORES
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise ConfigError(f"--scores {','.join(unknown)}: unknown score; choose from {list(SCORES)}")
    return tuple(dict.fromkeys(names))


def check_out_dir(out: Path) -> Path:
    """Make sure `out` is, or can be created as, a writable folder; create nothing (see create_out_dir)."""
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; choose a folder path")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: cannot create it ({existing} is not a folder); choose a writable folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder is not writable" if existing == out else f"cannot create it in {existing} (not writable)"
        raise ConfigError(f"--out {out}: {what}; choose a writable folder")
    return out


def create_out_dir(out: Path) -> None:
    """Create the checked `out` (after every check of the build has passed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create it ({err.strerror}); choose a writable folder") from err


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _instead(method: MethodSpec, given: Mapping[str, Any], name: str) -> str:
    """'add --class-token random (or --class-token fixed:N)': the values the method suggests instead
    (MethodSpec.label_alternatives) that it accepts with the other options given."""
    flag, valid = _flag(name), []
    for probe, shown in method.label_alternatives:
        try:
            method.validate_options({**given, name: probe})
        except ValueError:
            continue
        valid.append(f"{flag} {shown}")
    if not valid:
        option = next(o for o in method.options if o.name == name)
        return f"choose another {flag} ({option.help})"
    return f"add {valid[0]}" + (f" (or {', '.join(valid[1:])})" if len(valid) > 1 else "")


def check_label_options(method: MethodSpec, options: Mapping[str, Any], source: Any,
                        given: Mapping[str, Any] | None = None) -> None:
    """An option set to "label" (e.g. a class-token strategy) needs a labelled source, and class
    folders named by ImageNet-1k wnids (the class handed to the editor is the ImageNet-1k index).
    `given`: the user's options as passed to validate_options (None: `options`)."""
    given = options if given is None else given
    for name in method.label_options(options):
        flag, instead = _flag(name), _instead(method, given, name)
        description = getattr(source, "description", source)
        if not getattr(source, "labelled", False):
            raise ConfigError(
                f"{flag} label: the data ({description}) has no labels; {instead}, or give labelled data "
                f"(ImageNet-style class folders, a path,label list, or shards with cls)"
            )
        unknown = source.non_imagenet_classes() if hasattr(source, "non_imagenet_classes") else []
        if unknown:
            raise ConfigError(
                f"{flag} label: class folder {unknown[0]!r} of {description} is not an ImageNet-1k wnid "
                f"({len(unknown)} such folder(s)), so its images have no ImageNet-1k class to condition on; "
                f"{instead}, or rename the folders to ImageNet-1k wnids (e.g. n01440764)"
            )


def _resolve_data(data: tuple[str, ...] | None):
    from genaug.build.sources import SourceError, open_source

    arg = None if data is None else (data[0] if len(data) == 1 else list(data))
    try:
        return open_source(arg)
    except SourceError as err:  # its message names the value (--data X or $GENAUG_DATA=X)
        raise ConfigError(str(err)) from err


def _data_identity(data: tuple[str, ...] | None, source: Any) -> list[str]:
    """Absolute paths of the given data (urls unchanged), or the source's description."""
    if data is None:
        return [f"{source.kind}:{source.description}"]
    out = []
    for item in data:
        path = Path(item).expanduser()
        out.append(str(path.resolve()) if "://" not in item and path.exists() else item)
    return out


def _resolve_weights(preset: Preset, override: Path | None) -> tuple[dict, dict]:
    from genaug import weights as weights_mod

    if override is not None and not preset.files:
        raise ConfigError(f"--weights {override}: preset {preset.name!r} uses no weight files "
                          f"(random init); drop --weights or choose another --preset")
    try:
        found = weights_mod.resolve(preset, override)
    except weights_mod.WeightsError as err:
        raise ConfigError(str(err)) from err
    return dict(found.paths), dict(found.sha256)


def resolve(config: BuildConfig) -> BuildSettings:
    """Validate everything before any work; raise ConfigError naming the bad value."""
    check_numbers(config)
    try:
        method = REGISTRY.method(config.method)
        preset = REGISTRY.preset(config.preset or method.default_preset, method=config.method)
        options = method.validate_options(config.options, preset)  # the one check, before any work
    except ValueError as err:
        raise ConfigError(str(err)) from err
    config = dataclasses.replace(config, preset=preset.name, scores=check_scores(config.scores))
    device = resolve_device(config.device)
    source = _resolve_data(config.data)
    check_label_options(method, options, source, config.options)
    out = check_out_dir(config.out)
    config = dataclasses.replace(config, out=out)
    weights, sha = _resolve_weights(preset, config.weights)
    inputs = fingerprint_inputs(config, method, options, _data_identity(config.data, source), sha, device.type)
    return BuildSettings(
        config=config, method=method, preset=preset, options=options, device=device, source=source,
        weights=weights, weights_sha256=sha, fingerprint_inputs=inputs, fingerprint=fingerprint_of(inputs),
        label_options=tuple(method.label_options(options)),
    )


def versions() -> dict:
    """Library versions recorded in manifest.json."""
    import platform

    import numpy
    import PIL
    import torchvision
    import webdataset

    return {
        "genaug": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "webdataset": webdataset.__version__,
        "pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda,
    }
