"""One batch through the editor, and one edited sample into its shard members (docs/contracts.md)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import numpy as np
import torch

from genaug import __version__
from genaug.build.config import BuildSettings
from genaug.build.preprocess import check_resample
from genaug.build.shard import ShardRun
from genaug.build.sources.imagenet import NUM_CLASSES
from genaug.format import CLS, JSON, REAL, aug_member
from genaug.seeding import sample_seed

log = logging.getLogger(__name__)



class EditorError(RuntimeError):
    """The editor failed on a batch, or returned something that breaks the editor contract."""


@dataclasses.dataclass
class Sample:
    """A sample between the editor and the shard writer."""

    item: object  # SourceItem
    prepared: object  # Prepared (image, real_bytes, meta)
    seed: int  # per-sample seed handed to the editor
    params: dict  # edit parameters returned by the editor
    scores: dict  # score name -> value (empty without --scores)


@dataclasses.dataclass
class EditedBatch:
    samples: list[Sample]  # in input order
    aug: np.ndarray  # (B, 3, H, W) uint8, to be encoded in a worker


def run_info(settings: BuildSettings) -> dict:
    """The json fields shared by every sample of a run."""
    return {
        "method": settings.method.name,
        "preset": settings.preset.name,
        "weights_sha256": dict(sorted(settings.weights_sha256.items())),
        "run_seed": settings.config.seed,
        "genaug_version": __version__,
        "aug_format": settings.config.aug_format,
    }


def class_problem(item, label_options, num_classes: int) -> str | None:
    """Why `item` cannot be edited when options in `label_options` (e.g. class_token) condition on its
    ImageNet-1k class, or None when it can (or no option needs the class). `num_classes`: ModelInput's."""
    if not label_options:
        return None
    needs = " and ".join("--" + name.replace("_", "-") + " label" for name in label_options)
    index = item.class_index
    if index is not None and index < num_classes:
        return None
    if item.label is None:
        return f"no label, which {needs} needs"
    if index is None and 0 <= item.label < NUM_CLASSES:  # a class folder named by no ImageNet-1k wnid
        return f"class folder {item.wnid!r} is not an ImageNet-1k wnid, which {needs} needs"
    if index is None:
        return (f"label {item.label} is not an ImageNet-1k class index (0..{NUM_CLASSES - 1}), which {needs} "
                f"needs (labels of file lists and shards are taken as ImageNet-1k indices)")
    return f"class index {index} is outside the model's classes (0..{num_classes - 1}), which {needs} needs"


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """How the decode workers must prepare the editor's input, and the classes it accepts."""

    resolution: int  # side of the square model input
    resample: str  # PIL filter of the resize: "bicubic" | "bilinear"
    num_classes: int  # class indices the editor accepts: 0..num_classes-1 (at most ImageNet-1k's 1000)


def model_input(preset, editor) -> ModelInput:
    """The preset's declared input facts (Preset.resolution, input_resample, num_classes); a preset that
    declares one not (plugins, tests) leaves it to the built editor's attribute (Editor contract).
    EditorError when the editor contradicts its preset or names no known filter."""
    declared = {"resolution": preset.resolution, "input_resample": preset.input_resample,
                "num_classes": preset.num_classes}
    facts = {}
    for name, value in declared.items():
        own = getattr(editor, name)
        if value is not None and own is not None and own != value:
            raise EditorError(f"editor {preset.name!r} broke the contract: its {name} {own!r} is not its "
                              f"preset's {value!r}")
        facts[name] = value if value is not None else own
    try:
        resample = check_resample(facts["input_resample"])
    except ValueError as err:
        raise EditorError(f"editor {preset.name!r} broke the contract: input_resample {err}") from err
    classes = facts["num_classes"]
    return ModelInput(int(facts["resolution"]), resample,
                      NUM_CLASSES if classes is None else min(NUM_CLASSES, int(classes)))


def editor_labels(items) -> torch.Tensor:
    """The editor's `labels`: each item's ImageNet-1k class index, -1 where unknown (int64, CPU)."""
    return torch.tensor([-1 if item.class_index is None else int(item.class_index) for item in items],
                        dtype=torch.int64)


