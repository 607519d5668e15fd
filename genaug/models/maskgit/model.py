"""MaskGIT: VQGAN tokenizer + bidirectional transformer, with the official iterative decoder."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genaug.models.maskgit.config import MaskGITConfig
from genaug.models.maskgit.transformer import BidirectionalTransformer
from genaug.models.maskgit.vqgan import VQGAN
from genaug.sampling.maskgit_decode import GeneratorArg, NoiseArg, parallel_decode


class MaskGIT(nn.Module):
    """Public API: encode / decode / logits / inpaint; from_official / from_torch / save_torch.

    Runs under the caller's autocast (bf16 is fine for the conv and transformer stacks); the
    VQ nearest-code search and all sampling math always run in fp32.
    """

    def __init__(self, config: MaskGITConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MaskGITConfig()
        self.tokenizer = VQGAN(self.config)
        self.transformer = BidirectionalTransformer(self.config)

    # ---- tokenizer -------------------------------------------------------------------------
    def _check_images(self, images: torch.Tensor) -> None:
        s = self.config.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, s, s) or not images.is_floating_point():
            raise ValueError(f"images must be float (B, 3, {s}, {s}) in [0, 1]; got "
                             f"{tuple(images.shape)} {images.dtype}")

    def encode_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float in [0, 1] -> pre-quantisation features (B, D, h, w)."""
        self._check_images(images)
        return self.tokenizer.encoder(images)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float in [0, 1] -> token ids int64 (B, h, w)."""
        return self.tokenizer.quantizer.indices(self.encode_features(images))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (B, h, w) -> float32 images (B, 3, S, S), unclipped like the official decoder."""
        h = self.config.latent_size
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != (h, h) or tokens.is_floating_point():
            raise ValueError(f"tokens must be integer (B, {h}, {h}); got {tuple(tokens.shape)} {tokens.dtype}")
        return self.tokenizer.decoder(self.tokenizer.quantizer.lookup(tokens.long())).float()

    # ---- transformer -----------------------------------------------------------------------
    def logits(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, 1 + h*w) int, class token first, -1 = masked -> (B, L, vocab) logits."""
        if seq.dim() != 2 or seq.shape[1] != self.config.seq_len or seq.is_floating_point():
            raise ValueError(f"seq must be integer (B, {self.config.seq_len}); got {tuple(seq.shape)} {seq.dtype}")
        return self.transformer(seq.long())

    def codebook_logits(self, seq: torch.Tensor) -> torch.Tensor:
        """logits(seq)[..., :codebook_size] (what the sampler uses), without computing the
        class/mask columns. seq (B, L) int64 -> (B, L, codebook_size)."""
        return self.transformer(seq, num_outputs=self.config.codebook_size)

    @torch.no_grad()
    def inpaint(self, seq: torch.Tensor, num_iter: int = 12, start_iter: int = 0,
                choice_temperature: float = 4.5, generator: GeneratorArg = None,
                noise: NoiseArg = None, seeds: torch.Tensor | None = None) -> torch.Tensor:
        """Official `parallel_decode.decode` with logits restricted to the codebook.

        seq (B, L) int, -1 where masked -> (B, num_iter, L) int64: every step's sampled sequence;
        [:, -1] is the final one. generator: None, one Generator, or B per-sample Generators.
        noise: num_iter entries (per step s), each (gumbel_sample (B, L, codebook_size),
        gumbel_choice (B, L)) or None for s < start_iter; replaces fresh draws.
        seeds: (B,) int64, one per sample: counter-based noise from the sample's seed alone (the
        whole batch's noise of a step in one pass, no per-sample loop); excludes generator.
        """
        self.check_seq(seq)
        cfg = self.config
        return parallel_decode(seq, self.codebook_logits, codebook_size=cfg.codebook_size, num_iter=num_iter,
                               start_iter=start_iter, choice_temperature=choice_temperature,
                               generator=generator, noise=noise, mask_token_id=cfg.mask_token_id, seeds=seeds)

    def check_seq(self, seq: torch.Tensor) -> None:
        """ValueError unless seq is an integer (B, seq_len) tensor of ids in [-1, vocab_size) (one host
        synchronisation, before the decode loop)."""
        cfg = self.config
        if seq.dim() != 2 or seq.shape[1] != cfg.seq_len or seq.is_floating_point():
            raise ValueError(f"seq must be integer (B, {cfg.seq_len}); got {tuple(seq.shape)} {seq.dtype}")
        if bool(((seq < -1) | (seq >= cfg.vocab_size)).any()):  # one check before the loop
            raise ValueError(f"seq holds ids outside [-1, {cfg.vocab_size}); "
                             "codebook ids, then codebook_size + class, -1 for masked")

    # ---- bookkeeping and checkpoints -------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """{"tokenizer", "encoder", "quantizer", "decoder", "transformer", "total"}."""
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())
        out = {"tokenizer": count(self.tokenizer), "encoder": count(self.tokenizer.encoder),
               "quantizer": count(self.tokenizer.quantizer), "decoder": count(self.tokenizer.decoder),
               "transformer": count(self.transformer)}
        out["total"] = out["tokenizer"] + out["transformer"]
        return out

    def expected_shapes(self) -> dict[str, torch.Size]:
        return {k: v.shape for k, v in self.state_dict().items()}

    @classmethod
    def from_official(cls, tokenizer_path: str | Path, transformer_path: str | Path,
                      config: MaskGITConfig | None = None) -> "MaskGIT":
        """Build from the official flax msgpack checkpoints (no jax needed)."""
        from genaug.models.maskgit.checkpoints import official_state_dict

        with torch.device("meta"):  # no random init of 227M parameters that are overwritten anyway
            model = cls(config)
        state = official_state_dict(tokenizer_path, transformer_path, model.expected_shapes(), model.config)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval()

    @classmethod
    def from_torch(cls, path: str | Path, config: MaskGITConfig | None = None) -> "MaskGIT":
        """Load a file written by `save_torch` (strict: every key must match)."""
        from genaug.models.maskgit.checkpoints import load_converted

        stored_cfg, state = load_converted(path, config)
        with torch.device("meta"):
            model = cls(stored_cfg)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval()

    def save_torch(self, path: str | Path) -> None:
        from genaug.models.maskgit.checkpoints import save_converted

        save_converted(path, self.config, self.state_dict())
