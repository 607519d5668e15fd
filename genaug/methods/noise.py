"""The `noise` method (GenCL noise-based augmentation): IC-GAN generates from the image's instance features.

image -> SwAV ResNet-50 features (2048-d, L2-normalised) -> IC-GAN generator(z, features) with z a
standard normal truncated to [-2t, 2t] (official notebook: t = 0.7) -> uint8. With ``--candidates K``
K noise vectors are drawn and the output whose own SwAV features are closest (Euclidean, unit vectors)
to the source's is kept, as the official demo ranks its samples. No labels are needed.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import torch

from genaug.methods.editing import (
    RANDOM_INIT_WARNING,
    BuiltinSettings,
    autocast,
    check_batch,
    count_parameters,
    stream_generators,
    stream_seed,
    to_uint8,
)
from genaug.methods.specs import check_noise_options
from genaug.registry import Editor, EditorContext, EditResult, Preset
from genaug.sampling.truncation import truncated_normal_per_sample, truncation_bound

log = logging.getLogger(__name__)

_TINY_SEED = 0  # weights seed of the random-init icgan-tiny preset

class NoiseEditor(BuiltinSettings, Editor):
    """Batched GenCL noise edit; a sample's z comes from its own seed and the models run on fixed-shape
    chunks, so batches do not matter."""

    method = "noise"
    requires_labels = False
    # official IC-GAN inference: CenterCropLongEdge, then torchvision Resize((R, R)) on the PIL image,
    # whose default is bilinear (icgan_colab.ipynb, predict.py), then normalise and bicubic to 224
    input_resample = "bilinear"

    def __init__(self, generator, encoder, preset: Preset, device: torch.device, precision: str,
                 options: Mapping[str, Any]) -> None:
        check_noise_options(options)
        memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.generator = generator.to(device=device, memory_format=memory_format).eval()
        self.encoder = encoder.to(device=device, memory_format=memory_format).eval()
        self.init_settings(preset, device, precision, options)  # amp_dtype: generator; encoder_dtype: SwAV
        self.resolution = generator.config.resolution
        self.dim_z = generator.dim_z

    def _noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """(B, K, dim_z) float32 on the device, drawn on the CPU from each sample's z stream."""
        gens = stream_generators(seeds, "z", "cpu")
        shape = (self.options["candidates"], self.dim_z)
        return truncated_normal_per_sample(gens, shape, truncation_bound(self.options["truncation"]), self.device)

    @torch.no_grad()
    def edit(self, images: torch.Tensor, seeds: Sequence[int], labels: torch.Tensor) -> EditResult:
        check_batch(images, seeds, labels, self.resolution)
        z = self._noise(seeds)  # (B, K, dim_z)
        out, chosen, dist = self.run_chunked(self._compute, images, z)
        params = [self._params(s, int(c), float(d)) for s, c, d in zip(seeds, chosen.tolist(), dist.tolist())]
        return EditResult(out, params)

    def _compute(self, images: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One fixed-shape chunk: uint8 (C, 3, R, R), z (C, K, dim_z) -> (uint8 (C, 3, R, R), chosen
        candidate (C,), its feature distance (C,), nan for one candidate)."""
        batch = images.shape[0]
        feats = self._features(images)  # (C, 2048) unit norm
        best = self._generate(z[:, 0], feats)  # (C, 3, R, R) in [-1, 1]
        chosen = torch.zeros(batch, dtype=torch.long, device=self.device)
        dist = torch.full((batch,), float("nan"), device=self.device)
        if z.shape[1] > 1:
            dist = self._distance(best, feats)
            for k in range(1, z.shape[1]):
                out = self._generate(z[:, k], feats)  # (C, 3, R, R)
                d = self._distance(out, feats)  # (C,)
                better = d < dist  # strict: ties keep the earlier candidate
                best = torch.where(better[:, None, None, None], out, best)
                dist = torch.where(better, d, dist)
                chosen = torch.where(better, torch.full_like(chosen, k), chosen)
        return to_uint8(best, -1.0, 1.0), chosen, dist

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float [0, 1] (B, 3, H, W) -> (B, 2048) unit SwAV features: fp32, TF32 under --precision
        auto on CUDA, bf16 under --precision bf16."""
        with autocast(self.device, self.encoder_dtype, self.encoder_tf32):
            return self.encoder(images).float()

    def _generate(self, z: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """z (B, dim_z), feats (B, 2048) -> (B, 3, R, R) float32 in [-1, 1]."""
        with autocast(self.device, self.amp_dtype):
            return self.generator(z, feats).float()

    def _distance(self, generated: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Euclidean distance between the generated images' unit SwAV features and the source's: (B,)."""
        own = self._features(((generated + 1.0) * 0.5).clamp(0.0, 1.0))  # (B, 2048)
        return (own - feats).norm(dim=1)

    def _params(self, seed: int, chosen: int, dist: float) -> dict:
        t = self.options["truncation"]
        params = {
            "z_seed": stream_seed(seed, "z"), "z_dims": self.dim_z, "truncation": t,
            "truncation_bound": truncation_bound(t), "candidates": self.options["candidates"],
            "candidate": chosen,
        }
        if self.options["candidates"] > 1:
            params["feature_distance"] = round(dist, 6)
        return params

    def describe(self) -> dict:
        gen, enc = count_parameters(self.generator), count_parameters(self.encoder)
        return {
            "method": self.method, "preset": self.preset, "parameters": gen + enc,
            "parameters_by_part": {"generator": gen, "instance_encoder": enc}, "resolution": self.resolution,
            "z_dims": self.dim_z, "input_resample": self.input_resample, "options": dict(self.options),
            **self.settings_facts(),
        }


# ---- presets -------------------------------------------------------------------------------------
def official_builder(resolution: int):
    def build(ctx: EditorContext) -> NoiseEditor:
        from genaug.models.icgan import EncoderConfig, Generator, ICGANConfig, InstanceEncoder

        check_noise_options(ctx.options)  # before loading the weights
        cfg = {256: ICGANConfig.imagenet256, 128: ICGANConfig.imagenet128, 64: ICGANConfig.imagenet64}[resolution]()
        generator = Generator.from_official(ctx.weights["generator"], config=cfg)
        # official inference resizes the centre crop to the generator's resolution before the 224 bicubic
        encoder = InstanceEncoder.from_swav(ctx.weights["swav"], config=EncoderConfig(resize_to=resolution))
        return NoiseEditor(generator, encoder, ctx.preset, ctx.device, ctx.precision, ctx.options)

    return build


def build_tiny(ctx: EditorContext) -> NoiseEditor:
    from genaug.models.icgan import Generator, ICGANConfig, InstanceEncoder

    log.warning(RANDOM_INIT_WARNING, ctx.preset.name, "icgan-imagenet256")
    check_noise_options(ctx.options)
    generator = Generator.random(ICGANConfig.tiny(), seed=_TINY_SEED)
    encoder = InstanceEncoder.tiny(seed=_TINY_SEED)
    return NoiseEditor(generator, encoder, ctx.preset, ctx.device, ctx.precision, ctx.options)


