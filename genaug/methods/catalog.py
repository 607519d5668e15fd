"""The built-in presets, declared as data (timm's pretrained cfgs): each names its method, its weight
files and the facts of its model input (`resolution`, `input_resample`, `num_classes`), so the build
knows how to prepare images without building a model. `build` and the converters import the model code
only when called. No torch and nothing heavy here: `import genaug` (every worker process) imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from genaug.methods import specs
from genaug.registry import EditorContext, Preset, Registry, WeightFile

_MASKGIT_URL = "https://storage.googleapis.com/maskgit-public/checkpoints/"
_ICGAN_URL = "https://dl.fbaipublicfiles.com/ic_gan/"
_SWAV_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
IMAGENET_CLASSES = 1000
# the official MaskGIT demo loads images with PIL resize(..., Image.BICUBIC) (maskgit/utils.py); official
# IC-GAN inference: CenterCropLongEdge, then torchvision Resize((R, R)) on the PIL image (bilinear default)
MASKGIT_RESAMPLE = "bicubic"
ICGAN_RESAMPLE = "bilinear"


def _build_maskgit(ctx: EditorContext):
    from genaug.methods.mask import official_builder

    return official_builder()(ctx)


def _build_maskgit_tiny(ctx: EditorContext):
    from genaug.methods.mask import build_tiny

    return build_tiny(ctx)


def _convert_maskgit(weights: Mapping[str, Path], out: Path) -> None:
    from genaug.methods.mask import convert_official

    convert_official(weights, out)


def _icgan_builder(resolution: int):
    def build(ctx: EditorContext):
        from genaug.methods.noise import official_builder

        return official_builder(resolution)(ctx)

    return build


def _build_icgan_tiny(ctx: EditorContext):
    from genaug.methods.noise import build_tiny

    return build_tiny(ctx)


MASKGIT_PRESETS = (
    Preset(
        name="maskgit-imagenet256",
        method="mask",
        description="official MaskGIT ImageNet 256x256 (VQGAN 54.5M + transformer 172.5M = 227M parameters)",
        files=(
            WeightFile("tokenizer", "tokenizer_imagenet256_checkpoint",
                       _MASKGIT_URL + "tokenizer_imagenet256_checkpoint", None, "VQGAN tokenizer, flax msgpack"),
            WeightFile("transformer", "maskgit_imagenet256_checkpoint",
                       _MASKGIT_URL + "maskgit_imagenet256_checkpoint", None,
                       "MaskGIT class-conditional transformer, flax msgpack"),
        ),
        build=_build_maskgit,
        resolution=256, input_resample=MASKGIT_RESAMPLE, num_classes=IMAGENET_CLASSES, token_grid=16,
    ),
    Preset(
        name="maskgit-tiny",
        method="mask",
        description="tiny RANDOM-weight MaskGIT (64 px, 16x16 tokens): meaningless output, for tests and smoke runs",
        files=(),
        build=_build_maskgit_tiny,
        random_init=True,
        resolution=64, input_resample=MASKGIT_RESAMPLE, num_classes=IMAGENET_CLASSES, token_grid=16,
    ),
)


def _icgan_preset(resolution: int, description: str) -> Preset:
    experiment = f"icgan_biggan_imagenet_res{resolution}"
    return Preset(
        name=f"icgan-imagenet{resolution}",
        method="noise",
        description=description,
        files=(
            WeightFile("generator", "G_ema_best0.pth", f"{_ICGAN_URL}{experiment}.tar.gz", None,
                       f"IC-GAN BigGAN generator (EMA), from {experiment}.tar.gz",
                       archive_member=f"{experiment}/G_ema_best0.pth"),
            WeightFile("swav", "swav_800ep_pretrain.pth.tar", _SWAV_URL, None,
                       "SwAV ResNet-50 (800 epochs), the instance feature extractor"),
        ),
        build=_icgan_builder(resolution),
        resolution=resolution, input_resample=ICGAN_RESAMPLE,
    )


ICGAN_PRESETS = (
    _icgan_preset(256, "official IC-GAN ImageNet 256x256 (generator 90.0M + SwAV ResNet-50 = 116M parameters)"),
    _icgan_preset(128, "official IC-GAN ImageNet 128x128 (+ SwAV ResNet-50)"),
    _icgan_preset(64, "official IC-GAN ImageNet 64x64 (+ SwAV ResNet-50)"),
    Preset(
        name="icgan-tiny",
        method="noise",
        description="tiny RANDOM-weight IC-GAN (64 px) and encoder: meaningless output, for tests and smoke runs",
        files=(),
        build=_build_icgan_tiny,
        random_init=True,
        resolution=64, input_resample=ICGAN_RESAMPLE,
    ),
)


# preset name -> function(resolved official weights, output path) writing a converted state dict
# (`genaug convert`; genaug.weights.CONVERTERS starts from these)
CONVERTERS = {"maskgit-imagenet256": _convert_maskgit}


def register_builtins(registry: Registry) -> None:
    """Register the built-in methods and presets in `registry`."""
    registry.register_method(specs.MASK)
    registry.register_method(specs.NOISE)
    for preset in MASKGIT_PRESETS + ICGAN_PRESETS:
        registry.register_preset(preset)
