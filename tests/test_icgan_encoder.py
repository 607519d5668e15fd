"""SwAV instance encoder: checkpoint mapping, preprocessing as the official IC-GAN inference."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms
from torchvision.models.resnet import Bottleneck, ResNet

from genaug.models.icgan import InstanceEncoder
from genaug.models.icgan.encoder import IMAGENET_MEAN, IMAGENET_STD, EncoderConfig, convert_swav_state_dict


def _images(seed, batch=2, height=70, width=90):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, height, width), generator=gen, dtype=torch.uint8)


def _swav_like_checkpoint(seed):
    """A SwAV-layout checkpoint of the tiny topology: DataParallel prefix, projection head, prototypes."""
    torch.manual_seed(seed)
    config = EncoderConfig.tiny()
    net = ResNet(Bottleneck, list(config.layers), width_per_group=config.width_per_group)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.normal_(1, 0.1)
                module.bias.normal_(0, 0.1)
    state = {f"module.{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    state.update({
        "module.projection_head.0.weight": torch.randn(16, 2048),
        "module.projection_head.0.bias": torch.randn(16),
        "module.prototypes.weight": torch.randn(30, 16),
    })
    return net.eval(), state


def test_from_swav_maps_resnet_and_ignores_heads(tmp_path):
    net, state = _swav_like_checkpoint(0)
    torch.save(state, tmp_path / "swav.pth.tar")
    enc = InstanceEncoder.from_swav(tmp_path / "swav.pth.tar", config=EncoderConfig.tiny())
    images = _images(1, height=64, width=64)
    with torch.no_grad():
        feats = enc(images)
        x = (images.float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = F.interpolate(x, size=56, mode="bicubic", align_corners=True)
        net.fc = torch.nn.Identity()
        expected = F.normalize(net(x), dim=1)
    assert feats.shape == (2, 2048)
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=0)


def test_from_swav_names_unknown_and_missing_keys(tmp_path):
    _, state = _swav_like_checkpoint(0)
    expected = InstanceEncoder(EncoderConfig.tiny()).net.state_dict()
    with pytest.raises(ValueError, match="module.classifier.weight"):
        convert_swav_state_dict({**state, "module.classifier.weight": torch.zeros(2)}, expected)
    del state["module.layer4.0.conv3.weight"]
    with pytest.raises(ValueError, match=r"missing keys \['layer4.0.conv3.weight'\]"):
        convert_swav_state_dict(state, expected)
    with pytest.raises(FileNotFoundError, match="swav_800ep_pretrain"):
        InstanceEncoder.from_swav(tmp_path / "absent.pth.tar")


def test_uint8_and_float_inputs_agree_and_are_unit_norm():
    enc = InstanceEncoder.tiny(seed=0)
    images = _images(2)
    with torch.no_grad():
        a, b = enc(images), enc(images.float() / 255)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)
    assert (a[0] - a[1]).abs().max() > 1e-3  # different images, different features


def test_preprocess_matches_official_pil_pipeline():
    """Official: CenterCropLongEdge, Resize((256, 256)) on PIL, ToTensor, Normalize, bicubic 224."""
    enc = InstanceEncoder(EncoderConfig(layers=(1, 1, 1, 1), width_per_group=8))
    gen = np.random.default_rng(0)
    base = gen.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    array = np.array(Image.fromarray(base).resize((400, 300), Image.BICUBIC))  # smooth content
    official = transforms.Compose([
        transforms.Lambda(lambda im: transforms.functional.center_crop(im, min(im.size))),
        transforms.Resize((256, 256)), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])(Image.fromarray(array))
    official = F.interpolate(official[None], 224, mode="bicubic", align_corners=True)
    ours = enc.preprocess(torch.from_numpy(array).permute(2, 0, 1)[None])
    assert ours.shape == official.shape == (1, 3, 224, 224)
    # resize flavour differs (PIL bilinear + uint8 rounding vs torch antialiased bilinear): close, not equal
    assert (ours - official).abs().mean() < 0.02
    square = torch.from_numpy(np.array(Image.fromarray(array).resize((256, 256)))).permute(2, 0, 1)[None]
    exact = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(square.float() / 255)
    exact = F.interpolate(exact, 224, mode="bicubic", align_corners=True)
    torch.testing.assert_close(enc.preprocess(square), exact, atol=1e-5, rtol=0)  # 256 input: no resize


def test_batch_independence_and_bad_input():
    enc = InstanceEncoder.tiny(seed=1)
    images = _images(3, batch=3)
    with torch.no_grad():
        batch = enc(images)
        single = torch.cat([enc(images[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(single, batch, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\(2, 4, 8, 8\)"):
        enc(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="int32"):
        enc(torch.zeros(2, 3, 8, 8, dtype=torch.int32))
