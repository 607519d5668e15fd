"""Official MaskGIT (flax) parameter trees -> torch state dicts of `MaskGIT`.

Pure functions driven by the config: `tokenizer_rules` / `transformer_rules` list, for every torch
parameter, the official parameter path(s) it is made from and how (layout change). `convert_tree`
consumes every official parameter and fails naming any missing or leftover one.
Layouts: Conv kernel HWIO -> OIHW; Dense kernel (in, out) -> (out, in); attention query/key/value
DenseGeneral (C, heads, Dh) -> one fused (3C, C) Linear; attention out (heads, Dh, C) -> (C, C);
GroupNorm/LayerNorm scale -> weight.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from genaug.models.maskgit.config import MaskGITConfig

PARAMS = "params"


@dataclasses.dataclass(frozen=True)
class Rule:
    torch_name: str  # key in the torch state dict
    official: tuple[str, ...]  # "/"-joined paths in the official `params` tree, in concat order
    kind: str  # "copy" | "conv" | "dense" | "qkv_kernel" | "qkv_bias" | "attn_out"


class ConversionError(ValueError):
    """The official tree does not match the architecture config."""


def _norm(torch_prefix: str, official: str) -> list[Rule]:
    return [Rule(f"{torch_prefix}.weight", (f"{official}/scale",), "copy"),
            Rule(f"{torch_prefix}.bias", (f"{official}/bias",), "copy")]


def _conv(torch_prefix: str, official: str, bias: bool) -> list[Rule]:
    rules = [Rule(f"{torch_prefix}.weight", (f"{official}/kernel",), "conv")]
    if bias:
        rules.append(Rule(f"{torch_prefix}.bias", (f"{official}/bias",), "copy"))
    return rules


def _resblock(torch_prefix: str, official: str, changes_channels: bool) -> list[Rule]:
    rules = _norm(f"{torch_prefix}.norm1", f"{official}/GroupNorm_0")
    rules += _conv(f"{torch_prefix}.conv1", f"{official}/Conv_0", bias=False)
    rules += _norm(f"{torch_prefix}.norm2", f"{official}/GroupNorm_1")
    rules += _conv(f"{torch_prefix}.conv2", f"{official}/Conv_1", bias=False)
    if changes_channels:
        rules += _conv(f"{torch_prefix}.shortcut", f"{official}/Conv_2", bias=False)
    return rules


def _level_blocks(cfg: MaskGITConfig, torch_prefix: str, official: str, first_block: int,
                  in_ch: int, out_ch: int) -> list[Rule]:
    rules = []
    for j in range(cfg.num_res_blocks):
        rules += _resblock(f"{torch_prefix}.blocks.{j}", f"{official}/ResBlock_{first_block + j}",
                           changes_channels=(in_ch != out_ch and j == 0))
    return rules


def tokenizer_rules(cfg: MaskGITConfig, prefix: str = "tokenizer.") -> list[Rule]:
    """Official VQVAE tree: encoder/{Conv_0, ResBlock_k, GroupNorm_0, Conv_1}, quantizer/codebook,
    decoder/{Conv_0, ResBlock_k, Conv_1..Conv_{n-1} (upsampling), GroupNorm_0, Conv_n}."""
    n, nb, f = len(cfg.channel_multipliers), cfg.num_res_blocks, cfg.filters
    chans = [f] + [f * m for m in cfg.channel_multipliers]
    enc, dec = f"{prefix}encoder", f"{prefix}decoder"
    rules = _conv(f"{enc}.conv_in", "encoder/Conv_0", bias=False)
    for i in range(n):
        rules += _level_blocks(cfg, f"{enc}.levels.{i}", "encoder", i * nb, chans[i], chans[i + 1])
    rules += _level_blocks(cfg, f"{enc}.mid", "encoder", n * nb, chans[-1], chans[-1])
    rules += _norm(f"{enc}.norm_out", "encoder/GroupNorm_0")
    rules += _conv(f"{enc}.conv_out", "encoder/Conv_1", bias=True)
    rules.append(Rule(f"{prefix}quantizer.codebook", ("quantizer/codebook",), "copy"))
    rules += _conv(f"{dec}.conv_in", "decoder/Conv_0", bias=True)
    rules += _level_blocks(cfg, f"{dec}.mid", "decoder", 0, chans[-1], chans[-1])
    prev = chans[-1]
    for idx, i in enumerate(reversed(range(n))):  # decoder levels in executed order
        ch = chans[i + 1]
        rules += _level_blocks(cfg, f"{dec}.levels.{idx}", "decoder", (idx + 1) * nb, prev, ch)
        if i > 0:
            rules += _conv(f"{dec}.levels.{idx}.up_conv", f"decoder/Conv_{idx + 1}", bias=True)
        prev = ch
    rules += _norm(f"{dec}.norm_out", "decoder/GroupNorm_0")
    rules += _conv(f"{dec}.conv_out", f"decoder/Conv_{n}", bias=True)
    return rules


def _dense(torch_prefix: str, official: str) -> list[Rule]:
    return [Rule(f"{torch_prefix}.weight", (f"{official}/kernel",), "dense"),
            Rule(f"{torch_prefix}.bias", (f"{official}/bias",), "copy")]


def transformer_rules(cfg: MaskGITConfig, prefix: str = "transformer.") -> list[Rule]:
    """Official Transformer tree: Embed_0, TransformerLayer_i/{Attention_0, Mlp_0}, MlmLayer_0."""
    rules = [Rule(f"{prefix}tok_emb.weight", ("Embed_0/word_embeddings/embedding",), "copy"),
             Rule(f"{prefix}pos_emb.weight", ("Embed_0/position_embeddings/embedding",), "copy")]
    rules += _norm(f"{prefix}emb_ln", "Embed_0/embeddings_ln")
    for i in range(cfg.num_layers):
        layer, off = f"{prefix}layers.{i}", f"TransformerLayer_{i}"
        att = f"{off}/Attention_0/self_attention"
        qkv = tuple(f"{att}/{part}" for part in ("query", "key", "value"))
        rules += [Rule(f"{layer}.attn.qkv.weight", tuple(f"{p}/kernel" for p in qkv), "qkv_kernel"),
                  Rule(f"{layer}.attn.qkv.bias", tuple(f"{p}/bias" for p in qkv), "qkv_bias"),
                  Rule(f"{layer}.attn.out.weight", (f"{att}/out/kernel",), "attn_out"),
                  Rule(f"{layer}.attn.out.bias", (f"{att}/out/bias",), "copy")]
        rules += _norm(f"{layer}.attn_ln", f"{off}/Attention_0/attention_output_ln")
        rules += _dense(f"{layer}.fc1", f"{off}/Mlp_0/intermediate_output")
        rules += _dense(f"{layer}.fc2", f"{off}/Mlp_0/layer_output")
        rules += _norm(f"{layer}.mlp_ln", f"{off}/Mlp_0/layer_output_ln")
    rules += _dense(f"{prefix}mlm_dense", "MlmLayer_0/mlm_dense")
    rules += _norm(f"{prefix}mlm_ln", "MlmLayer_0/mlm_ln")
    rules.append(Rule(f"{prefix}mlm_bias", ("MlmLayer_0/mlm_bias/bias",), "copy"))
    return rules


def to_torch_layout(kind: str, arrays: list[np.ndarray]) -> np.ndarray:
    """Official array(s) -> the torch parameter's layout."""
    if kind == "copy":
        return arrays[0]
    if kind == "conv":  # (kh, kw, in, out) -> (out, in, kh, kw)
        return arrays[0].transpose(3, 2, 0, 1)
    if kind == "dense":  # (in, out) -> (out, in)
        return arrays[0].T
    if kind == "qkv_kernel":  # 3 x (C, heads, Dh) -> (3C, C)
        return np.concatenate([a.reshape(a.shape[0], -1).T for a in arrays], axis=0)
    if kind == "qkv_bias":  # 3 x (heads, Dh) -> (3C,)
        return np.concatenate([a.reshape(-1) for a in arrays])
    if kind == "attn_out":  # (heads, Dh, C) -> (C_out, heads*Dh)
        a = arrays[0]
        return a.reshape(-1, a.shape[-1]).T
    raise ValueError(f"unknown conversion kind {kind!r}")


