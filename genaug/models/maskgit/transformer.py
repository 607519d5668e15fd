"""Bidirectional BERT-style transformer of MaskGIT, equal to the official Flax `maskgit_transformer`.

Post-LayerNorm layers, tanh-GELU MLP, and an MLM head whose output projection is the
token embedding matrix (tied) plus its own bias; that projection always runs in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genaug.models.maskgit.config import LAYERNORM_EPS, MaskGITConfig


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)  # fused official query/key/value
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, c // self.heads)  # (B, L, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, Dh)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, Dh), no mask: fully bidirectional
        return self.out(y.transpose(1, 2).reshape(b, n, c))


class TransformerLayer(nn.Module):
    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        self.attn = SelfAttention(cfg.hidden_size, cfg.num_heads)
        self.attn_ln = nn.LayerNorm(cfg.hidden_size, eps=LAYERNORM_EPS)
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.mlp_ln = nn.LayerNorm(cfg.hidden_size, eps=LAYERNORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        x = self.attn_ln(self.attn(x) + x)
        return self.mlp_ln(self.fc2(F.gelu(self.fc1(x), approximate="tanh")) + x)


class BidirectionalTransformer(nn.Module):
    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        self.vocab_size = cfg.vocab_size
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.hidden_size)
        self.emb_ln = nn.LayerNorm(cfg.hidden_size, eps=LAYERNORM_EPS)
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.num_layers))
        self.mlm_dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.mlm_ln = nn.LayerNorm(cfg.hidden_size, eps=LAYERNORM_EPS)
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)

    def forward(self, ids: torch.Tensor, num_outputs: int | None = None) -> torch.Tensor:
        """(B, L) int -> (B, L, vocab) logits, or only the first `num_outputs` of them (the
        sampler needs the codebook part alone; each logit is the same dot product either way)."""
        ids = torch.where(ids < 0, ids + self.vocab_size, ids)  # -1 (mask) -> last vocab row
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.emb_ln(self.tok_emb(ids) + self.pos_emb(pos)[None])  # (B, L, C)
        for layer in self.layers:
            x = layer(x)
        h = self.mlm_ln(F.gelu(self.mlm_dense(x), approximate="tanh"))  # (B, L, C)
        n = self.vocab_size if num_outputs is None else num_outputs
        return self.output_logits(h, n)

    def output_logits(self, h: torch.Tensor, n: int) -> torch.Tensor:
        """MLM output projection, always in float32: (B, L, C) -> (B, L, n) float32 logits.

        The weights are the token embedding (tied) plus the head's own bias. Autocast is off here and
        the inputs are cast to float32, because bf16 logits would round log p and move the sampled
        and re-masked tokens; the projection is a small part of the transformer's cost."""
        with torch.autocast(device_type=h.device.type, enabled=False):
            return F.linear(h.float(), self.tok_emb.weight[:n].float()) + self.mlm_bias[:n].float()
