"""FID (genaug.report.fid): offline pytorch-fid Inception, exact low-rank distance, known answers.

Every network here is a RANDOMLY INITIALISED Inception of the FID architecture (random_inception),
a stand-in for the real weights, which tests never download.
"""

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import InceptionV3

from genaug.report import fid


@pytest.fixture(scope="module")
def random_inception_model():
    return fid.random_inception(seed=0)


def _smooth_images(seed: int, n: int, size: int = 80) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 6, 6), generator=gen) * 255
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(0, 255).to(torch.uint8)


def _stats(model, images: torch.Tensor) -> fid.FeatureStats:
    stats = fid.FeatureStats(fid.FID_DIMS)
    with torch.no_grad():
        stats.add(model(images))
    return stats


def test_random_inception_matches_pytorch_fid_inceptionv3(tmp_path, monkeypatch):
    """Same weights (random, saved where pytorch-fid looks) -> same pool3 features as pytorch-fid's own class."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    target = fid.default_weights_path()
    target.parent.mkdir(parents=True)
    torch.save(fid.random_inception_state_dict(seed=1), target)
    images = _smooth_images(2, n=2)
    reference = InceptionV3([3]).eval()  # finds the file in the hub folder, so it does not download
    with torch.no_grad():
        expected = reference(images.float() / 255)[0].flatten(1)
        ours = fid.load_inception(None)(images)  # resolves the same default path
    assert ours.shape == (2, fid.FID_DIMS)
    assert float(expected.abs().mean()) > 1e-3  # non-trivial activations
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_missing_weights_error_names_file_url_and_path(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    with pytest.raises(fid.InceptionWeightsMissing) as err:
        fid.resolve_weights(None)
    text = str(err.value)
    assert fid.FID_WEIGHTS_FILENAME in text and fid.FID_WEIGHTS_URL in text
    assert str(tmp_path / "checkpoints" / fid.FID_WEIGHTS_FILENAME) in text
    with pytest.raises(fid.InceptionWeightsMissing, match="--inception-weights"):
        fid.resolve_weights(tmp_path / "nope.pth")


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")
def test_low_rank_distance_equals_direct_pytorch_fid():
    """The span projection used for n < D leaves the distance unchanged."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 64)) + 0.3
    b = 1.5 * rng.standard_normal((9, 64))
    sa, sb = fid.FeatureStats(64), fid.FeatureStats(64)
    sa.add(torch.from_numpy(a))
    sb.add(torch.from_numpy(b))
    direct = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.frechet_distance(sa, sb) == pytest.approx(direct, rel=1e-6)
    np.testing.assert_allclose(sa.cov(), np.cov(a, rowvar=False), atol=1e-10)


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")
def test_full_rank_path_streams_statistics():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((40, 8)), rng.standard_normal((30, 8)) + 1.0
    sa, sb = fid.FeatureStats(8), fid.FeatureStats(8)
    for block in np.array_split(a, 4):
        sa.add(torch.from_numpy(block))
    sb.add(torch.from_numpy(b))
    assert sa.matrix() is None  # more rows than dims: only the running sums are kept
    direct = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.frechet_distance(sa, sb) == pytest.approx(direct, rel=1e-8)


def test_random_inception_fid_zero_for_identical_and_rising_with_noise(random_inception_model):
    """Random-init Inception stand-in: FID(x, x) ~ 0 and FID grows with the noise added to x."""
    real = _smooth_images(3, n=6)
    base = _stats(random_inception_model, real)
    same = fid.frechet_distance(base, _stats(random_inception_model, real.clone()))
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn(real.shape, generator=gen)
    values = []
    for sigma in (8.0, 32.0, 96.0):
        noisy = (real.float() + sigma * noise).round().clamp(0, 255).to(torch.uint8)
        values.append(fid.frechet_distance(base, _stats(random_inception_model, noisy)))
    scale = values[-1]
    assert abs(same) < 1e-6 * scale, (same, values)
    assert values[0] > 1e-4 * scale
    assert values[0] < values[1] < values[2], values


def test_too_few_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        one = fid.FeatureStats(4)
        one.add(torch.ones(1, 4))
        fid.frechet_distance(one, one)
    text = fid.few_samples_warning({"x": 10, "y": 4096})
    assert "fewer samples than the 2048" in text and "x (10)" in text and "y (" not in text
    assert fid.few_samples_warning({"y": 4096}) is None


@pytest.mark.gpu
def test_cuda_features_and_ssim_match_cpu(random_inception_model):
    """On a GPU: Inception features and SSIM agree with the CPU (random-init Inception stand-in)."""
    from genaug.report.scores import ssim

    real, aug = _smooth_images(5, n=4), _smooth_images(6, n=4)
    with torch.no_grad():
        cpu = random_inception_model(real)
        gpu = fid.random_inception(seed=0, device="cuda")(real.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(ssim(real.cuda(), aug.cuda()).cpu(), ssim(real, aug), rtol=1e-6, atol=1e-6)
