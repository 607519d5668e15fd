"""ImageNet-1k class indices: the position of a WordNet id (wnid) among the 1000 ImageNet-1k synsets
in sorted-wnid order, the order of the standard class-folder layout, of the public shards' ``cls``
field and of class-conditional ImageNet models (MaskGIT's class token is ``codebook_size + index``).

The synset list is timm's bundled copy (``timm.data.ImageNetInfo``), imported on first use only.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

NUM_CLASSES = 1000  # classes of ImageNet-1k


@functools.lru_cache(maxsize=1)
def imagenet1k_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order (n01440764 first)."""
    try:
        from timm.data import ImageNetInfo
    except ImportError as err:
        raise ImportError(f"genaug needs timm's ImageNet-1k synset list ({err}); install it: pip install "
                          "'timm>=0.9.16'") from err
    wnids = tuple(ImageNetInfo("imagenet-1k").label_names())
    if len(wnids) != NUM_CLASSES or list(wnids) != sorted(wnids):
        raise RuntimeError(f"timm's ImageNet-1k synset list has {len(wnids)} entries (sorted: "
                           f"{list(wnids) == sorted(wnids)}); expected {NUM_CLASSES} sorted wnids")
    return wnids


@functools.lru_cache(maxsize=1)
def _index_by_wnid() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet1k_wnids())}


def imagenet1k_index(wnid: str | None) -> int | None:
    """ImageNet-1k class index (0..999) of `wnid`, or None when it is not an ImageNet-1k wnid."""
    if wnid is None:
        return None
    return _index_by_wnid().get(wnid)


def as_imagenet1k_index(label: int | None) -> int | None:
    """A numeric label taken as an ImageNet-1k class index: itself when in [0, 999], else None."""
    if label is None or not 0 <= label < NUM_CLASSES:
        return None
    return int(label)