def _to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (B, 3, R, R) uint8
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def _check_result(result, n: int, preset: str) -> None:
    images = getattr(result, "images", None)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 \
            or images.shape[0] != n or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise EditorError(f"editor {preset!r} broke the contract: expected uint8 (B={n}, 3, H, W) images, "
                          f"got {shape}")
    if len(result.params) != n:
        raise EditorError(f"editor {preset!r} returned {len(result.params)} params for {n} images")


def compute_sample_scores(names, real: torch.Tensor, aug: torch.Tensor) -> list[dict]:
    """Scores of each pair (compute_scores resizes `aug` (B,3,H,W) to `real` (B,3,R,R) when they differ)."""
    from genaug.report.scores import compute_scores

    values = compute_scores(list(names), real, aug)
    return [{name: float(values[name][i]) for name in names} for i in range(real.shape[0])]


def edit_batch(editor, good: list, settings: BuildSettings, shard: ShardRun) -> EditedBatch:
    """Run the editor on the decoded inputs `good` (all valid); raise EditorError on failure."""
    config = settings.config
    images = np.stack([d.prepared.image for d in good])  # (B, R, R, 3) uint8
    seeds = [sample_seed(config.seed, d.item.key) for d in good]
    labels = editor_labels([d.item for d in good])
    start = time.perf_counter()
    batch = _to_device(images, settings.device)
    try:
        with torch.inference_mode():
            result = editor.edit(batch, seeds, labels.to(settings.device))
            aug = result.images.to("cpu")  # (B, 3, H, W) uint8; waits for the device
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        keys = [d.item.key for d in good]
        hint = "; try a smaller --batch-size" if isinstance(err, torch.cuda.OutOfMemoryError) else ""
        raise EditorError(
            f"editor {settings.preset.name!r} failed on a batch of shard {shard.index} "
            f"(keys {keys[0]}..{keys[-1]}): {type(err).__name__}: {err}{hint}"
        ) from err
    _check_result(result, len(good), settings.preset.name)
    shard.timings["model"] += time.perf_counter() - start
    scores = [{} for _ in good]
    if config.scores:
        start = time.perf_counter()
        real = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        scores = compute_sample_scores(config.scores, real, aug)
        shard.timings["scores"] = shard.timings.get("scores", 0.0) + time.perf_counter() - start
    samples = [
        Sample(item=d.item, prepared=d.prepared, seed=s, params=p, scores=sc)
        for d, s, p, sc in zip(good, seeds, result.params, scores)
    ]
    return EditedBatch(samples=samples, aug=aug.numpy())


def sample_json(sample: Sample, info: dict) -> dict:
    item, meta = sample.item, sample.prepared.meta
    doc = {
        "key": item.key,
        "source": item.source,
        "source_rel": item.source_rel,
        "label": item.label,
        "wnid": item.wnid,
        "class_index": item.class_index,
        **{k: meta[k] for k in sorted(meta)},
        "method": info["method"],
        "preset": info["preset"],
        "weights_sha256": info["weights_sha256"],
        "seed": sample.seed,
        "run_seed": info["run_seed"],
        "edit": sample.params,
        "genaug_version": info["genaug_version"],
    }
    if sample.scores:
        doc["scores"] = sample.scores
    if item.source_meta:
        doc["source_meta"] = item.source_meta
    return doc


def make_members(sample: Sample, aug_bytes: bytes, info: dict) -> tuple[str, dict[str, bytes]]:
    """(key, {extension: bytes}) of one sample in the shard format of docs/contracts.md."""
    members = {
        REAL: sample.prepared.real_bytes,
        aug_member(info["aug_format"]): aug_bytes,
        JSON: json.dumps(sample_json(sample, info), sort_keys=True, separators=(",", ":")).encode(),
    }
    if sample.item.label is not None:
        members[CLS] = str(int(sample.item.label)).encode("ascii")
    return sample.item.key, members
