"""genaug: precomputed generative augmentations for contrastive learning (GenCL)."""

__version__ = "0.1.0"
