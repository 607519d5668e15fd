"""The GenCL pair rule: gamma statistics, determinism, fallback, view shapes, options."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import binom

from genaug.loader import GenCLPairs
from genaug.loader.pairs import unit_draw
from genaug.testing.shardfactory import make_shards, sample_key

SIZE = 32


@pytest.fixture(scope="module")
def raw_samples(tmp_path_factory):
    """Undecoded samples of 12 tiny shards' worth, keyed by sample key."""
    from genaug.loader.mapstyle import GenCLMapDataset

    out = tmp_path_factory.mktemp("shards")
    make_shards(out, n_samples=12, shard_size=4)
    dataset = GenCLMapDataset(out, image_size=SIZE)
    return [dataset.raw_sample(i) for i in range(len(dataset))]


@pytest.mark.parametrize("gamma", [0.0, 0.25, 1.0])
def test_generative_share_within_binomial_bounds(gamma):
    n = 4000
    rule = GenCLPairs(gamma=gamma, seed=7, image_size=SIZE)
    hits = sum(rule.is_generative(f"key{i:05d}", epoch=0) for i in range(n))
    low, high = binom.ppf(1e-6, n, gamma), binom.isf(1e-6, n, gamma)
    assert low <= hits <= high, (gamma, hits, low, high)
    if gamma in (0.0, 1.0):
        assert hits == n * gamma


def test_draw_depends_on_seed_epoch_and_key_only():
    keys = [f"k{i}" for i in range(2000)]
    base = [unit_draw(3, 0, k) for k in keys]
    assert base == [unit_draw(3, 0, k) for k in keys]
    assert all(0.0 <= u < 1.0 for u in base)
    other_epoch = [unit_draw(3, 1, k) for k in keys]
    flips = sum((a < 0.5) != (b < 0.5) for a, b in zip(base, other_epoch))
    assert 800 < flips < 1200  # independent draws per epoch: P(flip) = 0.5
    assert base != [unit_draw(4, 0, k) for k in keys]


def test_view_shapes_dtypes_and_outputs(raw_samples):
    for output, dtype in [("normalized", torch.float32), ("float", torch.float32), ("uint8", torch.uint8)]:
        rule = GenCLPairs(gamma=0.5, image_size=SIZE, output=output)
        for sample in raw_samples[:6]:
            item = rule(sample, epoch=0)
            for view in item["views"]:
                assert view.shape == (3, SIZE, SIZE) and view.dtype == dtype
            if output == "float":
                assert 0.0 <= float(item["views"][0].min()) and float(item["views"][0].max()) <= 1.0
            assert item["label"] == int(sample["cls"]) and item["key"] == sample["__key__"]


def test_determinism_given_seed(raw_samples):
    sample = raw_samples[2]
    first = GenCLPairs(gamma=0.5, seed=11, image_size=SIZE)(sample, epoch=3)
    again = GenCLPairs(gamma=0.5, seed=11, image_size=SIZE)(sample, epoch=3)
    torch.manual_seed(1234)  # the global RNG must not matter
    for a, b in zip(first["views"], again["views"]):
        assert torch.equal(a, b)
    other = GenCLPairs(gamma=0.5, seed=12, image_size=SIZE)(sample, epoch=3)
    assert not torch.equal(first["views"][1], other["views"][1])
    assert not torch.equal(first["views"][0], first["views"][1])


def test_generative_view_comes_from_aug_image(raw_samples):
    """With gamma=1 and no transforms but resize, view 1 is the aug image, view 2 the real one."""
    sample = raw_samples[0]
    rule = GenCLPairs(gamma=1.0, image_size=64, tg="none", output="uint8")
    item = rule(sample)
    aug = np.array(Image.open(io.BytesIO(sample["aug.jpg"])).convert("RGB"))
    assert item["generative"] and torch.equal(item["views"][0], torch.from_numpy(aug).permute(2, 0, 1))
    real_only = GenCLPairs(gamma=0.0, image_size=64, tg="none", output="uint8")(sample)
    assert not real_only["generative"]
    assert not torch.equal(real_only["views"][0], item["views"][0])


@pytest.mark.parametrize("damage", ["broken", "missing"])
def test_fallback_on_bad_aug_is_counted(raw_samples, damage, caplog):
    sample = dict(raw_samples[1])
    if damage == "broken":
        sample["aug.jpg"] = b"\xff\xd8 not really a jpeg"
    else:
        del sample["aug.jpg"]
    rule = GenCLPairs(gamma=1.0, image_size=SIZE)
    item = rule(sample)
    assert not item["generative"] and item["views"][0].shape == (3, SIZE, SIZE)
    assert rule.stats.as_dict() == {"generative": 0, "real": 0, "fallback": 1}
    assert sample["__key__"] in caplog.text
    rule(raw_samples[0])
    assert rule.stats.as_dict()["generative"] == 1


def test_broken_real_image_names_the_sample(raw_samples):
    sample = dict(raw_samples[1], **{"real.jpg": b"garbage"})
    with pytest.raises(ValueError, match=f"sample '{sample['__key__']}'.*undecodable real.jpg"):
        GenCLPairs(image_size=SIZE)(sample)


def test_real_region_crop_box_and_random_order(raw_samples):
    sample = raw_samples[3]
    full = GenCLPairs(gamma=0.0, image_size=SIZE, real_region="full")(sample)
    boxed = GenCLPairs(gamma=0.0, image_size=SIZE, real_region="crop_box")(sample)
    assert not torch.equal(full["views"][0], boxed["views"][0])
    rule = GenCLPairs(gamma=1.0, image_size=SIZE, tg="none", view_order="random", output="uint8")
    slots = []
    for s in raw_samples:
        item = rule(s)
        gen_view = GenCLPairs(gamma=1.0, image_size=SIZE, tg="none", output="uint8")(s)["views"][0]
        slots.append(0 if torch.equal(item["views"][0], gen_view) else 1)
    assert 0 < sum(slots) < len(slots)  # the generative view lands in both slots


def test_user_torchvision_v2_transforms_are_seeded(raw_samples):
    from torchvision.transforms import v2

    user = v2.Compose([v2.PILToTensor(), v2.RandomResizedCrop(SIZE, antialias=True), v2.ToDtype(torch.float32, scale=True)])
    rule = GenCLPairs(gamma=1.0, seed=5, t_gen=user, t_real=user, views=(user, user))
    a, b = rule(raw_samples[4]), rule(raw_samples[4])
    assert a["views"][0].shape == (3, SIZE, SIZE)
    assert torch.equal(a["views"][0], b["views"][0]) and torch.equal(a["views"][1], b["views"][1])


@pytest.mark.parametrize("kwargs, match", [
    ({"gamma": 1.5}, "gamma=1.5"), ({"gamma": -0.1}, "gamma=-0.1"), ({"real_region": "centre"}, "centre"),
    ({"view_order": "backwards"}, "backwards"), ({"tg": "crop", "t_gen": print}, "tg='crop' and t_gen"), ({"tg": "zoom"}, "zoom"), ({"image_size": 2}, "image_size=2"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GenCLPairs(**kwargs)


def test_sample_key_helper_matches_shards(raw_samples):
    assert raw_samples[0]["__key__"] == sample_key(0, True)


def test_real_image_is_exif_transposed_like_the_shard_writer():
    from genaug.loader.pairs import decode_image

    img = Image.fromarray(np.zeros((40, 60, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: the writer's crop_box refers to the transposed image
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    assert decode_image(buf.getvalue()).size == (40, 60)
