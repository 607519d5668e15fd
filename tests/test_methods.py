"""The mask and noise editors on the registry's random-init presets, and truncated-normal sampling."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from scipy import stats

from genaug.methods import mask as mask_method
from genaug.registry import REGISTRY, EditorContext
from genaug.sampling.truncation import truncated_normal, truncated_normal_per_sample, truncation_bound

TINY = sorted(p.name for p in REGISTRY.presets() if p.random_init)
SEEDS = [11, 22, 33]


def _editor(preset: str, device: str = "cpu", precision: str = "fp32", **options):
    p = REGISTRY.preset(preset)
    opts = REGISTRY.method(p.method).validate_options(options, p)
    return p.build(EditorContext(p, {}, torch.device(device), precision, opts))


def _images(editor, n: int = 3, seed: int = 0) -> torch.Tensor:
    r = editor.resolution
    return torch.randint(0, 256, (n, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _labels(n: int = 3) -> torch.Tensor:
    return torch.tensor([5, 17, 999][:n])


@pytest.fixture(scope="module", params=TINY)
def tiny(request):
    return _editor(request.param)


def test_registry_has_both_tiny_presets_and_defaults():
    assert TINY == ["icgan-tiny", "maskgit-tiny"]
    assert REGISTRY.method("mask").default_preset == "maskgit-imagenet256"
    assert REGISTRY.method("noise").default_preset == "icgan-imagenet256"
    for name in ("icgan-imagenet256", "icgan-imagenet128", "icgan-imagenet64", "maskgit-imagenet256"):
        assert REGISTRY.preset(name).files


def test_random_init_warns_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        _editor("icgan-tiny")
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)


def test_shape_dtype_params(tiny):
    images = _images(tiny)
    result = tiny.edit(images, SEEDS, _labels())
    assert result.images.dtype == torch.uint8 and result.images.shape == images.shape
    assert len(result.params) == 3
    json.dumps(result.params)  # must be JSON-serialisable for the sample json
    assert result.images.float().std() > 1.0  # not a constant image


def test_deterministic_per_seed(tiny):
    images = _images(tiny)
    a = tiny.edit(images, SEEDS, _labels())
    b = tiny.edit(images, SEEDS, _labels())
    assert torch.equal(a.images, b.images) and a.params == b.params
    c = tiny.edit(images, [s + 1 for s in SEEDS], _labels())
    assert not torch.equal(a.images, c.images)


def test_batch_size_independence(tiny):
    """A sample alone equals itself in a batch, bit for bit (fixed compute chunks; more batch sizes and
    options in test_batch_invariance.py)."""
    images, labels = _images(tiny), _labels()
    batch = tiny.edit(images, SEEDS, labels)
    for i in range(3):
        alone = tiny.edit(images[i : i + 1], SEEDS[i : i + 1], labels[i : i + 1])
        assert alone.params[0] == batch.params[i]
        assert torch.equal(alone.images[0], batch.images[i])


def test_describe(tiny):
    d = tiny.describe()
    json.dumps(d)
    assert d["preset"] in TINY and d["random_init"] is True and d["device"] == "cpu"
    assert d["parameters"] == sum(d["parameters_by_part"].values()) > 0
    assert d["parameters"] == tiny.parameter_count()
    assert d["precision"] == "fp32"


def test_input_resample_is_the_official_preprocessing_filter():
    """IC-GAN's official inference resizes the crop with PIL bilinear; MaskGIT's demo with bicubic;
    an editor that does not say gets the contract's default."""
    from genaug.registry import Editor

    assert Editor.input_resample == "bicubic"
    assert _editor("icgan-tiny").input_resample == "bilinear"
    assert _editor("maskgit-tiny").input_resample == "bicubic"
    for preset in TINY:
        editor = _editor(preset)
        assert editor.describe()["input_resample"] == editor.input_resample


def test_edit_rejects_bad_inputs(tiny):
    images = _images(tiny)
    with pytest.raises(ValueError, match="uint8"):
        tiny.edit(images.float(), SEEDS, _labels())
    with pytest.raises(ValueError, match="seeds"):
        tiny.edit(images, SEEDS[:2], _labels())
    with pytest.raises(ValueError, match="labels"):
        tiny.edit(images, SEEDS, _labels()[:2])