def official_shapes(kind: str, torch_shape: tuple[int, ...], num_heads: int) -> list[tuple[int, ...]]:
    """Inverse of `to_torch_layout` on shapes: the official shape(s) a torch parameter comes from."""
    if kind == "copy":
        return [tuple(torch_shape)]
    if kind == "conv":
        o, i, kh, kw = torch_shape
        return [(kh, kw, i, o)]
    if kind == "dense":
        return [tuple(reversed(torch_shape))]
    c = torch_shape[-1] if kind != "qkv_bias" else torch_shape[0] // 3
    if kind == "qkv_kernel":
        return [(c, num_heads, c // num_heads)] * 3
    if kind == "qkv_bias":
        return [(num_heads, c // num_heads)] * 3
    if kind == "attn_out":
        return [(num_heads, torch_shape[1] // num_heads, torch_shape[0])]
    raise ValueError(f"unknown conversion kind {kind!r}")


def unwrap_params(tree: dict, what: str) -> dict:
    """The official checkpoints hold flax `variables`, i.e. {"params": {...}}; accept a bare tree."""
    if PARAMS in tree:
        extra = sorted(set(tree) - {PARAMS})
        if extra:
            raise ConversionError(f"{what} checkpoint has collections {extra} besides 'params'; "
                                  "expected flax variables {'params': ...} of the inference model")
        return tree[PARAMS]
    return tree


def convert_tree(flat: dict[str, np.ndarray], rules: list[Rule], expected: dict[str, torch.Size],
                 what: str) -> dict[str, torch.Tensor]:
    """Consume every entry of `flat` (official path -> array) following `rules`; `expected` maps
    torch names to shapes. Raises ConversionError naming missing, leftover or misshaped keys."""
    remaining = dict(flat)
    missing = sorted({p for r in rules for p in r.official} - set(remaining))
    if missing:
        raise ConversionError(f"{what}: official parameters missing from the checkpoint: {missing[:10]}"
                              f"{' ...' if len(missing) > 10 else ''} ({len(missing)} in all); "
                              "does the checkpoint match the MaskGITConfig?")
    out = {}
    for rule in rules:
        arrays = [np.asarray(remaining.pop(p), dtype=np.float32) for p in rule.official]
        value = to_torch_layout(rule.kind, arrays)
        if tuple(value.shape) != tuple(expected[rule.torch_name]):
            raise ConversionError(f"{what}: {rule.official} gives shape {tuple(value.shape)} for "
                                  f"{rule.torch_name}, expected {tuple(expected[rule.torch_name])}")
        out[rule.torch_name] = torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # own copy
    if remaining:
        raise ConversionError(f"{what}: official parameters left unused: {sorted(remaining)[:10]} "
                              f"({len(remaining)} in all); does the checkpoint match the MaskGITConfig?")
    return out
