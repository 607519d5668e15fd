"""genaug: precomputed generative augmentations for contrastive learning (GenCL)."""

__version__ = "0.1.0"

# registers the built-in methods and presets in genaug.registry.REGISTRY (declarations only: no torch)
import genaug.methods  # noqa: E402, F401
