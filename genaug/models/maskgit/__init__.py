"""PyTorch port of MaskGIT (google-research/maskgit): VQGAN tokenizer + bidirectional transformer."""

from genaug.models.maskgit.config import MaskGITConfig
from genaug.models.maskgit.model import MaskGIT

__all__ = ["MaskGITConfig", "MaskGIT"]
