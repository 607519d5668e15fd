"""Registry of augmentation methods and model presets, and the editor contract.

The pipeline only ever talks to an :class:`Editor`; it knows nothing of model internals.
A method (``mask``, ``noise``) declares its options, validates them and says which need labels; a
preset names the model's input facts and the weight files it needs and knows how to build an editor
from resolved files. The built-ins are declared in genaug/methods/specs.py and genaug/methods/catalog.py
and registered when genaug is imported. No torch here (`genaug --help` stays light).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")  # EditorContext.precision values (auto: bf16 where faithful on CUDA)
CONVERTED_NAME = "converted"  # EditorContext.weights key of a converted state dict
LABEL_VALUE = "label"  # an option with this value asks for each sample's class (e.g. --class-token label)


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One downloadable weight file of a preset."""

    name: str  # logical name the builder asks for, e.g. "tokenizer"
    filename: str  # file name inside the preset's cache folder
    url: str  # public download URL
    sha256: str | None  # expected checksum; None = not pinned (the computed one is still recorded)
    description: str = ""  # what the file is, for `genaug models` and error messages
    archive_member: str | None = None  # member to extract when the URL is an archive


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """A method option; the CLI turns it into ``--name-with-dashes``."""

    name: str  # python identifier
    type: Any  # int, float, str, bool, or a tuple of allowed strings
    default: Any  # value used when the user gives none
    help: str  # one line for --help
    affects_output: bool = True  # part of the resume fingerprint


@dataclasses.dataclass(frozen=True)
class EditorContext:
    """Everything a preset needs to build an editor."""

    preset: "Preset"
    weights: Mapping[str, Path]  # WeightFile.name -> local path (empty for random-init presets)
    device: "torch.device"
    precision: str  # "fp32" | "bf16" | "auto" (bf16 where faithful on CUDA, fp32 on CPU)
    options: Mapping[str, Any]  # validated method options


@dataclasses.dataclass
class EditResult:
    images: "torch.Tensor"  # (B, 3, H, W) uint8, on the editor's device
    params: list[dict]  # per-sample, JSON-serialisable edit parameters


class Editor(abc.ABC):
    """A batched generative editor: uint8 images in, uint8 images out.

    Contract: the output for a sample depends only on (its seed, its label, its image,
    the model and the options), never on batch size or batch neighbours.
    """

    method: str
    preset: str
    resolution: int  # side length of the square input the pipeline must provide
    # The PIL resample filter the pipeline must use to make the model input (centre square crop ->
    # resolution x resolution, antialiased): "bicubic" | "bilinear", the filter of the official
    # model's own preprocessing (IC-GAN: bilinear; MaskGIT: bicubic).
    input_resample: str = "bicubic"
    num_classes: int | None = None  # classes a class-conditional editor accepts (None: not class-conditional)

    @abc.abstractmethod
    def edit(self, images: "torch.Tensor", seeds: Sequence[int], labels: "torch.Tensor") -> EditResult:
        """images: (B, 3, R, R) uint8 on device; seeds: B python ints (63-bit);
        labels: (B,) int64 on device, -1 where the source has no label."""

    @abc.abstractmethod
    def describe(self) -> dict:
        """JSON-serialisable facts for the manifest: parameter count, settings, precision."""

    def parameter_count(self) -> int:
        """Number of parameters used to augment one image."""
        return int(self.describe().get("parameters", 0))


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str  # e.g. "maskgit-imagenet256"
    method: str  # "mask" | "noise"
    description: str
    files: tuple[WeightFile, ...]  # empty for random-init presets
    build: Callable[[EditorContext], Editor]  # imports the model lazily
    random_init: bool = False  # True: output is meaningless, for tests and smoke runs
    # facts of the model input, known without building the model (None: the built editor's attribute)
    resolution: int | None = None  # side of the square model input
    input_resample: str | None = None  # "bicubic" | "bilinear": filter of the official preprocessing resize
    num_classes: int | None = None  # classes a class-conditional model accepts; None: not class-conditional
    token_grid: int | None = None  # side of a token-based model's token grid (MaskGIT); None: not token-based


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    description: str
    default_preset: str
    options: tuple[OptionSpec, ...] = ()
    # values suggested instead of "label" when the data has no labels: (value probed, value shown)
    label_alternatives: tuple[tuple[str, str], ...] = ()

    def label_options(self, options: Mapping[str, Any]) -> list[str]:
        """Names of the options (validated `options`) that need every sample's ImageNet-1k class
        index: by default those set to "label"."""
        return [opt.name for opt in self.options if options.get(opt.name) == LABEL_VALUE]

    def validate_options(self, given: Mapping[str, Any], preset: Preset | None = None) -> dict:
        """Fill defaults and check types/choices; raise ValueError naming the bad value. With `preset`,
        a method also checks the values against the preset's model facts (token grid, class count): the
        build calls this once, before any work, and the editors trust what it returns."""
        known = {o.name: o for o in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(
                f"method {self.name!r} has no option(s) {unknown}; its options are {sorted(known)}"
            )
        out = {}
        for opt in self.options:
            value = given.get(opt.name)
            out[opt.name] = opt.default if value is None else _coerce(opt, value)
        return out


def _coerce(opt: OptionSpec, value: Any) -> Any:
    if isinstance(opt.type, tuple):
        if value not in opt.type:
            raise ValueError(f"--{opt.name.replace('_', '-')} {value!r}: choose one of {list(opt.type)}")
        return value
    try:
        return opt.type(value)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"--{opt.name.replace('_', '-')} {value!r}: expected {opt.type.__name__}"
        ) from err


class Registry:
    """Methods and presets by name. Methods register themselves on import of genaug.methods."""

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}
        self._presets: dict[str, Preset] = {}

    def register_method(self, spec: MethodSpec) -> MethodSpec:
        if spec.name in self._methods:
            raise ValueError(f"method {spec.name!r} is already registered")
        self._methods[spec.name] = spec
        return spec

    def register_preset(self, preset: Preset) -> Preset:
        if preset.name in self._presets:
            raise ValueError(f"preset {preset.name!r} is already registered")
        self._presets[preset.name] = preset
        return preset

    def unregister_preset(self, name: str) -> None:
        """For tests that register a temporary preset."""
        self._presets.pop(name, None)

    def unregister_method(self, name: str) -> None:
        self._methods.pop(name, None)

    def method(self, name: str) -> MethodSpec:
        if name not in self._methods:
            raise ValueError(f"unknown method {name!r}; choose one of {sorted(self._methods)}")
        return self._methods[name]

    def preset(self, name: str, method: str | None = None) -> Preset:
        if name not in self._presets:
            raise ValueError(
                f"unknown preset {name!r}; known presets: {sorted(self._presets)} (see `genaug models`)"
            )
        preset = self._presets[name]
        if method is not None and preset.method != method:
            raise ValueError(
                f"preset {name!r} belongs to method {preset.method!r}, not {method!r}"
            )
        return preset

    def methods(self) -> list[MethodSpec]:
        return [self._methods[k] for k in sorted(self._methods)]

    def presets(self, method: str | None = None) -> list[Preset]:
        return [p for k, p in sorted(self._presets.items()) if method in (None, p.method)]


REGISTRY = Registry()  # filled with the built-ins by genaug.methods (imported by `import genaug`)
