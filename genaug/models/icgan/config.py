"""Configuration of the IC-GAN BigGAN generator (the released ImageNet configs and a tiny one)."""

from __future__ import annotations

import dataclasses

# Channel multipliers of the official BigGAN generator architecture (G_arch), per output resolution:
# block i maps ch * IN[i] channels to ch * OUT[i] channels and doubles the spatial size (8, 16, ...).
_CHANNEL_MULTIPLIERS = {
    64: ((16, 16, 8, 4), (16, 8, 4, 2)),
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1)),
    256: ((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1)),
}


@dataclasses.dataclass(frozen=True)
class ICGANConfig:
    """IC-GAN generator hyper-parameters; defaults are the released ImageNet-256 model
    (config_files/ImageNet/IC-GAN/icgan_res256.json plus the BigGAN parser defaults)."""

    resolution: int = 256  # output side in pixels: 64, 128 or 256
    ch: int = 96  # channel width multiplier (G_ch)
    dim_z: int = 120  # noise size of the config; with hier only num_slots * z_chunk_size dims are used
    attention_resolution: int = 64  # feature-map side after which the self-attention block sits (G_attn)
    shared_dim_feat: int = 512  # width of shared_feat, the SN-linear embedding of the instance features
    shared_dim: int = 128  # width of the unused class embedding `shared` (dropped at conversion)
    n_classes: int = 1000  # rows of the unused class embedding `shared`
    hier: bool = True  # hierarchical z: one z chunk for the first linear layer and one per block
    feat_dim: int = 2048  # size of the instance feature vector (SwAV ResNet-50 global pool)
    bottom_width: int = 4  # side of the first feature map, reshaped from the first linear layer
    bn_eps: float = 1e-5  # BN_eps of the conditional batch norms (and the output BN's default)
    sn_eps: float = 1e-6  # SN_eps, the power-iteration normalisation epsilon (parser default)

    def __post_init__(self) -> None:
        if self.resolution not in _CHANNEL_MULTIPLIERS:
            raise ValueError(
                f"ICGANConfig.resolution={self.resolution!r}: choose one of {sorted(_CHANNEL_MULTIPLIERS)}"
            )
        if self.attention_resolution not in self.block_resolutions:
            raise ValueError(
                f"ICGANConfig.attention_resolution={self.attention_resolution!r}: must be one of the "
                f"block resolutions {list(self.block_resolutions)} of a {self.resolution}px generator"
            )
        if self.ch < 1 or self.attention_channels < 8:
            raise ValueError(f"ICGANConfig.ch={self.ch!r}: the attention block needs at least 8 channels")
        if self.dim_z < self.num_slots:
            raise ValueError(f"ICGANConfig.dim_z={self.dim_z!r}: need at least {self.num_slots} dims")

    # ---- released configs -------------------------------------------------------------------
    @classmethod
    def imagenet256(cls) -> "ICGANConfig":
        """icgan_res256.json: ch 96, attention at 64, 90.0M parameters (counting the unused `shared`)."""
        return cls()

    @classmethod
    def imagenet128(cls) -> "ICGANConfig":
        """icgan_res128.json: ch 96, attention at 64."""
        return cls(resolution=128, ch=96, attention_resolution=64)

    @classmethod
    def imagenet64(cls) -> "ICGANConfig":
        """icgan_res64.json: ch 64, attention at 32."""
        return cls(resolution=64, ch=64, attention_resolution=32)

    @classmethod
    def tiny(cls) -> "ICGANConfig":
        """The 64px topology at tiny width, for tests and the random-init `icgan-tiny` preset."""
        return cls(resolution=64, ch=4, attention_resolution=32, shared_dim_feat=32, shared_dim=8, n_classes=10)

    # ---- derived sizes -----------------------------------------------------------------------
    @property
    def in_multipliers(self) -> tuple[int, ...]:
        return _CHANNEL_MULTIPLIERS[self.resolution][0]

    @property
    def out_multipliers(self) -> tuple[int, ...]:
        return _CHANNEL_MULTIPLIERS[self.resolution][1]

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """Feature-map side at the output of each block: 8, 16, ..., resolution."""
        return tuple(8 * 2**i for i in range(len(_CHANNEL_MULTIPLIERS[self.resolution][0])))

    @property
    def attention_channels(self) -> int:
        """Width of the feature map the self-attention block sees."""
        return self.ch * self.out_multipliers[self.block_resolutions.index(self.attention_resolution)]

    @property
    def num_slots(self) -> int:
        """Number of z chunks: one for the first linear layer plus one per block (1 without hier)."""
        return len(self.in_multipliers) + 1 if self.hier else 1

    @property
    def z_chunk_size(self) -> int:
        """Dims per z chunk (the official code floors dim_z / num_slots)."""
        return self.dim_z // self.num_slots

    @property
    def z_dims_used(self) -> int:
        """Leading z dims the generator reads (119 for ImageNet-256); the official G.dim_z."""
        return self.z_chunk_size * self.num_slots

    @property
    def cond_dim(self) -> int:
        """Input size of the conditional batch norms: shared_feat(feats) and, with hier, a z chunk."""
        return self.shared_dim_feat + (self.z_chunk_size if self.hier else 0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
