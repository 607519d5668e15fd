"""IC-GAN generator port: equality with the official BigGAN_PyTorch code (fixtures made by
fixtures_src/make_icgan_fixture.py), checkpoint conversion, and the full-size key listing."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genaug.models.icgan import Generator, ICGANConfig
from genaug.models.icgan.convert import DROPPED_KEYS, ConversionError, fold_spectral_norm
from genaug.models.icgan.generator import convert_official_state_dict, detect_released_config, expected_shapes

FIXTURES = Path(__file__).parent / "fixtures" / "icgan"
TINY = ("res256_tiny", "res64_tiny")
RELEASED = {256: ICGANConfig.imagenet256(), 128: ICGANConfig.imagenet128(), 64: ICGANConfig.imagenet64()}


def _fixture(name):
    io = torch.load(FIXTURES / f"icgan_{name}_io.pt", weights_only=True)
    return FIXTURES / f"icgan_{name}_G.pth", io, ICGANConfig(**io["config"])


@pytest.mark.parametrize("name", TINY)
def test_matches_official_generator(name):
    path, io, config = _fixture(name)
    gen = Generator.from_official(path, config=config)
    with torch.no_grad():
        out = gen(io["z"], io["feats"])
    stride = io["stride"]
    assert out.shape == (3, 3, config.resolution, config.resolution)
    assert io["out"].std() > 0.05  # the reference is not a constant image
    torch.testing.assert_close(out[:, :, ::stride, ::stride], io["out"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), io["out_mean"], atol=1e-5, rtol=0)


def test_extra_z_dims_are_ignored_like_official():
    path, io, config = _fixture("res256_tiny")
    gen = Generator.from_official(path, config=config)
    assert gen.dim_z == 119 and io["z"].shape[1] == 119
    padded = torch.cat([io["z"], torch.randn(3, 9)], dim=1)  # the official notebook feeds 128 dims
    with torch.no_grad():
        torch.testing.assert_close(gen(padded, io["feats"]), gen(io["z"], io["feats"]), atol=1e-5, rtol=0)


def test_experiment_folder_and_converted_roundtrip(tmp_path):
    path, io, config = _fixture("res64_tiny")
    assert config == ICGANConfig.tiny()  # the tiny preset's topology is the one checked against official code
    folder = tmp_path / "icgan_biggan_imagenet_res64"
    folder.mkdir()
    shutil.copy(path, folder / "G_ema_best0.pth")
    gen = Generator.from_official(folder, config=config)
    gen.save_torch(tmp_path / "converted.pt")
    again = Generator.from_torch(tmp_path / "converted.pt")
    assert again.config == config
    with torch.no_grad():
        torch.testing.assert_close(again(io["z"], io["feats"]), gen(io["z"], io["feats"]), atol=0, rtol=0)
    with pytest.raises(ValueError, match="not a converted IC-GAN file"):
        torch.save({"format": "other"}, tmp_path / "other.pt")
        Generator.from_torch(tmp_path / "other.pt")


def test_missing_checkpoint_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="G_ema_best0.pth"):
        Generator.from_official(tmp_path, config=ICGANConfig.tiny())
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        Generator.from_official(tmp_path / "nope.pth", config=ICGANConfig.tiny())


def test_conversion_names_leftover_missing_and_wrong_config():
    path, _, config = _fixture("res64_tiny")
    official = torch.load(path, weights_only=True)
    assert "shared.weight" in official and "shared.weight" in DROPPED_KEYS
    with pytest.raises(ConversionError, match="blocks.9.extra"):
        convert_official_state_dict({**official, "blocks.9.extra": torch.zeros(1)}, config)
    incomplete = {k: v for k, v in official.items() if k != "blocks.1.0.bn2.stored_var"}
    with pytest.raises(ConversionError, match=r"missing keys: \['blocks.1.0.bn2.stored_var'\]"):
        convert_official_state_dict(incomplete, config)
    with pytest.raises(ConversionError, match="none of the released"):
        detect_released_config(official)
    with pytest.raises(ConversionError, match="shape mismatches"):
        convert_official_state_dict(official, ICGANConfig(resolution=64, ch=8, attention_resolution=32,
                                                          shared_dim_feat=32, shared_dim=8, n_classes=10))


def test_spectral_norm_fold_divides_by_top_singular_value():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 4, 3, 3, generator=gen)
    matrix = weight.reshape(6, -1)
    top_u = torch.linalg.svd(matrix.double())[0][:, 0].float()[None]  # converged power iteration
    folded = fold_spectral_norm(weight, top_u, eps=1e-6)
    assert torch.linalg.matrix_norm(folded.reshape(6, -1), ord=2).item() == pytest.approx(1.0, abs=1e-4)
    rough = fold_spectral_norm(weight, torch.randn(1, 6, generator=gen), eps=1e-6)  # one step: sigma <= true
    assert torch.linalg.matrix_norm(rough.reshape(6, -1), ord=2).item() >= 1.0 - 1e-5


@pytest.mark.parametrize("resolution", sorted(RELEASED))
def test_released_listing_maps_one_to_one(resolution):
    listing = json.loads((FIXTURES / f"official_listing_{resolution}.json").read_text())
    config = RELEASED[resolution]
    with torch.device("meta"):
        official = {name: torch.empty(shape) for name, shape in listing["keys"]}
    converted = convert_official_state_dict(official, config)
    ours = expected_shapes(config)
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours
    dropped = sum(torch.Size(s).numel() for n, s in listing["keys"] if n in DROPPED_KEYS)
    with torch.device("meta"):
        port = sum(p.numel() for p in Generator(config).parameters())
    assert port + dropped == listing["num_parameters"]
    assert listing["dim_z_used"] == config.z_dims_used
    assert detect_released_config(official) == config
    if resolution == 256:
        assert round(listing["num_parameters"] / 1e6, 1) == 90.0
        assert config.z_chunk_size == 17 and config.num_slots == 7


def test_sample_independent_of_batch_and_channels_last():
    gen = Generator.random(ICGANConfig.tiny(), seed=3)
    rng = torch.Generator().manual_seed(0)
    z = torch.randn(4, 120, generator=rng)
    feats = F.normalize(torch.randn(4, 2048, generator=rng), dim=1)
    with torch.no_grad():
        batch = gen(z, feats)
        single = torch.cat([gen(z[i : i + 1], feats[i : i + 1]) for i in range(4)])
        gen.to(memory_format=torch.channels_last)
        last = gen(z, feats)
    assert batch.abs().max() <= 1.0 and batch.std() > 0.1
    torch.testing.assert_close(single, batch, atol=1e-5, rtol=0)
    torch.testing.assert_close(last, batch, atol=1e-5, rtol=0)


def test_random_is_seeded():
    a, b = Generator.random(ICGANConfig.tiny(), seed=1), Generator.random(ICGANConfig.tiny(), seed=1)
    c = Generator.random(ICGANConfig.tiny(), seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.linear.weight, c.linear.weight)


def test_bf16_autocast_stays_close():
    path, io, config = _fixture("res64_tiny")
    gen = Generator.from_official(path, config=config)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = gen(io["z"], io["feats"]).float()
    assert (low - io["out"]).abs().max() < 0.1


def test_bad_inputs_are_named():
    gen = Generator.random(ICGANConfig.tiny(), seed=0)
    with pytest.raises(ValueError, match=r"z has shape \(2, 50\)"):
        gen(torch.zeros(2, 50), torch.zeros(2, 2048))
    with pytest.raises(ValueError, match=r"feats has shape \(2, 512\)"):
        gen(torch.zeros(2, 120), torch.zeros(2, 512))
    with pytest.raises(ValueError, match="resolution=100"):
        ICGANConfig(resolution=100)
    with pytest.raises(ValueError, match="attention_resolution=128"):
        ICGANConfig(resolution=64, attention_resolution=128)


@pytest.mark.gpu
@pytest.mark.parametrize("name", TINY)
def test_cuda_channels_last_matches_official(name, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # exact fp32 convolutions
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    path, io, config = _fixture(name)
    gen = Generator.from_official(path, config=config).cuda().to(memory_format=torch.channels_last)
    stride = io["stride"]
    with torch.no_grad():
        out = gen(io["z"].cuda(), io["feats"].cuda()).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = gen(io["z"].cuda(), io["feats"].cuda()).float().cpu()
    torch.testing.assert_close(out[:, :, ::stride, ::stride], io["out"], atol=1e-4, rtol=0)
    assert (low[:, :, ::stride, ::stride] - io["out"]).abs().max() < 0.1
