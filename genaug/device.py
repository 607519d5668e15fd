"""Devices: `--device` values resolved (one rule for build and report) and the device's model name."""

from __future__ import annotations

import logging
import platform

import torch

from genaug.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda'/'cuda:N' must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"--device {name!r}: not a device; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"--device {name!r}: unsupported device type; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: CUDA is not available here; use --device cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here; use cuda:0.."
        )
    return device


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