# ---- mask --------------------------------------------------------------------------------------
@pytest.mark.parametrize("options,flag", [
    ({"num_iter": 0}, "--num-iter"), ({"start_iter": 12}, "--start-iter"), ({"start_iter": -1}, "--start-iter"),
    ({"choice_temperature": -1.0}, "--choice-temperature"), ({"class_token": "fixed:x"}, "--class-token"),
    ({"class_token": "fixed:1000"}, "--class-token"), ({"class_token": "guess"}, "--class-token"),
    ({"ring_width": 8}, "--ring-width"), ({"mask": "random", "mask_ratio": 0.0}, "--mask-ratio"),
    ({"mask": "blocks", "block_size": 17}, "--block-size"), ({"mask": "outpaint", "outpaint_scale": 1.0},
                                                              "--outpaint-scale"),
])
def test_mask_option_errors(options, flag):
    with pytest.raises(ValueError, match=flag):
        _editor("maskgit-tiny", **options)


@pytest.mark.parametrize("method,options,flag", [
    ("mask", {"ring_width": 0}, "--ring-width"), ("mask", {"num_iter": 0}, "--num-iter"),
    ("mask", {"class_token": "fixed:-3"}, "--class-token"), ("mask", {"mask": "outpaint", "outpaint_scale": 0}, "--outpaint"),
    ("noise", {"truncation": -1.0}, "truncation"), ("noise", {"candidates": 0}, "--candidates"),
])
def test_option_values_rejected_before_any_model_or_weights(method, options, flag):
    """MethodSpec.validate_options (called by the build before resolving weights) already checks values."""
    with pytest.raises(ValueError, match=flag):
        REGISTRY.method(method).validate_options(options)


def test_mask_pattern_option_for_another_pattern_is_an_error():
    spec = REGISTRY.method("mask")
    with pytest.raises(ValueError, match="--mask-ratio applies to --mask random only"):
        spec.validate_options({"mask_ratio": 0.5})
    with pytest.raises(ValueError, match="--ring-width applies to --mask ring only"):
        spec.validate_options({"mask": "blocks", "ring_width": 2})
    assert spec.validate_options({"mask": "blocks", "blocks": 2, "block_size": 3})["blocks"] == 2


def test_mask_unknown_pattern_rejected_by_spec():
    with pytest.raises(ValueError, match="--mask"):
        REGISTRY.method("mask").validate_options({"mask": "circle"})


def test_unlabelled_sample_with_label_strategy_is_an_error():
    editor = _editor("maskgit-tiny")
    assert editor.requires_labels and mask_method.requires_labels({"class_token": "label"})
    assert not mask_method.requires_labels({"class_token": "random"})
    with pytest.raises(ValueError, match="--class-token random or fixed:N"):
        editor.edit(_images(editor), SEEDS, torch.tensor([3, -1, 4]))


class _Spy:
    """Wraps the model's inpaint to capture the sequences the editor builds."""

    def __init__(self, editor):
        self.editor, self.seqs = editor, []
        self.inner = editor.model.inpaint

    def __call__(self, seq, **kwargs):
        self.seqs.append(seq.clone())
        return self.inner(seq, **kwargs)


def _captured(monkeypatch, editor, labels):
    spy = _Spy(editor)
    monkeypatch.setattr(editor.model, "inpaint", spy)
    result = editor.edit(_images(editor), SEEDS, labels)
    return result, spy.seqs[0][: len(labels)]  # the model runs a padded compute chunk: the real rows


def test_mask_sequence_ring_and_label(monkeypatch):
    editor = _editor("maskgit-tiny")
    result, seq = _captured(monkeypatch, editor, _labels())
    cfg = editor.model.config
    assert seq[:, 0].tolist() == [cfg.codebook_size + c for c in (5, 17, 999)]
    grid = seq[:, 1:].view(3, 16, 16)
    tokens = editor.model.encode(_images(editor).float() / 255.0)
    assert (grid[:, 1:15, 1:15] == -1).all()
    ring = torch.ones(16, 16, dtype=torch.bool)
    ring[1:15, 1:15] = False
    assert torch.equal(grid[:, ring], tokens[:, ring])
    assert [p["n_masked"] for p in result.params] == [196] * 3
    assert [p["class_token"] for p in result.params] == [5, 17, 999]
    assert all(p["tokens_changed"] <= p["n_masked"] for p in result.params)


