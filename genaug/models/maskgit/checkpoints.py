"""Checkpoint files for MaskGIT: the official flax msgpack pair and our converted torch file."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from genaug.checkpoint import load_checkpoint
from genaug.models.maskgit import flax_msgpack
from genaug.models.maskgit.config import MaskGITConfig
from genaug.models.maskgit.convert import (
    ConversionError,
    convert_tree,
    tokenizer_rules,
    transformer_rules,
    unwrap_params,
)

log = logging.getLogger(__name__)

TORCH_FORMAT = "genaug-maskgit-v1"  # marker stored in converted torch files


def official_state_dict(tokenizer_path: str | Path, transformer_path: str | Path,
                        expected: dict[str, torch.Size], cfg: MaskGITConfig) -> dict[str, torch.Tensor]:
    """Read both official checkpoints and convert them; `expected` = torch name -> shape."""
    tok_tree = unwrap_params(flax_msgpack.load(tokenizer_path), f"tokenizer {tokenizer_path}")
    state = convert_tree(flax_msgpack.flatten(tok_tree), tokenizer_rules(cfg), expected,
                         f"tokenizer {tokenizer_path}")
    del tok_tree
    tr_tree = unwrap_params(flax_msgpack.load(transformer_path), f"transformer {transformer_path}")
    state.update(convert_tree(flax_msgpack.flatten(tr_tree), transformer_rules(cfg), expected,
                              f"transformer {transformer_path}"))
    return state


def save_converted(path: str | Path, cfg: MaskGITConfig, state: dict[str, torch.Tensor]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": TORCH_FORMAT, "config": cfg.to_dict(),
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in state.items()}}, tmp)
    tmp.replace(path)
    log.info("saved converted MaskGIT weights to %s", path)


def load_converted(path: str | Path, cfg: MaskGITConfig | None) -> tuple[MaskGITConfig, dict]:
    """Returns (config stored in the file, state dict). A given cfg must equal the stored one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"converted MaskGIT file {path} does not exist (make it with `genaug convert`)")
    blob = load_checkpoint(path, "a converted MaskGIT file")
    if blob.get("format") != TORCH_FORMAT:
        raise ConversionError(f"{path} is not a converted MaskGIT file ({TORCH_FORMAT}); "
                              "re-create it with `genaug convert`")
    stored = blob["config"]
    stored["channel_multipliers"] = tuple(stored["channel_multipliers"])
    stored_cfg = MaskGITConfig(**stored)
    if cfg is not None and cfg != stored_cfg:
        raise ConversionError(f"{path} holds a model with config {stored_cfg}, not the requested {cfg}")
    return stored_cfg, blob["state_dict"]
