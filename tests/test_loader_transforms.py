"""Generator-driven transforms: VICReg recipe, T^G and the pairwise-ablation sets."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

from genaug.loader import transforms as T
from genaug.testing.shardfactory import structured_image

SIZE = 32


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(structured_image(np.random.default_rng(0), 96, 72))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_random_resized_crop_boxes_follow_vicreg_ranges():
    crop = T.RandomResizedCrop(SIZE)
    gen = _gen(0)
    fractions = []
    for _ in range(500):
        left, top, right, bottom = crop.box(96, 72, gen)
        assert 0 <= left < right <= 96 and 0 <= top < bottom <= 72
        fractions.append((right - left) * (bottom - top) / (96 * 72))
    assert min(fractions) < 0.15 and max(fractions) > 0.8  # scale 0.08-1 is explored
    assert min(fractions) >= 0.07


def test_color_jitter_matches_torchvision_functional(image):
    """Our op applies torchvision's PIL adjustments with the factors it drew, in the drawn order."""
    jitter = T.ColorJitter(p=1.0)
    gen = _gen(3)
    out = jitter(image, gen)
    replay = _gen(3)
    torch.rand((), generator=replay)  # the RandomApply draw
    order = torch.randperm(4, generator=replay).tolist()
    b, c, s, h = (float(torch.rand((), generator=replay)) for _ in range(4))
    factors = (0.6 + 0.8 * b, 0.6 + 0.8 * c, 0.8 + 0.4 * s, -0.1 + 0.2 * h)
    expected = image
    for op in order:
        fn = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)[op]
        expected = fn(expected, factors[op])
    diff = np.abs(np.asarray(out, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= 1  # hue rounding of negative shifts may differ by one level


def test_single_ops(image):
    gen = _gen(0)
    assert np.array_equal(np.asarray(T.HorizontalFlip(1.0)(image, gen)), np.asarray(image)[:, ::-1])
    assert T.HorizontalFlip(0.0)(image, gen) is image
    assert np.array_equal(np.asarray(T.Solarize(1.0)(image, gen)), np.asarray(ImageOps.solarize(image, 128)))
    gray = np.asarray(T.RandomGrayscale(1.0)(image, gen))
    assert np.array_equal(gray[..., 0], gray[..., 2])
    blurred = np.asarray(T.GaussianBlur(1.0)(image, gen), dtype=float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(np.asarray(image, dtype=float), axis=1)).mean()
    resized = T.CentreResize(SIZE)(image, gen)
    assert resized.size == (SIZE, SIZE)


def test_to_tensor_normalises_with_imagenet_stats(image):
    small = image.resize((8, 8))
    norm = T.ToTensor("normalized")(small)
    raw = T.ToTensor("uint8")(small)
    expected = (raw.float() / 255 - torch.tensor(T.IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(T.IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(norm, expected, atol=1e-6)
    with pytest.raises(ValueError, match="bf16"):
        T.ToTensor("bf16")


def test_vicreg_views_differ_only_in_blur_and_solarize():
    view1, view2 = T.vicreg_views(SIZE)
    names = [type(op).__name__ for op in view1.ops]
    assert names == ["RandomResizedCrop", "HorizontalFlip", "ColorJitter", "RandomGrayscale", "GaussianBlur",
                     "Solarize", "ToTensor"]
    ops1 = {type(op).__name__: op for op in view1.ops}
    ops2 = {type(op).__name__: op for op in view2.ops}
    assert (ops1["GaussianBlur"].p, ops1["Solarize"].p) == (1.0, 0.0)
    assert (ops2["GaussianBlur"].p, ops2["Solarize"].p) == (0.1, 0.2)
    jitter = ops1["ColorJitter"]
    assert (jitter.b, jitter.c, jitter.s, jitter.h, jitter.p) == (0.4, 0.4, 0.2, 0.1, 0.8)
    assert ops1["RandomResizedCrop"].scale == (0.08, 1.0) and ops1["RandomGrayscale"].p == 0.2
    assert ops1["GaussianBlur"].sigma == (0.1, 2.0) and ops1["HorizontalFlip"].p == 0.5


@pytest.mark.parametrize("tg, ops", [
    ("gencl", ["RandomResizedCrop", "HorizontalFlip", "ColorJitter", "Solarize"]),
    ("none", ["CentreResize"]),
    ("crop", ["RandomResizedCrop"]),
    ("flip", ["CentreResize", "HorizontalFlip"]),
    ("solarize", ["CentreResize", "Solarize"]),
    ("color_jitter", ["CentreResize", "ColorJitter"]),
    ("blur", ["CentreResize", "GaussianBlur"]),
    ("grayscale", ["CentreResize", "RandomGrayscale"]),
    ("flip+crop", ["RandomResizedCrop", "HorizontalFlip"]),
])
def test_generative_transform_sets(tg, ops, image):
    transform = T.generative_transform(tg, SIZE)
    assert [type(op).__name__ for op in transform.ops] == ops + ["ToTensor"]
    out = transform(image, _gen(1))
    assert out.shape == (3, SIZE, SIZE) and out.dtype == torch.float32


def test_bad_tg_names_the_value():
    with pytest.raises(ValueError, match="crop\\+zoom"):
        T.parse_tg("crop+zoom")
    with pytest.raises(TypeError, match="42"):
        T.parse_tg(42)


def test_views_are_reproducible_and_vary(image):
    view = T.vicreg_view(SIZE)
    a, b, c = view(image, _gen(5)), view(image, _gen(5)), view(image, _gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_as_seeded_wraps_torchvision_v1(image):
    from torchvision import transforms as v1

    user = T.as_seeded(v1.Compose([v1.RandomResizedCrop(SIZE), v1.ToTensor()]))
    assert isinstance(user, T.TorchRNGTransform)
    state = torch.get_rng_state()
    assert torch.equal(user(image, _gen(2)), user(image, _gen(2)))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    with pytest.raises(TypeError, match="not callable"):
        T.as_seeded(3)
