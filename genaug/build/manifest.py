"""The documents a build records about itself: manifest.json and the run facts every stats file carries."""

from __future__ import annotations

import dataclasses
import time

from genaug.build.config import BuildSettings, versions
from genaug.device import device_name


def shard_facts(settings: BuildSettings) -> dict:
    """The run's fields copied into every shard's stats file."""
    return {
        "config_fingerprint": settings.fingerprint,
        "batch_size": settings.config.batch_size,
        "num_workers": settings.config.num_workers,
        "device": str(settings.device),
        "device_name": device_name(settings.device),
    }


def utc_now() -> str:
    """Now, as the manifest records times (UTC, ISO 8601, seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def timing(settings: BuildSettings, batch1_ms: float, stats: list[dict]) -> dict:
    """The manifest's `timing`: the batch-1 probe and the model time per image over the shards `stats`."""
    model_s = sum(s["timings_s"]["model"] for s in stats)
    samples = sum(s["nsamples"] for s in stats)
    return {
        "batch1_ms_per_image": round(batch1_ms, 3),
        "batch_ms_per_image": round(1000.0 * model_s / samples, 3) if samples else None,
        "batch_size": settings.config.batch_size,
        "device": str(settings.device),
        "device_name": device_name(settings.device),
    }


def manifest_document(settings: BuildSettings, editor, **extra) -> dict:
    """manifest.json of a build with `settings` and `editor`, plus `extra` (status, times, counts, timing)."""
    config = settings.config
    recorded = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    recorded.update(out=str(config.out), weights=None if config.weights is None else str(config.weights),
                    data=None if config.data is None else list(config.data), scores=list(config.scores),
                    options=dict(settings.options), device=str(settings.device))
    recorded.pop("command")
    source = settings.source
    return {
        "command": list(config.command),
        "config": recorded,
        "config_fingerprint": settings.fingerprint,
        "fingerprint_inputs": settings.fingerprint_inputs,
        "versions": versions(),
        "weights_sha256": dict(sorted(settings.weights_sha256.items())),
        "weights": {name: str(path) for name, path in sorted(settings.weights.items())},
        "source": {"kind": source.kind, "description": source.description, "labelled": bool(source.labelled)},
        "editor": editor.describe(),
        "input_decode": _input_decode(settings),
        **extra,
    }


def _input_decode(settings: BuildSettings) -> str:
    """How the inputs were decoded, for manifest.json."""
    if settings.decode_device is None:
        return "PIL in the decode workers"
    return (f"torchvision.io.decode_jpeg on {settings.decode_device} for complete RGB JPEGs, "
            f"PIL in the decode workers for every other input")