def test_mask_fixed_and_random_class(monkeypatch):
    editor = _editor("maskgit-tiny", class_token="fixed:7")
    result, seq = _captured(monkeypatch, editor, torch.full((3,), -1))
    assert seq[:, 0].tolist() == [editor.codebook_size + 7] * 3 and result.params[0]["class_strategy"] == "fixed"
    rand = _editor("maskgit-tiny", class_token="random")
    first = rand.edit(_images(rand), SEEDS, torch.full((3,), -1)).params
    again = rand.edit(_images(rand)[:1], SEEDS[:1], torch.full((1,), -1)).params
    assert first[0]["class_token"] == again[0]["class_token"]
    assert len({p["class_token"] for p in first}) > 1 and all(0 <= p["class_token"] < 1000 for p in first)


def test_mask_outpaint_masks_surround(monkeypatch):
    editor = _editor("maskgit-tiny", mask="outpaint", outpaint_scale=0.5, class_token="fixed:1")
    result, seq = _captured(monkeypatch, editor, _labels())
    grid = seq[:, 1:].view(3, 16, 16)
    assert (grid[:, 4:12, 4:12] >= 0).all()
    assert int((grid == -1).sum()) == 3 * (256 - 64)
    assert result.params[0]["outpaint_scale"] == 0.5 and result.params[0]["n_masked"] == 192


def test_mask_random_pattern_is_per_sample(monkeypatch):
    editor = _editor("maskgit-tiny", mask="random", mask_ratio=0.5, class_token="fixed:1")
    result, seq = _captured(monkeypatch, editor, _labels())
    masked = seq[:, 1:] == -1
    assert masked.sum(1).tolist() == [128] * 3
    assert not torch.equal(masked[0], masked[1])
    assert result.params[0]["mask_seed"] != result.params[1]["mask_seed"]


def test_mask_composite_blends_the_decoded_image_into_the_input(monkeypatch):
    """--composite: the official demo's blend of the decoded image into the input with the blurred
    token mask. A 4-token ring (16 px at 64 px) keeps the image corners exactly the input; the
    default decodes the whole grid, and both runs share the same tokens for the same seeds."""
    plain = _editor("maskgit-tiny", ring_width=4, num_iter=4)
    blended = _editor("maskgit-tiny", ring_width=4, num_iter=4, composite=True)
    decoded = []
    inner = blended.model.decode
    monkeypatch.setattr(blended.model, "decode", lambda tokens: decoded.append(inner(tokens)) or decoded[-1])
    images = _images(blended)
    a = plain.edit(images, SEEDS, _labels())
    b = blended.edit(images, SEEDS, _labels())
    assert [p["composite"] for p in a.params + b.params] == [False] * 3 + [True] * 3
    expected = mask_method.patterns.composite(decoded[0][:3], images.float() / 255.0,
                                              mask_method.patterns.ring_mask(16, 4).expand(3, 16, 16))
    assert torch.equal(b.images, mask_method.to_uint8(expected, 0.0, 1.0))
    assert torch.equal(b.images[..., :8, :8], images[..., :8, :8])  # far outside the mask: the input
    assert not torch.equal(a.images[..., :8, :8], images[..., :8, :8])  # plain: the decoded pixels
    inner_a, inner_b = a.images[..., 28:36, 28:36].int(), b.images[..., 28:36, 28:36].int()
    assert (inner_a - inner_b).abs().max() <= 2  # deep inside the mask: the decoded image


def test_mask_bf16_autocast_runs_on_cpu():
    editor = _editor("maskgit-tiny", precision="bf16", num_iter=4)
    out = editor.edit(_images(editor, 1), SEEDS[:1], _labels(1))
    assert out.images.dtype == torch.uint8 and editor.describe()["autocast"] == "bfloat16"
    assert editor.describe()["autocast_encoder"] == "bfloat16"  # explicit bf16: every stage
    auto = _editor("icgan-tiny", precision="auto").describe()  # on the CPU, auto is fp32
    assert auto["autocast"] == auto["autocast_encoder"] == "fp32"


