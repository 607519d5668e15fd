"""MaskGIT architecture configuration (field names follow the official maskgit configs)."""

from __future__ import annotations

import dataclasses

MASK_TOKEN_ID = -1  # official `config.transformer.mask_token_id`
GROUPNORM_GROUPS = 32  # flax nn.GroupNorm default, used by the official tokenizer
GROUPNORM_EPS = 1e-6  # flax nn.GroupNorm default epsilon
LAYERNORM_EPS = 1e-12  # BERT layer norm epsilon of the official transformer


@dataclasses.dataclass(frozen=True)
class MaskGITConfig:
    """Defaults are the official ImageNet 256x256 class-conditional model."""

    image_size: int = 256  # input/output side in pixels
    # --- VQGAN tokenizer (official config.vqvae.*) ---
    filters: int = 128  # base channel count of encoder/decoder
    num_res_blocks: int = 2  # res-blocks per resolution level
    channel_multipliers: tuple[int, ...] = (1, 1, 2, 2, 4)  # channels per level = filters * m
    embedding_dim: int = 256  # latent / codebook vector size
    codebook_size: int = 1024  # number of visual tokens
    # --- bidirectional transformer (official config.transformer.*) ---
    num_layers: int = 24  # transformer layers
    hidden_size: int = 768  # official `num_embeds`
    num_heads: int = 16  # attention heads
    intermediate_size: int = 3072  # MLP width
    num_classes: int = 1000  # class tokens after the codebook ids

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_multipliers", tuple(int(m) for m in self.channel_multipliers))
        for name in ("image_size", "filters", "num_res_blocks", "embedding_dim", "codebook_size",
                     "num_layers", "hidden_size", "num_heads", "intermediate_size", "num_classes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MaskGITConfig.{name}={getattr(self, name)!r} must be a positive integer")
        if not self.channel_multipliers:
            raise ValueError("MaskGITConfig.channel_multipliers must name at least one level")
        for m in self.channel_multipliers:
            if (self.filters * m) % GROUPNORM_GROUPS:
                raise ValueError(
                    f"MaskGITConfig: filters={self.filters} x multiplier {m} = {self.filters * m} is not "
                    f"divisible by the {GROUPNORM_GROUPS} GroupNorm groups; use filters that are a multiple of 32"
                )
        if self.image_size % self.downsample_factor:
            raise ValueError(
                f"MaskGITConfig.image_size={self.image_size} must be divisible by "
                f"{self.downsample_factor} (2 ** (len(channel_multipliers) - 1))"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"MaskGITConfig.hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)

    @property
    def latent_size(self) -> int:
        """Side of the token grid (16 for 256x256 images)."""
        return self.image_size // self.downsample_factor

    @property
    def seq_len(self) -> int:
        """Transformer sequence length: class token + latent_size**2 image tokens."""
        return self.latent_size**2 + 1

    @property
    def vocab_size(self) -> int:
        """codebook ids, then class ids, then the mask token (the last row)."""
        return self.codebook_size + self.num_classes + 1

    @property
    def mask_token_id(self) -> int:
        return MASK_TOKEN_ID

    @classmethod
    def tiny(cls) -> "MaskGITConfig":
        """Small random-init model for tests and the `maskgit-tiny` preset.

        Keeps the 16x16 token grid and 1000 classes; its res-blocks change channels
        upwards (32->64) and downwards (64->32) in both encoder and decoder, and there are
        2 of them per level, as in the ImageNet model.
        """
        return cls(
            image_size=64, filters=32, num_res_blocks=2, channel_multipliers=(1, 2, 1),
            embedding_dim=32, codebook_size=128, num_layers=2, hidden_size=64, num_heads=4,
            intermediate_size=128, num_classes=1000,
        )

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["channel_multipliers"] = list(self.channel_multipliers)
        return out
