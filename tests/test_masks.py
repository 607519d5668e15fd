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
