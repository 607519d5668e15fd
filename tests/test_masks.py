"""Token mask patterns of the mask method."""

from __future__ import annotations

import pytest
import torch

from genaug.methods import masks


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ring_default_is_gencl_interior():
    m = masks.ring_mask(16, 1)
    assert m.dtype == torch.bool and m.shape == (16, 16)
    assert int(m.sum()) == 196  # the paper's 14x14 interior
    assert not m[0].any() and not m[-1].any() and not m[:, 0].any() and not m[:, -1].any()
    assert m[1:15, 1:15].all()


@pytest.mark.parametrize("width,expected", [(2, 144), (3, 100), (7, 4)])
def test_ring_width(width, expected):
    assert int(masks.ring_mask(16, width).sum()) == expected


@pytest.mark.parametrize("width", [0, 8, -1])
def test_ring_width_invalid(width):
    with pytest.raises(ValueError, match="--ring-width"):
        masks.ring_mask(16, width)


@pytest.mark.parametrize("ratio,expected", [(0.75, 192), (0.5, 128), (1.0, 256), (0.001, 1)])
def test_random_mask_exact_count(ratio, expected):
    assert int(masks.random_mask(16, ratio, _gen(0)).sum()) == expected


def test_random_mask_seeded_and_varies():
    a = masks.random_mask(16, 0.5, _gen(1))
    assert torch.equal(a, masks.random_mask(16, 0.5, _gen(1)))
    assert not torch.equal(a, masks.random_mask(16, 0.5, _gen(2)))


@pytest.mark.parametrize("ratio", [0.0, 1.5, -0.1])
def test_random_mask_invalid(ratio):
    with pytest.raises(ValueError, match="--mask-ratio"):
        masks.random_mask(16, ratio, _gen(0))


def test_block_mask_union_of_squares():
    m = masks.block_mask(16, 1, 5, _gen(3))
    assert int(m.sum()) == 25
    rows, cols = m.nonzero(as_tuple=True)
    assert int(rows.max() - rows.min()) == 4 and int(cols.max() - cols.min()) == 4
    many = masks.block_mask(16, 6, 4, _gen(3))
    assert 16 <= int(many.sum()) <= 96
    assert torch.equal(many, masks.block_mask(16, 6, 4, _gen(3)))
    assert int(masks.block_mask(16, 1, 16, _gen(0)).sum()) == 256


@pytest.mark.parametrize("count,size,flag", [(0, 4, "--blocks"), (2, 0, "--block-size"), (2, 17, "--block-size")])
def test_block_mask_invalid(count, size, flag):
    with pytest.raises(ValueError, match=flag):
        masks.block_mask(16, count, size, _gen(0))


@pytest.mark.parametrize("scale,kept", [(0.75, 12), (0.5, 8), (0.7, 12), (0.6, 10), (0.05, 2), (0.99, 14)])
def test_outpaint_tokens_even_margin(scale, kept):
    assert masks.outpaint_tokens(16, scale) == kept
    m = masks.outpaint_mask(16, kept)
    assert int((~m).sum()) == kept * kept
    border = (16 - kept) // 2
    assert not m[border : border + kept, border : border + kept].any()


@pytest.mark.parametrize("scale", [0.0, 1.0, 1.2])
def test_outpaint_scale_invalid(scale):
    with pytest.raises(ValueError, match="--outpaint-scale"):
        masks.outpaint_tokens(16, scale)


def test_shrink_into_centre():
    img = torch.rand(2, 3, 64, 64, generator=_gen(0))
    out = masks.shrink_into_centre(img, 48)
    assert out.shape == img.shape
    centre = out[:, :, 8:56, 8:56]
    expected = torch.nn.functional.interpolate(img, size=(48, 48), mode="bicubic", antialias=True).clamp(0, 1)
    torch.testing.assert_close(centre, expected)
    assert torch.equal(out[:, :, :8, 8], out[:, :, 8:9, 8].expand(-1, -1, 8))  # replicated edge
    with pytest.raises(ValueError):
        masks.shrink_into_centre(img, 47)  # odd margin


def test_composite_weights_are_a_gaussian_blur_of_the_token_mask():
    """Left half of a 16x16 grid masked at 256 px: across the edge the weights follow the normal CDF
    of standard deviation 15 px (the official demo's radius, 16 px tokens - 1); far away 1 and 0."""
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[0, :, :8] = True
    w = masks.composite_weights(mask, 256)
    assert w.shape == (2, 1, 256, 256) and w.dtype == torch.float32
    assert (w >= 0).all() and (w <= 1).all()
    assert torch.equal(w[1], torch.zeros(1, 256, 256))  # nothing masked: the input everywhere
    row = w[0, 0, 128]
    assert row[:60].min() == 1.0 and row[196:].max() == 0.0
    x = torch.arange(256, dtype=torch.float64) + 0.5
    expected = 0.5 * torch.erfc((x - 128) / (15 * 2**0.5))  # P(N(x, 15) < 128): the masked side
    assert (row.double() - expected).abs().max() < 0.03  # box-blur approximation and uint8 steps


def test_composite_weights_cache_per_distinct_mask_and_device_independent_of_batch():
    ring = masks.ring_mask(16, 1)
    blocks = masks.block_mask(16, 2, 4, _gen(0))
    together = masks.composite_weights(torch.stack([ring, blocks, ring]), 64)
    assert torch.equal(together[0], together[2])
    assert torch.equal(together[1], masks.composite_weights(blocks[None], 64)[0])


def test_composite_takes_generated_inside_and_original_outside():
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 4:12, 4:12] = True  # the central 128 px square at 256 px
    generated, original = torch.ones(1, 3, 256, 256), torch.zeros(1, 3, 256, 256)
    out = masks.composite(generated, original, mask)
    assert out[..., 112:144, 112:144].min() > 0.98  # 3 standard deviations inside: the generated image
    assert torch.equal(out[..., :20, :], original[..., :20, :])
    assert 0.3 < float(out[0, 0, 128, 64]) < 0.7  # the blurred edge blends the two
