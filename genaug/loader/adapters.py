"""Item layouts for common trainers. genaug imports none of them; these are plain tuples.

Every loader builds an internal item ``{"views": (v1, v2), "label", "key", "index", "generative"}``
and hands it to an adapter:

| name        | item                              | trainer                                   |
|-------------|-----------------------------------|-------------------------------------------|
| default     | ``((view1, view2), label, key)``  | genaug's own example, custom loops        |
| solo-learn  | ``(index, [view1, view2], target)`` | solo-learn's ``BaseMethod.training_step`` |
| lightly     | ``([view1, view2], label, filename)`` | lightly's ``LightlyDataset`` convention |
| vicreg      | ``((view1, view2), label)``       | facebookresearch/vicreg ``main_vicreg.py`` |

``label`` is -1 for unlabelled shards; ``index`` is the sample's position in index.json order
(-1 when streaming from shards without an index.json).
"""

from __future__ import annotations

from typing import Callable, Mapping


def default_item(item: Mapping) -> tuple:
    return tuple(item["views"]), item["label"], item["key"]


def solo_learn_item(item: Mapping) -> tuple:
    return item["index"], list(item["views"]), item["label"]


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
