"""The built-in methods' declarations: their options, the one definition of each check of their values
(run once, by `MethodSpec.validate_options`, before any weights are touched; with the preset, also the
checks against its model facts) and whether the options need each sample's label. No torch at import
time: `genaug build --help` lists these options without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from genaug.registry import MethodSpec, OptionSpec, Preset

CLASS_TOKEN_HELP = "label (the sample's ImageNet label; unlabelled sources are refused), fixed:N, or random"
MASK_PATTERNS = ("ring", "random", "blocks", "outpaint")  # the --mask choices
MAX_CANDIDATES = 64  # sanity bound for --candidates (the official demo ranks 160 for 16 outputs)


# ---- mask (MaskGIT) --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MaskMethodSpec(MethodSpec):
    """MethodSpec that also checks the values that do not depend on the model, so a bad flag fails
    before any weights are downloaded or loaded."""

    def validate_options(self, given: Mapping[str, Any], preset: Preset | None = None) -> dict:
        out = super().validate_options(given, preset)
        for name, pattern in _PATTERN_OPTIONS.items():
            if given.get(name) is not None and out["mask"] != pattern:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} applies to --mask {pattern} only, not --mask {out['mask']}; drop it "
                                 f"or pass --mask {pattern}")
        check_option_values(out)
        if preset is not None:
            check_model_options(out, preset.token_grid, preset.num_classes)
        return out

    def label_options(self, options: Mapping[str, Any]) -> list[str]:
        return ["class_token"] if requires_labels(options) else []


_PATTERN_OPTIONS = {  # option -> the only --mask pattern it applies to
    "ring_width": "ring", "mask_ratio": "random", "blocks": "blocks", "block_size": "blocks",
    "outpaint_scale": "outpaint",
}

MASK = MaskMethodSpec(
    name="mask",
    description="MaskGIT: keep the border tokens, regenerate the rest (GenCL mask-based augmentation)",
    default_preset="maskgit-imagenet256",
    label_alternatives=(("random", "random"), ("fixed:0", "fixed:N")),
    options=(
        OptionSpec("num_iter", int, 12, "decoding steps of the cosine schedule"),
        OptionSpec("start_iter", int, 0, "first decoding step (the official editing demo uses 2)"),
        OptionSpec("choice_temperature", float, 4.5, "Gumbel temperature of the token re-masking choice"),
        OptionSpec("class_token", str, "label", f"class conditioning: {CLASS_TOKEN_HELP}"),
        OptionSpec("mask", MASK_PATTERNS, "ring", "token mask pattern: ring, random, blocks, outpaint"),
        OptionSpec("ring_width", int, 1, "ring: width in tokens of the kept outer ring"),
        OptionSpec("mask_ratio", float, 0.75, "random: fraction of tokens masked"),
        OptionSpec("blocks", int, 4, "blocks: number of square blocks masked"),
        OptionSpec("block_size", int, 6, "blocks: side of each block in tokens"),
        OptionSpec("outpaint_scale", float, 0.75, "outpaint: side of the shrunk image as a fraction of the input"),
        OptionSpec("compile", bool, False, "torch.compile the transformer pass and the decode step (CUDA graphs for "
                   "the transformer on CUDA); same tokens as eager (tested on CPU), slower start-up"),
        OptionSpec("composite", bool, False, "blend the decoded image into the input with the blurred token mask, "
                   "as the official editing demo (default: the whole decoded image, as the paper)"),
    ),
)


@dataclasses.dataclass(frozen=True)
class ClassToken:
    """Parsed --class-token: strategy 'label' | 'fixed' | 'random' (value only for 'fixed')."""

    strategy: str  # label | fixed | random
    value: int | None = None  # the class for 'fixed'

    @classmethod
    def parse(cls, text: str, num_classes: int | None) -> "ClassToken":
        """num_classes None: syntax only."""
        if text in ("label", "random"):
            return cls(text)
        if text.startswith("fixed:"):
            try:
                value = int(text[len("fixed:"):])
            except ValueError as err:
                raise ValueError(f"--class-token {text!r}: N in fixed:N must be an integer") from err
            if value < 0 or (num_classes is not None and value >= num_classes):
                raise ValueError(f"--class-token {text!r}: N must be in [0, {num_classes or 'number of classes'})")
            return cls("fixed", value)
        raise ValueError(f"--class-token {text!r}: choose {CLASS_TOKEN_HELP}")


def requires_labels(options: Mapping[str, Any]) -> bool:
    """True when the options need every sample to carry a label (check the source before any work)."""
    return str(options.get("class_token", "label")) == "label"


def check_option_values(options: Mapping[str, Any]) -> None:
    """Model-independent checks; raises ValueError naming the flag."""
    num_iter, start_iter = options["num_iter"], options["start_iter"]
    if num_iter < 1:
        raise ValueError(f"--num-iter {num_iter}: must be >= 1 (paper: 12)")
    if not 0 <= start_iter < num_iter:
        raise ValueError(f"--start-iter {start_iter}: must be in [0, --num-iter {num_iter})")
    if not options["choice_temperature"] >= 0:
        raise ValueError(f"--choice-temperature {options['choice_temperature']}: must be >= 0 (paper: 4.5)")
    ClassToken.parse(str(options["class_token"]), None)
    checks = {  # per pattern: (option, ok, rule) for each option it uses, the first failing one is named
        "ring": [("ring_width", options["ring_width"] >= 1, ">= 1")],
        "random": [("mask_ratio", 0.0 < options["mask_ratio"] <= 1.0, "in (0, 1]")],
        "blocks": [("blocks", options["blocks"] >= 1, ">= 1"), ("block_size", options["block_size"] >= 1, ">= 1")],
        "outpaint": [("outpaint_scale", 0.0 < options["outpaint_scale"] < 1.0, "in (0, 1)")],
    }
    for name, ok, rule in checks[options["mask"]]:
        if not ok:
            raise ValueError(f"--{name.replace('_', '-')} {options[name]}: must be {rule}")


def check_model_options(options: Mapping[str, Any], grid: int | None, num_classes: int | None) -> ClassToken:
    """The checks against the model's token grid and class count (the mask patterns must fit the grid,
    fixed:N must name a class); returns the parsed class token. ValueError naming the flag."""
    import torch  # lazily, as the mask patterns: `genaug --help` imports no torch

    from genaug.methods import masks as patterns

    if grid is not None:
        pattern = options["mask"]
        if pattern == "ring":
            patterns.ring_mask(grid, options["ring_width"])
        elif pattern == "random":
            patterns.random_mask(grid, options["mask_ratio"], torch.Generator().manual_seed(0))
        elif pattern == "blocks":
            patterns.block_mask(grid, options["blocks"], options["block_size"], torch.Generator().manual_seed(0))
        else:
            patterns.outpaint_tokens(grid, options["outpaint_scale"])
    return ClassToken.parse(str(options["class_token"]), num_classes)


# ---- noise (IC-GAN) ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NoiseMethodSpec(MethodSpec):
    """MethodSpec that also checks option values, so a bad flag fails before weights are loaded."""

    def validate_options(self, given: Mapping[str, Any], preset: Preset | None = None) -> dict:
        out = super().validate_options(given, preset)
        check_noise_options(out)
        return out


NOISE = NoiseMethodSpec(
    name="noise",
    description="IC-GAN: generate from the image's SwAV instance features and truncated noise (GenCL noise-based)",
    default_preset="icgan-imagenet256",
    options=(
        OptionSpec("truncation", float, 0.7, "z ~ N(0, 1) truncated to [-2t, 2t] (official notebook: 0.7)"),
        OptionSpec("candidates", int, 1, "draw K noise vectors, keep the output closest in SwAV features"),
    ),
)


def check_noise_options(options: Mapping[str, Any]) -> None:
    """The noise method's option values; ValueError naming the flag."""
    from genaug.sampling.truncation import truncation_bound  # lazily: the module imports torch

    truncation_bound(options["truncation"])
    if not 1 <= options["candidates"] <= MAX_CANDIDATES:
        raise ValueError(f"--candidates {options['candidates']}: must be in [1, {MAX_CANDIDATES}] (paper: 1)")
