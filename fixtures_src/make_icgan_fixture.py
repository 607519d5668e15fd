"""Make the IC-GAN reference fixtures from the OFFICIAL BigGAN_PyTorch generator (not in this repo).

    PYTHONPATH=/tmp/official/ic_gan/BigGAN_PyTorch:/tmp/official/ic_gan \
        python fixtures_src/make_icgan_fixture.py --out tests/fixtures/icgan

Writes, per tiny topology (the released 256 and 64 layouts at channel width 4):
  icgan_<name>_G.pth   the official generator state dict (plain dict of tensors, official key names)
  icgan_<name>_io.pt   {"config": ICGANConfig fields, "z", "feats", "out" (eval-mode output; the 256
                        one strided [::4, ::4] to stay small), "out_mean" (per-image mean of the full output)}
and official_listing_<res>.json: names and shapes of the official state dict of the released
ImageNet 256/128/64 configs (built on the meta device, no weights).
Weights look trained: orthogonal init, random gains/biases/attention gamma, then a few train-mode
forward passes so the stored BN statistics and the spectral-norm vectors u0 move away from init.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import BigGAN_PyTorch.BigGAN as official_biggan  # from PYTHONPATH: the official code
import torch
import torch.nn.functional as F

# Settings shared by every released IC-GAN ImageNet generator (json configs + parser defaults).
COMMON = dict(
    dim_z=120, hier=True, class_cond=False, instance_cond=True, G_shared=True, G_shared_feat=True,
    shared_dim=128, shared_dim_feat=512, n_classes=1000, BN_eps=1e-5, SN_eps=1e-6, norm_style="bn",
    num_G_SVs=1, num_G_SV_itrs=1, G_param="SN", no_optim=True,
)
RELEASED = {256: dict(G_ch=96, G_attn="64"), 128: dict(G_ch=96, G_attn="64"), 64: dict(G_ch=64, G_attn="32")}
TINY = {  # name -> (official kwargs, equivalent genaug ICGANConfig fields)
    "res256_tiny": (
        dict(resolution=256, G_ch=4, G_attn="64", shared_dim_feat=32, shared_dim=8, n_classes=10),
        dict(resolution=256, ch=4, attention_resolution=64, shared_dim_feat=32, shared_dim=8, n_classes=10),
    ),
    "res64_tiny": (
        dict(resolution=64, G_ch=4, G_attn="32", shared_dim_feat=32, shared_dim=8, n_classes=10),
        dict(resolution=64, ch=4, attention_resolution=32, shared_dim_feat=32, shared_dim=8, n_classes=10),
    ),
}


def official_listing(resolution: int) -> dict:
    with torch.device("meta"):
        gen = official_biggan.Generator(**{**COMMON, **RELEASED[resolution], "resolution": resolution, "skip_init": True})
    state = gen.state_dict()
    return {
        "config": {**COMMON, **RELEASED[resolution], "resolution": resolution},
        "num_parameters": sum(p.numel() for p in gen.parameters()),
        "dim_z_used": gen.dim_z,
        "keys": [[name, list(t.shape)] for name, t in state.items()],
    }


def trained_looking(gen, seed: int, batch: int = 6, passes: int = 4) -> None:
    """Randomise the non-orthogonal parameters, then run train-mode passes (moves BN stats and u0)."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in gen.named_parameters():
            if name.endswith("gamma"):
                param.fill_(0.7)
            elif name.startswith("output_layer.0."):
                param.add_(0.2 * torch.randn(param.shape, generator=rng))
            elif name.endswith(".bias") and param.dim() == 1:
                param.copy_(0.05 * torch.randn(param.shape, generator=rng))
            elif ".bn" in name:  # conditional gain / bias maps: small, as after training
                param.mul_(0.2)
        gen.train()
        for _ in range(passes):
            z = torch.randn(batch, COMMON["dim_z"], generator=rng)
            feats = F.normalize(torch.randn(batch, 2048, generator=rng), dim=1)
            gen(z, None, feats)
    gen.eval()


def make_tiny(name: str, out: Path, seed: int) -> None:
    official_kwargs, genaug_config = TINY[name]
    torch.manual_seed(seed)  # the official init draws from the global generator
    gen = official_biggan.Generator(**{**COMMON, **official_kwargs})
    trained_looking(gen, seed + 1)
    rng = torch.Generator().manual_seed(seed + 2)
    z = torch.randn(3, gen.dim_z, generator=rng)  # the official inference samples G.dim_z dims
    feats = F.normalize(torch.randn(3, 2048, generator=rng), dim=1)
    with torch.no_grad():
        image = gen(z, None, feats)
    stride = 4 if image.shape[-1] > 64 else 1
    torch.save({k: v.clone() for k, v in gen.state_dict().items()}, out / f"icgan_{name}_G.pth")
    torch.save(
        {"config": genaug_config, "z": z, "feats": feats, "stride": stride,
         "out": image[:, :, ::stride, ::stride].contiguous(), "out_mean": image.mean(dim=(1, 2, 3))},
        out / f"icgan_{name}_io.pt",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (tests/fixtures/icgan)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of weights and inputs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for index, name in enumerate(TINY):
        make_tiny(name, args.out, args.seed + 10 * index)
    for resolution in RELEASED:
        listing = official_listing(resolution)
        (args.out / f"official_listing_{resolution}.json").write_text(json.dumps(listing, indent=1) + "\n")


if __name__ == "__main__":
    main()
