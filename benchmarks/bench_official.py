"""genaug's IC-GAN stages against the official implementation, batch 1, one CPU thread, interleaved rounds
in one run (each round times every stage of both once; the median per stage is reported).

    python benchmarks/bench_official.py --official-ic-gan /path/to/ic_gan      # a checkout of facebookresearch/ic_gan

The official code is never part of genaug: pass your own checkout (its BigGAN_PyTorch and data_utils are
imported from there); without --official-ic-gan the script says so and exits 0. Ratios are official
ms / genaug ms: above 1 means genaug is faster. MaskGIT's official code is JAX (not timed here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

COMMON = dict(  # the released IC-GAN ImageNet-256 generator (fixtures_src/make_icgan_fixture.py)
    dim_z=120, hier=True, class_cond=False, instance_cond=True, G_shared=True, G_shared_feat=True, shared_dim=128,
    shared_dim_feat=512, n_classes=1000, BN_eps=1e-5, SN_eps=1e-6, norm_style="bn", num_G_SVs=1, num_G_SV_itrs=1,
    G_param="SN", no_optim=True, G_ch=96, G_attn="64", resolution=256,
)


def official_models(root: Path):
    for sub in (root / "BigGAN_PyTorch", root):
        sys.path.insert(0, str(sub))
    if "torchvision.models.utils" not in sys.modules:  # removed from torchvision; the official resnet imports it
        shim = types.ModuleType("torchvision.models.utils")
        shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url
        sys.modules["torchvision.models.utils"] = shim
    import BigGAN_PyTorch.BigGAN as biggan
    from data_utils.resnet import resnet50

    torch.manual_seed(0)
    return biggan.Generator(**COMMON).eval(), resnet50(pretrained=False, classifier_run=False).eval()


def genaug_models():
    from genaug.methods.editing import random_init_seeded
    from genaug.models.icgan import EncoderConfig, Generator, ICGANConfig, InstanceEncoder

    generator = Generator.random(ICGANConfig.imagenet256(), seed=0).eval()
    return generator, random_init_seeded(lambda: InstanceEncoder(EncoderConfig()), 0).eval()


def stages(official, ours) -> dict:
    """name -> {impl: call}; the same inputs for both implementations."""
    g = torch.Generator().manual_seed(1)
    z, feats = torch.randn(1, 120, generator=g), F.normalize(torch.randn(1, 2048, generator=g), dim=1)
    image = torch.rand(1, 3, 256, 256, generator=g)  # the 256 px centre crop in [0, 1]
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    normalised = (image - mean) / std  # the official loader's ToTensor + Normalize output
    small = F.interpolate(normalised, size=(224, 224), mode="bicubic", align_corners=True)
    off_g, off_r = official
    our_g, our_e = ours
    return {
        "generator (256 px)": {"official": lambda: off_g(z, None, feats), "genaug": lambda: our_g(z, feats)},
        "SwAV ResNet-50 + preprocessing": {
            "official": lambda: off_r(F.interpolate(normalised, size=(224, 224), mode="bicubic", align_corners=True)),
            "genaug": lambda: our_e(image)},
        "SwAV ResNet-50 trunk only": {"official": lambda: off_r(small), "genaug": lambda: our_e.net(small)},
    }


@torch.no_grad()
def interleaved(table: dict, rounds: int) -> dict:
    times = {(s, i): [] for s, impls in table.items() for i in impls}
    for impls in table.values():  # warm-up
        for call in impls.values():
            call()
    for _ in range(rounds):
        for s, impls in table.items():
            for impl, call in impls.items():
                start = time.perf_counter()
                call()
                times[(s, impl)].append(time.perf_counter() - start)
    return {key: 1000.0 * statistics.median(v) for key, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official-ic-gan", type=Path, default=None, help="a checkout of facebookresearch/ic_gan")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    if args.official_ic_gan is None:
        print("no --official-ic-gan checkout given: nothing to compare (genaug never ships the official code)")
        return
    torch.set_num_threads(1)
    ms = interleaved(stages(official_models(args.official_ic_gan), genaug_models()), args.rounds)
    print(f"IC-GAN stages, batch 1, 1 CPU thread, fp32, median of {args.rounds} interleaved rounds (random weights)")
    for stage in dict.fromkeys(s for s, _ in ms):
        off, ours = ms[(stage, "official")], ms[(stage, "genaug")]
        print(f"  {stage:<32} official {off:9.1f} ms   genaug {ours:9.1f} ms   official/genaug {off / ours:5.2f}x")


if __name__ == "__main__":
    main()