# ---- noise -------------------------------------------------------------------------------------
@pytest.mark.parametrize("options,flag", [
    ({"truncation": 0.0}, "truncation"), ({"truncation": -0.5}, "truncation"),
    ({"truncation": float("nan")}, "truncation"), ({"candidates": 0}, "--candidates"),
    ({"candidates": 65}, "--candidates"),
])
def test_noise_option_errors(options, flag):
    with pytest.raises(ValueError, match=flag):
        _editor("icgan-tiny", **options)


def test_noise_params_and_truncation_recorded():
    editor = _editor("icgan-tiny", truncation=0.4)
    params = editor.edit(_images(editor), SEEDS, torch.full((3,), -1)).params
    assert params[0]["truncation"] == 0.4 and params[0]["truncation_bound"] == 0.8
    assert params[0]["candidate"] == 0 and "feature_distance" not in params[0]
    assert len({p["z_seed"] for p in params}) == 3
    assert not editor.requires_labels


def test_noise_candidates_keep_the_closest():
    k3 = _editor("icgan-tiny", candidates=3)
    images = _images(k3)
    result = k3.edit(images, SEEDS, torch.full((3,), -1))
    z = k3._noise(SEEDS)  # (B, 3, dim_z)
    with torch.no_grad():
        feats = k3.encoder(images)
        dists = torch.stack([k3._distance(k3.generator(z[:, k], feats), feats) for k in range(3)], 1)
    assert [p["candidate"] for p in result.params] == dists.argmin(1).tolist()
    for p, d in zip(result.params, dists.min(1).values.tolist()):
        assert math.isclose(p["feature_distance"], d, abs_tol=1e-5)
    k1 = _editor("icgan-tiny", candidates=1)
    assert torch.equal(k1._noise(SEEDS)[:, 0], z[:, 0])  # candidate 0 is the K=1 noise


# ---- truncated normal --------------------------------------------------------------------------
def test_truncation_bound_is_official_rule():
    assert truncation_bound(0.7) == pytest.approx(1.4)
    with pytest.raises(ValueError, match="0.7"):
        truncation_bound(0)


@pytest.mark.parametrize("bound", [0.4, 1.4, 4.0])
def test_truncated_normal_matches_scipy(bound):
    x = truncated_normal((20000,), bound, torch.Generator().manual_seed(int(bound * 10)))
    assert x.dtype == torch.float32 and float(x.abs().max()) <= bound
    ref = stats.truncnorm(-bound, bound)
    assert stats.kstest(x.double().numpy(), ref.cdf).pvalue > 1e-3
    assert float(x.var()) == pytest.approx(ref.var(), rel=0.05)
    assert abs(float(x.mean())) < 4 * math.sqrt(ref.var() / x.numel())


def test_truncated_normal_per_sample_rows_are_independent_of_batch():
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    batch = truncated_normal_per_sample(gens([1, 2, 3]), (4, 5), 1.4)
    alone = truncated_normal_per_sample(gens([2]), (4, 5), 1.4)
    assert batch.shape == (3, 4, 5) and torch.equal(batch[1], alone[0])
    assert not torch.equal(batch[0], batch[1])
    with pytest.raises(ValueError):
        truncated_normal_per_sample([], (3,), 1.0)


@pytest.mark.gpu
@pytest.mark.parametrize("preset", TINY)
def test_cuda_random_choices_match_and_bf16_runs(preset):
    """On CUDA (fp32) a sample's random choices equal its choices in a batch and, for the noise z drawn
    on the CPU, those of a CPU run; bf16 autocast runs and returns uint8."""
    cpu, gpu = _editor(preset), _editor(preset, device="cuda", precision="fp32")
    images, labels = _images(cpu), _labels()
    out = gpu.edit(images.cuda(), SEEDS, labels.cuda())
    alone = gpu.edit(images[:1].cuda(), SEEDS[:1], labels[:1].cuda())
    assert out.images.is_cuda and out.images.dtype == torch.uint8
    seeded = ("decode_seed", "class_token", "n_masked", "z_seed", "candidate")
    pick = lambda p: {k: v for k, v in p.items() if k in seeded}  # noqa: E731
    assert pick(alone.params[0]) == pick(out.params[0])
    if preset == "icgan-tiny":
        assert [pick(p) for p in out.params] == [pick(p) for p in cpu.edit(images, SEEDS, labels).params]
    bf16 = _editor(preset, device="cuda", precision="auto")
    assert bf16.edit(images.cuda(), SEEDS, labels.cuda()).images.dtype == torch.uint8


