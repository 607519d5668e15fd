"""The `mask` method (GenCL mask-based augmentation): MaskGIT re-generates masked VQ tokens.

image -> VQGAN tokens (16x16 at 256 px) -> mask a token pattern (default: the 14x14 interior, the
outer ring kept) -> 12 steps of MaskGIT parallel decoding conditioned on a class token -> VQGAN
decoder -> uint8. The whole decoded image is the augmentation (no pixel compositing), as in the paper;
``--composite`` blends it into the input with the blurred token mask, as the official editing demo.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from genaug.methods import masks as patterns
from genaug.methods.editing import (
    RANDOM_INIT_WARNING,
    BuiltinSettings,
    autocast,
    check_batch,
    count_parameters,
    random_init_seeded,
    stream_generators,
    stream_seed,
    to_uint8,
)
from genaug.methods.specs import ClassToken, requires_labels
from genaug.registry import CONVERTED_NAME, Editor, EditorContext, EditResult, Preset
from genaug.sampling.maskgit_decode import parallel_decode

log = logging.getLogger(__name__)

_TINY_SEED = 0  # weights seed of the random-init maskgit-tiny preset


class MaskEditor(BuiltinSettings, Editor):
    """Batched GenCL mask edit with a MaskGIT model; per-sample seeded, batch-size independent (random
    draws from per-sample streams; every model stage and the decoding loop on fixed-shape chunks)."""

    method = "mask"
    # the official MaskGIT demo loads images with PIL resize(..., Image.BICUBIC) (maskgit/utils.py)
    input_resample = "bicubic"

    def __init__(self, model, preset: Preset, device: torch.device, precision: str,
                 options: Mapping[str, Any]) -> None:
        cfg = model.config
        self.model = model.to(device).eval()
        # the VQGAN runs channels_last on CUDA (cuDNN's NHWC kernels, as the IC-GAN modules); on the CPU
        # oneDNN was not faster with it at batch 1 (encoder 14% slower, decoder 23% faster, 1 thread)
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.model.tokenizer.to(memory_format=self.memory_format)
        # amp_dtype: transformer and decoder; encoder_dtype: tokenizer encoder
        self.init_settings(preset, device, precision, options)
        self.resolution = cfg.image_size
        self.grid = cfg.latent_size
        self.codebook_size = cfg.codebook_size
        self.num_classes = cfg.num_classes
        # options come validated by MASK.validate_options(options, preset), the one home of their rules
        self.class_token = ClassToken.parse(str(self.options["class_token"]), self.num_classes)
        self.requires_labels = requires_labels(self.options)
        self._compiled = compiled_decode_fns(self.model, device) if self.options["compile"] else None
        if self._compiled is not None:
            self.chunk_workers = 1  # compiled functions are called from one thread only

    # ---- per-sample choices ------------------------------------------------------------------
    def _classes(self, seeds: Sequence[int], labels: torch.Tensor) -> list[int]:
        strategy = self.class_token.strategy
        if strategy == "fixed":
            return [self.class_token.value] * len(seeds)
        if strategy == "random":
            gens = stream_generators(seeds, "class", "cpu")
            return [int(torch.randint(0, self.num_classes, (1,), generator=g)) for g in gens]
        values = labels.tolist()
        for i, value in enumerate(values):
            if not 0 <= value < self.num_classes:
                raise ValueError(
                    f"sample {i} (seed {seeds[i]}) has label {value}: --class-token label needs labels in "
                    f"[0, {self.num_classes}); for unlabelled data pass --class-token random or fixed:N"
                )
        return values

    def _masks(self, seeds: Sequence[int]) -> torch.Tensor:
        """(B, grid, grid) bool on the device."""
        o, grid = self.options, self.grid
        if o["mask"] == "ring":
            one = patterns.ring_mask(grid, o["ring_width"])
        elif o["mask"] == "outpaint":
            one = patterns.outpaint_mask(grid, patterns.outpaint_tokens(grid, o["outpaint_scale"]))
        else:
            gens = stream_generators(seeds, "mask", "cpu")
            if o["mask"] == "random":
                many = [patterns.random_mask(grid, o["mask_ratio"], g) for g in gens]
            else:
                many = [patterns.block_mask(grid, o["blocks"], o["block_size"], g) for g in gens]
            return torch.stack(many).to(self.device)
        return one.to(self.device).expand(len(seeds), grid, grid)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, R, R) -> float (B, 3, R, R) in [0, 1], shrunk into the centre for outpaint."""
        x = images.float() / 255.0
        if self.options["mask"] == "outpaint":
            kept = patterns.outpaint_tokens(self.grid, self.options["outpaint_scale"])
            x = patterns.shrink_into_centre(x, kept * (self.resolution // self.grid))
        return x.contiguous(memory_format=self.memory_format)

    # ---- the edit ------------------------------------------------------------------------------
    @torch.no_grad()
    def edit(self, images: torch.Tensor, seeds: Sequence[int], labels: torch.Tensor) -> EditResult:
        check_batch(images, seeds, labels, self.resolution)
        classes = self._classes(seeds, labels)
        mask = self._masks(seeds)  # (B, h, w) bool
        class_ids = torch.tensor(classes, dtype=torch.long, device=self.device)
        out, n_masked, changed = self.run_chunked(self._compute, images, [int(s) for s in seeds], class_ids, mask)
        return EditResult(out, [self._params(s, c, m, ch) for s, c, m, ch in zip(seeds, classes, n_masked, changed)])

    def _compute(self, images: torch.Tensor, seeds: Sequence[int], classes: torch.Tensor,
                 mask: torch.Tensor) -> tuple[torch.Tensor, list[int], list[int]]:
        """One fixed-shape chunk: uint8 (C, 3, R, R), C seeds, class ids (C,), masks (C, h, w) ->
        (uint8 (C, 3, R, R), masked token counts, changed token counts)."""
        batch, o = images.shape[0], self.options
        x = self._prepare(images)  # (C, 3, R, R) float in [0, 1]
        with autocast(self.device, self.encoder_dtype, self.encoder_tf32):
            tokens = self.model.encode(x)  # (C, h, w) int64
        with autocast(self.device, self.amp_dtype):
            image_seq = torch.where(mask, torch.full_like(tokens, -1), tokens).view(batch, -1)  # (C, h*w)
            class_ids = classes.to(image_seq.dtype) + self.codebook_size
            seq = torch.cat([class_ids[:, None], image_seq], dim=1)  # (C, 1 + h*w)
            steps = self._decode(seq, seeds)  # (C, num_iter, 1 + h*w)
            final = steps[:, -1, 1:].reshape(batch, self.grid, self.grid)  # (C, h, w)
            decoded = self.model.decode(final)  # (C, 3, R, R) float, unclipped
        if o["composite"]:
            with autocast(self.device, None):
                decoded = patterns.composite(decoded, x, mask)  # (C, 3, R, R)
        n_masked = mask.flatten(1).sum(1).tolist()
        changed = ((final != tokens) & mask).flatten(1).sum(1).tolist()
        return to_uint8(decoded, 0.0, 1.0), n_masked, changed

    def _decode(self, seq: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """The 12-step decode of one chunk; noise from each sample's "decode" stream seed (counter-based:
        the whole chunk's noise of a step in one pass, padding copies get the same numbers as their
        sample, which is harmless since padding results are discarded)."""
        o = self.options
        decode_seeds = torch.tensor([stream_seed(s, "decode") for s in seeds], dtype=torch.int64)
        decode_seeds = decode_seeds.to(self.device, non_blocking=True)
        if self._compiled is None:
            return self.model.inpaint(seq, num_iter=o["num_iter"], start_iter=o["start_iter"],
                                      choice_temperature=o["choice_temperature"], seeds=decode_seeds)
        self.model.check_seq(seq)
        logits_fn, step_fn = self._compiled
        cfg = self.model.config
        return parallel_decode(seq, logits_fn, codebook_size=cfg.codebook_size, num_iter=o["num_iter"],
                               start_iter=o["start_iter"], choice_temperature=o["choice_temperature"],
                               mask_token_id=cfg.mask_token_id, seeds=decode_seeds, step_fn=step_fn)

    def _params(self, seed: int, cls: int, n_masked: int, changed: int) -> dict:
        o = self.options
        params = {
            "mask": o["mask"], "n_masked": int(n_masked), "n_tokens": self.grid**2, "tokens_changed": int(changed),
            "class_token": int(cls), "class_strategy": self.class_token.strategy,
            "num_iter": o["num_iter"], "start_iter": o["start_iter"],
            "choice_temperature": o["choice_temperature"], "schedule": "cosine",
            "decode_seed": stream_seed(seed, "decode"), "composite": o["composite"],
        }
        if o["mask"] == "ring":
            params["ring_width"] = o["ring_width"]
        elif o["mask"] == "random":
            params.update(mask_ratio=o["mask_ratio"], mask_seed=stream_seed(seed, "mask"))
        elif o["mask"] == "blocks":
            params.update(blocks=o["blocks"], block_size=o["block_size"], mask_seed=stream_seed(seed, "mask"))
        else:
            kept = patterns.outpaint_tokens(self.grid, o["outpaint_scale"])
            params.update(outpaint_scale=kept / self.grid, outpaint_scale_asked=o["outpaint_scale"])
        if self.class_token.strategy == "random":
            params["class_seed"] = stream_seed(seed, "class")
        return params

    def describe(self) -> dict:
        parts = {name: count_parameters(child) for name, child in self.model.named_children()}
        return {
            "method": self.method, "preset": self.preset, "parameters": count_parameters(self.model),
            "parameters_by_part": parts, "resolution": self.resolution, "token_grid": self.grid,
            "input_resample": self.input_resample, "vqgan_memory_format": str(self.memory_format).split(".")[-1],
            "options": dict(self.options), **self.settings_facts(),
        }


def compiled_decode_fns(model, device: torch.device) -> tuple:
    """(logits_fn, step_fn): torch.compile'd `model.codebook_logits` and `decode_step`, static shapes (the
    editor's fixed chunk). On CUDA the transformer pass is captured in CUDA graphs ("reduce-overhead"; its
    logits are consumed by the step before the next replay); the step is compiled without graphs, since
    its outputs live on across steps. Compiles lazily, on the first chunk."""
    from genaug.sampling.maskgit_decode import decode_step

    mode = "reduce-overhead" if torch.device(device).type == "cuda" else None
    return (torch.compile(model.codebook_logits, dynamic=False, mode=mode),
            torch.compile(decode_step, dynamic=False))


# ---- presets -------------------------------------------------------------------------------------
def _config(config: Mapping[str, Any] | None):
    """MaskGITConfig from keyword overrides (None: the ImageNet-256 defaults)."""
    from genaug.models.maskgit import MaskGITConfig

    return MaskGITConfig(**config) if config else MaskGITConfig()


def official_builder(config: Mapping[str, Any] | None = None):
    """Preset.build for official (or converted) weights of the MaskGIT architecture `config`."""

    def build(ctx: EditorContext) -> MaskEditor:
        from genaug.models.maskgit import MaskGIT

        cfg = _config(config)
        if CONVERTED_NAME in ctx.weights:
            model = MaskGIT.from_torch(ctx.weights[CONVERTED_NAME], cfg)
        else:
            model = MaskGIT.from_official(ctx.weights["tokenizer"], ctx.weights["transformer"], config=cfg)
        return MaskEditor(model, ctx.preset, ctx.device, ctx.precision, ctx.options)

    return build


def build_tiny(ctx: EditorContext) -> MaskEditor:
    from genaug.models.maskgit import MaskGIT, MaskGITConfig

    log.warning(RANDOM_INIT_WARNING, ctx.preset.name, "maskgit-imagenet256")
    cfg = MaskGITConfig.tiny()
    model = random_init_seeded(lambda: MaskGIT(cfg), _TINY_SEED)
    return MaskEditor(model, ctx.preset, ctx.device, ctx.precision, ctx.options)


def convert_official(weights: Mapping[str, Path], out: Path, config: Mapping[str, Any] | None = None) -> None:
    """Official msgpack checkpoints -> torch file at `out`; the reloaded file must equal the conversion.

    config: MaskGITConfig keyword overrides (None: ImageNet-256)."""
    from genaug.models.maskgit import MaskGIT

    cfg = _config(config)
    model = MaskGIT.from_official(weights["tokenizer"], weights["transformer"], config=cfg)
    tmp = out.with_name(out.name + ".part")
    model.save_torch(tmp)
    reloaded = MaskGIT.from_torch(tmp, cfg).state_dict()
    for name, tensor in model.state_dict().items():
        if not torch.equal(tensor, reloaded[name]):
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"converted file differs from the conversion at {name!r}; nothing written")
    tmp.replace(out)
    log.info("converted %s -> %s", sorted(str(p) for p in weights.values()), out)


