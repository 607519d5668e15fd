"""Float32 that is IEEE float32: the editors' exact_fp32 context (TF32 off) and where they apply it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from genaug.methods.editing import exact_fp32
from genaug.registry import REGISTRY, EditorContext


def _flags() -> dict:
    """Every global float32-precision setting that can be read in the current state (RuntimeError:
    PyTorch refuses to answer a legacy getter after a mix of the legacy and fp32_precision APIs)."""
    b = torch.backends
    getters = {
        "matmul_precision": torch.get_float32_matmul_precision,
        "cuda.matmul.allow_tf32": lambda: b.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": lambda: b.cudnn.allow_tf32,
    }
    for name in ("fp32_precision", "cuda.matmul.fp32_precision", "cudnn.fp32_precision",
                 "cudnn.conv.fp32_precision", "cudnn.rnn.fp32_precision", "mkldnn.matmul.fp32_precision",
                 "mkldnn.conv.fp32_precision"):
        obj = b
        for part in name.split(".")[:-1]:
            obj = getattr(obj, part)
        if hasattr(obj, "fp32_precision"):  # torch >= 2.9
            getters[name] = lambda obj=obj: obj.fp32_precision
    out = {}
    for name, get in getters.items():
        try:
            out[name] = get()
        except RuntimeError:
            out[name] = "refused"
    return out


@pytest.fixture()
def restore_flags():
    """Put the legacy settings back after a test that changes them (exact_fp32 itself must not)."""
    matmul, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    yield
    torch.set_float32_matmul_precision(matmul)
    torch.backends.cudnn.allow_tf32 = cudnn


@pytest.mark.parametrize("matmul_precision", ["highest", "high", "medium"])
def test_exact_fp32_turns_tf32_off_and_restores_the_global_flags(restore_flags, matmul_precision):
    torch.set_float32_matmul_precision(matmul_precision)
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
    before = _flags()
    with exact_fp32():
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "highest"
    assert _flags() == before


def test_exact_fp32_restores_after_an_error(restore_flags):
    torch.set_float32_matmul_precision("high")
    before = _flags()
    with pytest.raises(KeyError):
        with exact_fp32():
            raise KeyError("boom")
    assert _flags() == before


def test_exact_fp32_is_silent(recwarn):
    with exact_fp32():
        pass
    assert not [w for w in recwarn if "tf32" in str(w.message).lower() or "deprecat" in str(w.message).lower()]


def test_exact_fp32_with_the_fp32_precision_api():
    """A caller who set a backend-wide fp32_precision (torch >= 2.9, where the legacy getters can
    refuse to answer): each op is 'ieee' inside, every string restored after. In a subprocess, because
    that state cannot be fully undone through the public API."""
    if not hasattr(torch.backends, "fp32_precision"):
        pytest.skip("torch < 2.9 has no fp32_precision API")
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("error")
        import torch
        from genaug.methods.editing import exact_fp32
        from tests.test_precision import _flags
        b = torch.backends
        b.fp32_precision = "tf32"
        before = _flags()
        with exact_fp32():
            ops = [b.cuda.matmul, b.cudnn.conv, b.mkldnn.matmul, b.mkldnn.conv]
            assert [op.fp32_precision for op in ops] == ["ieee"] * 4, [op.fp32_precision for op in ops]
        assert _flags() == before, (before, _flags())
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _editor(preset: str, precision: str):
    p = REGISTRY.preset(preset)
    opts = REGISTRY.method(p.method).validate_options({})
    return p.build(EditorContext(p, {}, torch.device("cpu"), precision, opts))


def _stages(editor) -> dict:
    if editor.method == "mask":
        t = editor.model.tokenizer
        return {"encoder": t.encoder, "transformer": editor.model.transformer, "decoder": t.decoder}
    return {"swav": editor.encoder, "generator": editor.generator}


@pytest.mark.parametrize("preset", ["maskgit-tiny", "icgan-tiny"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_editor_stage_runs_without_tf32(restore_flags, preset, precision):
    """The sensitive stages (VQGAN encoder + VQ search, SwAV encoder) and, whatever the precision,
    every other stage see TF32 off; the caller's settings are back after edit()."""
    torch.set_float32_matmul_precision("high")  # a caller who allows TF32 matmuls
    editor = _editor(preset, precision)
    seen = {}
    handles = []
    for name, module in _stages(editor).items():
        def hook(_module, _args, name=name):
            seen[name] = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
        handles.append(module.register_forward_pre_hook(hook))
    before = _flags()
    r = editor.resolution
    images = torch.randint(0, 256, (2, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    try:
        editor.edit(images, [1, 2], torch.tensor([3, 4]))
    finally:
        for handle in handles:
            handle.remove()
    assert seen == {name: (False, "highest") for name in _stages(editor)}
    assert _flags() == before


@pytest.mark.gpu
def test_exact_fp32_gives_float32_convolutions_on_cuda(restore_flags):
    """With PyTorch's default cuDNN TF32 on, a float32 conv inside exact_fp32 equals the float64 result
    to float32 accuracy, and so does the tiny MaskGIT encoder against the CPU."""
    from genaug.models.maskgit import MaskGIT, MaskGITConfig

    torch.backends.cudnn.allow_tf32 = True
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(4, 256, 32, 32, generator=g), torch.randn(256, 256, 3, 3, generator=g)
    exact = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)

    def error(y: torch.Tensor) -> float:
        return float((y.cpu().double() - exact).abs().max() / exact.abs().max())

    with exact_fp32():
        strict = error(torch.nn.functional.conv2d(x.cuda(), w.cuda(), padding=1))
    assert torch.backends.cudnn.allow_tf32 is True
    assert strict < 2e-5
    if torch.cuda.get_device_capability()[0] >= 8:  # Ampere+: the default really is TF32 (10-bit mantissa)
        assert strict < error(torch.nn.functional.conv2d(x.cuda(), w.cuda(), padding=1)) / 4
    torch.manual_seed(0)
    model = MaskGIT(MaskGITConfig.tiny()).eval()
    images = torch.rand(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        cpu = model.encode_features(images)
        with exact_fp32():
            gpu = model.cuda().encode_features(images.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=0)


def test_tf32_convolutions_allows_tf32_convolutions_only_and_restores(restore_flags):
    from genaug.methods.editing import autocast, encoder_uses_tf32, tf32_convolutions

    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = False
    before = _flags()
    with tf32_convolutions():
        assert torch.backends.cudnn.allow_tf32 is True
        assert torch.get_float32_matmul_precision() == "highest"  # the VQ search matmul stays exact
    assert _flags() == before
    with autocast(torch.device("cpu"), torch.bfloat16, tf32=True):  # bf16 wins: tf32 only for fp32 stages
        assert torch.backends.cudnn.allow_tf32 is False
    assert encoder_uses_tf32("auto", torch.device("cuda")) and encoder_uses_tf32("auto", "cuda:1")
    assert not any(encoder_uses_tf32(p, torch.device("cuda")) for p in ("fp32", "bf16"))
    assert not encoder_uses_tf32("auto", torch.device("cpu"))


@pytest.mark.parametrize("preset", ["maskgit-tiny", "icgan-tiny"])
def test_cpu_auto_precision_is_exact_fp32_everywhere(preset):
    facts = _editor(preset, "auto").describe()
    assert facts["autocast"] == "fp32" and facts["autocast_encoder"] == "fp32"


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["maskgit-tiny", "icgan-tiny"])
def test_cuda_auto_runs_the_encoder_convolutions_in_tf32_and_the_rest_exact_or_bf16(restore_flags, preset):
    p = REGISTRY.preset(preset)
    editor = p.build(EditorContext(p, {}, torch.device("cuda"), "auto", REGISTRY.method(p.method).validate_options({})))
    assert editor.describe()["autocast_encoder"] == "tf32" and editor.describe()["autocast"] == "bfloat16"
    seen, handles = {}, []
    for name, module in _stages(editor).items():
        def hook(_module, _args, name=name):
            seen[name] = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
        handles.append(module.register_forward_pre_hook(hook))
    r = editor.resolution
    images = torch.randint(0, 256, (2, 3, r, r), dtype=torch.uint8, device="cuda")
    try:
        editor.edit(images, [1, 2], torch.tensor([3, 4], device="cuda"))
    finally:
        for handle in handles:
            handle.remove()
    encoder = "encoder" if preset == "maskgit-tiny" else "swav"
    assert seen.pop(encoder) == (True, "highest")
    assert all(v == (False, "highest") for v in seen.values())
