"""Item layouts for common trainers. genaug imports none of them; these are plain tuples.

Every loader builds an internal item ``{"views": (v1, v2), "label", "key", "index", "generative"}``
and hands it to an adapter:

| name        | item                              | trainer                                   |
|-------------|-----------------------------------|-------------------------------------------|
| default     | ``((view1, view2), label, key)``  | genaug's own example, custom loops        |
| solo-learn  | ``(index, [view1, view2], target)`` | solo-learn's ``BaseMethod.training_step`` |
| lightly     | ``([view1, view2], label, filename)`` | lightly's ``LightlyDataset`` convention |
| vicreg      | ``((view1, view2), label)``       | facebookresearch/vicreg ``main_vicreg.py`` |

``label`` is -1 for unlabelled shards; ``index`` is the sample's position in shard-list order (index.json
order, or counted from local tar headers; -1 only for remote shards without an index.json).

solo-learn: -1 is its own target for unlabelled images (``CustomDatasetWithoutLabels`` in
``solo/data/pretrain_dataloader.py``); its online classifier loss (``F.cross_entropy(...,
ignore_index=-1)`` in ``solo/methods/base.py``) is NaN on a batch with no label. ``SoloLearnAdapter(
unlabelled_target=0)`` hands that classifier a constant class instead (finite, meaningless accuracy).
"""

from __future__ import annotations

from typing import Callable, Mapping


def default_item(item: Mapping) -> tuple:
    return tuple(item["views"]), item["label"], item["key"]


def solo_learn_item(item: Mapping) -> tuple:
    return item["index"], list(item["views"]), item["label"]


class SoloLearnAdapter:
    """``(index, [view1, view2], target)`` with ``unlabelled_target`` in place of -1 (default: keep -1,
    solo-learn's own convention). Picklable, so it works with DataLoader workers under spawn."""

    needs_index = True

    def __init__(self, unlabelled_target: int = -1):
        if not isinstance(unlabelled_target, int) or unlabelled_target < -1:
            raise ValueError(f"unlabelled_target={unlabelled_target!r}: use -1 (solo-learn's 'no label') or a "
                             "class index >= 0")
        self.unlabelled_target = unlabelled_target

    def __call__(self, item: Mapping) -> tuple:
        label = item["label"] if item["label"] >= 0 else self.unlabelled_target
        return item["index"], list(item["views"]), label


def needs_index(adapter) -> bool:
    """Whether the adapter hands out sample indexes that a trainer relies on (solo-learn)."""
    return adapter is solo_learn_item or getattr(adapter, "needs_index", False)


def lightly_item(item: Mapping) -> tuple:
    return list(item["views"]), item["label"], item["key"]


def vicreg_item(item: Mapping) -> tuple:
    return tuple(item["views"]), item["label"]


def dict_item(item: Mapping) -> dict:
    """Everything, including whether the pair is generative (for logging or analysis)."""
    return dict(item)


ADAPTERS: dict[str, Callable[[Mapping], object]] = {
    "default": default_item,
    "solo-learn": solo_learn_item,
    "lightly": lightly_item,
    "vicreg": vicreg_item,
    "dict": dict_item,
}


def get_adapter(adapter: str | Callable[[Mapping], object]) -> Callable[[Mapping], object]:
    """A name from ADAPTERS, or your own callable taking the internal item dict."""
    if callable(adapter):
        return adapter
    if adapter not in ADAPTERS:
        raise ValueError(f"adapter {adapter!r}: choose one of {sorted(ADAPTERS)} or pass a callable")
    return ADAPTERS[adapter]