def test_precision_policy():
    from genaug.methods.editing import resolve_precision

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_precision("auto", cuda) == torch.bfloat16
    assert resolve_precision("auto", cuda, sensitive=True) is None  # VQ encoder, SwAV features stay fp32
    assert resolve_precision("auto", cpu) is None and resolve_precision("fp32", cuda) is None
    assert resolve_precision("bf16", cpu, sensitive=True) == torch.bfloat16
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", cpu)


@pytest.mark.parametrize("options,flag,value", [
    ({"mask": "blocks", "block_size": 0}, "--block-size", "0"), ({"mask": "blocks", "block_size": -2}, "--block-size", "-2"),
    ({"mask": "blocks", "blocks": 0}, "--blocks", "0"), ({"mask": "blocks", "blocks": 0, "block_size": 0}, "--blocks", "0"),
])
def test_each_mask_option_is_named_by_its_own_flag(options, flag, value):
    """--block-size 0 is named --block-size (it was named --blocks), before any model is built."""
    with pytest.raises(ValueError, match=rf"^{flag} {value}: must be >= 1$"):
        REGISTRY.method("mask").validate_options(options)


def test_mask_model_checks_run_once_in_the_spec_with_the_presets_facts():
    """The token-grid and class-count rules are checked by the spec given the preset (before any model is
    built); the preset's facts match the model its builder makes."""
    from genaug.models.maskgit import MaskGITConfig

    for name, cfg in (("maskgit-imagenet256", MaskGITConfig()), ("maskgit-tiny", MaskGITConfig.tiny())):
        preset = REGISTRY.preset(name)
        assert (preset.token_grid, preset.num_classes) == (cfg.latent_size, cfg.num_classes)
    spec, preset = REGISTRY.method("mask"), REGISTRY.preset("maskgit-imagenet256")
    assert spec.validate_options({"ring_width": 8})["ring_width"] == 8  # model-free checks only
    for options, flag in (({"ring_width": 8}, "--ring-width 8: must be in \\[1, 7\\] for a 16x16"),
                          ({"mask": "blocks", "block_size": 17}, "--block-size 17"),
                          ({"class_token": "fixed:1000"}, "--class-token 'fixed:1000'")):
        with pytest.raises(ValueError, match=flag):
            spec.validate_options(options, preset)


def test_mask_vqgan_is_channels_last_on_cuda_only():
    cpu = _editor("maskgit-tiny", class_token="random")
    assert cpu.describe()["vqgan_memory_format"] == "contiguous_format"
    assert all(p.is_contiguous() for p in cpu.model.tokenizer.parameters())


@pytest.mark.gpu
def test_mask_vqgan_channels_last_on_cuda_gives_the_contiguous_features():
    editor = _editor("maskgit-tiny", device="cuda", class_token="random")
    assert editor.describe()["vqgan_memory_format"] == "channels_last"
    conv = editor.model.tokenizer.encoder.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = _images(editor).cuda().float() / 255.0
    with torch.no_grad(), mask_method.autocast(editor.device, None):
        nhwc = editor.model.encode_features(x.contiguous(memory_format=torch.channels_last))
        editor.model.tokenizer.to(memory_format=torch.contiguous_format)
        nchw = editor.model.encode_features(x)
    torch.testing.assert_close(nhwc, nchw, atol=1e-4, rtol=0)
    result = _editor("maskgit-tiny", device="cuda", class_token="random").edit(
        _images(editor).cuda(), SEEDS, _labels().cuda())
    assert result.images.shape == (3, 3, 64, 64) and result.images.dtype == torch.uint8
