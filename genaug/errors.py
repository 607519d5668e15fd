"""Errors shared across genaug's parts (no heavy imports)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad user setting; the message names the value and says what to do."""
