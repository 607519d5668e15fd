"""One batch through the editor, one sample into shard members, and one shard's bookkeeping."""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from genaug import __version__
from genaug.config import ResolvedBuild
from genaug.imagenet import NUM_CLASSES
from genaug.preprocess import DEFAULT_RESAMPLE, check_resample
from genaug.seeding import sample_seed
from genaug.shards import ShardWriter

log = logging.getLogger(__name__)

STAGES = ("read_decode", "model", "encode", "write")  # per-shard timings_s keys besides "wall"


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
    nerrors: int = 0  # bad inputs of the same decoded batch (for progress)


def device_name(device: torch.device) -> str:
    """GPU model name, or the CPU model from /proc/cpuinfo (else the platform's machine name)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        log.debug("no /proc/cpuinfo; using the platform name")
    return platform.processor() or platform.machine() or "cpu"


def run_info(resolved: ResolvedBuild) -> dict:
    """The json fields shared by every sample of a run."""
    return {
        "method": resolved.method.name,
        "preset": resolved.preset.name,
        "weights_sha256": dict(sorted(resolved.weights_sha256.items())),
        "run_seed": resolved.config.seed,
        "genaug_version": __version__,
        "aug_format": resolved.config.aug_format,
    }


def class_problem(item, label_options, num_classes: int) -> str | None:
    """Why `item` cannot be edited when options in `label_options` (e.g. class_token) condition on its
    ImageNet-1k class, or None when it can (or no option needs the class). `num_classes`: the editor's."""
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


def editor_resample(editor, preset: str) -> str:
    """The resize filter the editor wants for its input (`input_resample`, default bicubic);
    EditorError when it names no known filter."""
    resample = getattr(editor, "input_resample", DEFAULT_RESAMPLE)
    try:
        return check_resample(resample)
    except ValueError as err:
        raise EditorError(f"editor {preset!r} broke the contract: input_resample {err}") from err


def editor_num_classes(editor) -> int:
    """Classes a class-conditional editor accepts (its `num_classes`, at most ImageNet-1k's 1000)."""
    return min(NUM_CLASSES, int(getattr(editor, "num_classes", NUM_CLASSES)))


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
    """Scores of each pair: `aug` (B,3,H,W) is resized to `real` (B,3,R,R) first (bicubic, antialiased)."""
    from genaug.report.scores import compute_scores

    if aug.shape[-2:] != real.shape[-2:]:
        resized = torch.nn.functional.interpolate(aug.float(), size=tuple(real.shape[-2:]), mode="bicubic",
                                                  antialias=True, align_corners=False)
        aug = resized.round().clamp(0, 255).to(torch.uint8)
    values = compute_scores(list(names), real, aug)
    return [{name: float(values[name][i]) for name in names} for i in range(real.shape[0])]


def edit_batch(editor, good: list, resolved: ResolvedBuild, shard: "ShardRun") -> EditedBatch:
    """Run the editor on the decoded inputs `good` (all valid); raise EditorError on failure."""
    config = resolved.config
    images = np.stack([d.prepared.image for d in good])  # (B, R, R, 3) uint8
    seeds = [sample_seed(config.seed, d.item.key) for d in good]
    labels = editor_labels([d.item for d in good])
    start = time.perf_counter()
    batch = _to_device(images, resolved.device)
    try:
        with torch.inference_mode():
            result = editor.edit(batch, seeds, labels.to(resolved.device))
            aug = result.images.to("cpu")  # (B, 3, H, W) uint8; waits for the device
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        keys = [d.item.key for d in good]
        hint = "; try a smaller --batch-size" if isinstance(err, torch.cuda.OutOfMemoryError) else ""
        raise EditorError(
            f"editor {resolved.preset.name!r} failed on a batch of shard {shard.index} "
            f"(keys {keys[0]}..{keys[-1]}): {type(err).__name__}: {err}{hint}"
        ) from err
    _check_result(result, len(good), resolved.preset.name)
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
        "real.jpg": sample.prepared.real_bytes,
        f"aug.{info['aug_format']}": aug_bytes,
        "json": json.dumps(sample_json(sample, info), sort_keys=True, separators=(",", ":")).encode(),
    }
    if sample.item.label is not None:
        members["cls"] = str(int(sample.item.label)).encode("ascii")
    return sample.item.key, members


class ShardRun:
    """A shard being filled: its writer, skipped inputs and stage timings."""

    def __init__(self, out: Path, index: int, start: float) -> None:
        self.index = index
        self.writer = ShardWriter(out, index)
        self.errors: list[dict] = []
        self.first_seen: dict[str, tuple[int, str]] = {}  # key -> (index, source) of its first input here
        self.timings = {stage: 0.0 for stage in STAGES}
        self.inputs = 0
        self._start = start  # perf_counter() when this shard's wall time starts

    def unique(self, decoded):
        """`decoded`, or a skipped copy of it when an earlier input of this shard had the same key.
        (Only within a shard: a rebuilt shard then skips the same inputs on every run.)"""
        item = decoded.item
        index, source = self.first_seen.setdefault(item.key, (item.index, item.source))
        if index == item.index:
            return decoded
        return dataclasses.replace(decoded, prepared=None, reason=f"duplicate key, first seen in {source}")

    def add_error(self, decoded) -> None:
        item = decoded.item
        log.debug("skipping %s (%s): %s", item.key, item.source, decoded.reason)
        self.errors.append({"key": item.key, "path": item.source, "reason": decoded.reason, "shard": self.index})

    def finish(self, resolved: ResolvedBuild) -> dict:
        """Close the tar (atomic rename) and return the stats document (the caller writes it, and its
        folder fsync makes the tar's rename durable too)."""
        start = time.perf_counter()
        info = self.writer.close(sync_dir=False)
        self.timings["write"] += time.perf_counter() - start
        wall = time.perf_counter() - self._start
        return {
            "shard": self.index,
            "nsamples": info.nsamples,
            "nerrors": len(self.errors),
            "ninputs": self.inputs,
            "filesize": info.filesize,
            "md5sum": info.md5sum,
            "sha256": info.sha256,
            "config_fingerprint": resolved.fingerprint,
            "batch_size": resolved.config.batch_size,
            "num_workers": resolved.config.num_workers,
            "device": str(resolved.device),
            "device_name": device_name(resolved.device),
            "timings_s": {**{k: round(v, 6) for k, v in self.timings.items()}, "wall": round(wall, 6)},
            "images_per_s": round(self.inputs / wall, 3) if wall > 0 else None,
            "errors": self.errors,
        }
