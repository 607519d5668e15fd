"""Precision agreement against exact float32, measured in this run: VQ token agreement of the MaskGIT
tokenizer encoder in bf16 (autocast), emulated TF32 (and real TF32 on CUDA); decode-token agreement and
pixel differences of whole mask and noise edits at --precision bf16 / auto versus fp32.

    python benchmarks/bench_precision.py                 # tiny presets on CPU, ~10 s
    python benchmarks/bench_precision.py --full          # + the full-size MaskGIT tokenizer, random init (~2 min CPU)

Random-init weights give indicative agreement only; with the official weights in the cache
(`genaug models`) pass --preset maskgit-imagenet256 to measure the real tokenizer.
"""

from __future__ import annotations

import argparse
import json
import logging

import _precision as P
import torch

from genaug.methods.editing import random_init_seeded
from genaug.registry import REGISTRY, EditorContext
from genaug.weights import resolve


def tokenizer_rows(args, device: torch.device) -> list[dict]:
    from genaug.models.maskgit import MaskGIT, MaskGITConfig

    rows = []
    configs = [("maskgit-tiny (random init)", MaskGITConfig.tiny(), args.images)]
    if args.full:
        configs.append(("MaskGIT ImageNet-256 size (random init)", MaskGITConfig(), args.full_images))
    for name, cfg, n in configs:
        model = random_init_seeded(lambda cfg=cfg: MaskGIT(cfg), 0)
        images = P.sample_images(cfg.image_size, n)
        row = {"model": name, **P.token_agreement(model, images, device)}
        if args.full_decode or cfg.image_size <= 64:
            row.update(P.decode_agreement(model, images, device))
        rows.append(row)
    if args.preset:
        preset = REGISTRY.preset(args.preset, method="mask")
        editor = preset.build(EditorContext(preset, resolve(preset).paths, device, "fp32",
                                            REGISTRY.method("mask").validate_options({})))
        images = P.sample_images(editor.resolution, args.full_images)
        rows.append({"model": args.preset, **P.token_agreement(editor.model, images, device)})
    return rows


def edit_rows(args, device: torch.device) -> list[dict]:
    rows = []
    for name, options in (("maskgit-tiny", {"class_token": "random"}), ("icgan-tiny", {})):
        preset = REGISTRY.preset(name)
        opts = REGISTRY.method(preset.method).validate_options(options)

        def make(precision, preset=preset, opts=opts):
            return preset.build(EditorContext(preset, {}, device, precision, opts))

        images = (P.sample_images(make("fp32").resolution, args.images) * 255).round().to(torch.uint8).to(device)
        labels = torch.zeros(args.images, dtype=torch.long, device=device)
        rows.append({"preset": name, **P.edit_agreement(make, images, labels, list(range(args.images)))})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=16, help="images of the tiny measurements")
    ap.add_argument("--full", action="store_true", help="also the full-size MaskGIT tokenizer, random init")
    ap.add_argument("--full-images", type=int, default=8)
    ap.add_argument("--full-decode", action="store_true", help="with --full: also the 12-step decode (slow on CPU)")
    ap.add_argument("--preset", default=None, help="also this official mask preset (weights must be cached)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("genaug").setLevel(logging.ERROR)  # the random-init warnings: said in the header
    device = torch.device(args.device)
    facts = {"device": str(device), "tokenizer": tokenizer_rows(args, device), "edits": edit_rows(args, device)}
    if args.json:
        print(json.dumps(facts, indent=2))
        return
    print(f"precision agreement with exact fp32 on {device} (measured in this run)")
    for r in facts["tokenizer"]:
        extra = f", TF32 {r['tf32']:.4%}" if "tf32" in r else ""
        print(f"  tokenizer {r['model']}: {r['tokens']} tokens of {r['images']} images equal: "
              f"bf16 {r['bf16']:.4%}, TF32 emulated {r['tf32_emulated']:.4%}{extra}")
        if "decode_bf16" in r:
            print(f"    transformer bf16 vs fp32, masked tokens equal: one pass argmax {r['one_pass_argmax_bf16']:.4%}, "
                  f"after the 12-step decode (same seeds) {r['decode_bf16']:.4%}")
    for r in facts["edits"]:
        for precision in ("bf16", "auto"):
            e = r[precision]
            tokens = ""
            if "tokens_changed" in e:
                tokens = f"; tokens changed per edit {e['tokens_changed']} vs fp32 {e['tokens_changed_fp32']}"
            print(f"  edit {r['preset']} --precision {precision} vs fp32: max |diff| {e['max_abs']}, mean "
                  f"{e['mean_abs']:.3f} grey levels, {e['frac_pixels_equal']:.2%} values equal{tokens}")


if __name__ == "__main__":
    main()
