"""Precision agreement measurements shared by bench_precision.py and bench_device.py: VQ token agreement
of a reduced-precision tokenizer encoder against exact float32, decode-token agreement and pixel
differences. TF32 is emulated on any device by rounding the operands of every convolution and linear
layer to TF32's 10-bit mantissa (round to nearest even) and computing in float32, as tensor cores do."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from genaug.methods.editing import autocast, exact_fp32, tf32_convolutions

SAMPLES = Path(__file__).resolve().parents[1] / "genaug" / "samples"


def sample_images(side: int, count: int) -> torch.Tensor:
    """The bundled photos (then flipped and rotated copies), centre-cropped and resized: (N, 3, S, S) in [0, 1]."""
    pics = []
    for path in sorted(SAMPLES.glob("*.jpg")):
        img = Image.open(path).convert("RGB")
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        pics.append(np.asarray(img.resize((side, side), Image.BICUBIC)))
    out = []
    while len(out) < count:
        k = len(out) // len(pics)
        out += [np.rot90(p, k) if k % 2 == 0 else np.rot90(p[:, ::-1], k) for p in pics]
    x = torch.from_numpy(np.stack(out[:count]).copy()).permute(0, 3, 1, 2)
    return x.float() / 255.0


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 -> the nearest float32 with a 10-bit mantissa (TF32's), ties to even."""
    bits = x.float().contiguous().view(torch.int32)
    lsb = (bits >> 13) & 1
    rounded = (bits + 0x0FFF + lsb) & ~0x1FFF
    return rounded.view(torch.float32)


@contextlib.contextmanager
def tf32_emulated(module: nn.Module) -> Iterator[nn.Module]:
    """A copy of `module` whose convolutions and linear layers see TF32-rounded inputs and weights."""
    twin = copy.deepcopy(module)
    handles = []
    for layer in twin.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                layer.weight.copy_(round_tf32(layer.weight))
            handles.append(layer.register_forward_pre_hook(lambda _m, args: (round_tf32(args[0]), *args[1:])))
    try:
        yield twin
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def token_agreement(model, images: torch.Tensor, device: torch.device, chunk: int = 4) -> dict:
    """Fraction of VQ token ids equal to exact float32's for a bf16-autocast encoder, an emulated-TF32
    encoder and (on CUDA) a real TF32 encoder; the VQ search itself always exact float32."""
    model = model.to(device).eval()
    images = images.to(device)

    def tokens(encoder, mode: str) -> torch.Tensor:
        parts = []
        for x in images.split(chunk):
            if mode == "tf32":
                with tf32_convolutions():
                    feats = encoder(x)
            else:
                with autocast(device, torch.bfloat16 if mode == "bf16" else None):
                    feats = encoder(x)
            with exact_fp32():
                parts.append(model.tokenizer.quantizer.indices(feats.float()))
        return torch.cat(parts)

    exact = tokens(model.tokenizer.encoder, "fp32")
    out = {"images": int(images.shape[0]), "tokens": int(exact.numel()),
           "bf16": float((tokens(model.tokenizer.encoder, "bf16") == exact).float().mean())}
    with tf32_emulated(model.tokenizer.encoder) as twin:
        out["tf32_emulated"] = float((tokens(twin, "fp32") == exact).float().mean())
    if device.type == "cuda":
        out["tf32"] = float((tokens(model.tokenizer.encoder, "tf32") == exact).float().mean())
    return out


@torch.no_grad()
def decode_agreement(model, images: torch.Tensor, device: torch.device, num_iter: int = 12) -> dict:
    """Fraction of equal tokens after the 12-step decode (ring mask, same seeds, exact fp32 tokenizer)
    with the transformer under bf16 autocast versus exact fp32: re-sampling makes one flipped token
    change later draws, so this is lower than a single pass's agreement."""
    model = model.to(device).eval()
    cfg = model.config
    with exact_fp32():
        tokens = model.encode(images.to(device))
    seq = tokens.flatten(1).clone()
    grid = seq.view(-1, cfg.latent_size, cfg.latent_size)
    grid[:, 1:-1, 1:-1] = -1
    seq = torch.cat([torch.full((seq.shape[0], 1), cfg.codebook_size, device=device), seq], dim=1)
    seeds = torch.arange(seq.shape[0], dtype=torch.int64, device=device)
    final = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        with autocast(device, dtype):
            final[name] = model.inpaint(seq, num_iter=num_iter, seeds=seeds)[:, -1]
    masked = seq == -1
    first = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        with autocast(device, dtype):
            first[name] = model.codebook_logits(seq).argmax(-1)
    return {"decode_bf16": float((final["bf16"] == final["fp32"])[masked].float().mean()),
            "one_pass_argmax_bf16": float((first["bf16"] == first["fp32"])[masked].float().mean())}


def edit_agreement(make_editor, images_u8: torch.Tensor, labels: torch.Tensor, seeds: list[int],
                   precisions: tuple[str, ...] = ("bf16", "auto")) -> dict:
    """Pixel differences of whole edits at each precision against --precision fp32 (same seeds), and for
    the mask method the fraction of equal tokens per edit param 'tokens_changed'. make_editor(precision)."""
    ref = make_editor("fp32").edit(images_u8, seeds, labels)
    out = {}
    for precision in precisions:
        got = make_editor(precision).edit(images_u8, seeds, labels)
        diff = (got.images.int() - ref.images.int()).abs().float()
        row = {"max_abs": int(diff.max()), "mean_abs": float(diff.mean()),
               "frac_pixels_equal": float((diff == 0).float().mean())}
        if "tokens_changed" in ref.params[0]:
            row["tokens_changed_fp32"] = [p["tokens_changed"] for p in ref.params]
            row["tokens_changed"] = [p["tokens_changed"] for p in got.params]
        out[precision] = row
    return out
