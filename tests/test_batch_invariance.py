"""Batch-size invariance of the real (tiny) editors, bit for bit: the editors run every model stage on
fixed-shape compute chunks (genaug.methods.editing.FixedChunks), so the pipeline's batch size cannot
change a pixel; CPU threads are pinned while they compute."""

from __future__ import annotations

import pytest
import torch
from imagefactory import make_image_folder

from genaug.build.pipeline import BuildConfig, run_build
from genaug.methods import editing
from genaug.methods.editing import map_chunks, pinned_threads, time_editor, unchunked
from genaug.registry import REGISTRY, EditorContext
from genaug.testing import editors

OPTIONS = {  # per method: option sets whose outputs must not depend on the batch size
    "mask": [{}, {"composite": True}, {"mask": "outpaint", "class_token": "random"}],
    "noise": [{"candidates": 1}, {"candidates": 2}],
}
CASES = [(p.name, o) for p in REGISTRY.presets() if p.random_init for o in OPTIONS[p.method]]
N = 7  # samples; one compute chunk of 8 on the CPU holds them all
BATCH_SIZES = (1, 2, 3, 7)


def _editor(preset: str, **options):
    p = REGISTRY.preset(preset)
    opts = REGISTRY.method(p.method).validate_options(options)
    return p.build(EditorContext(p, {}, torch.device("cpu"), "fp32", opts))


def _inputs(editor, n: int = N):
    r = editor.resolution
    images = torch.randint(0, 256, (n, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    return images, [1000003 * i + 17 for i in range(n)], torch.tensor([5, 17, 999, 0, 1, 2, 3][:n])


def _edit_in_batches(editor, images, seeds, labels, batch_size: int):
    outs, params = [], []
    for s in range(0, len(seeds), batch_size):
        r = editor.edit(images[s:s + batch_size], seeds[s:s + batch_size], labels[s:s + batch_size])
        outs.append(r.images)
        params += r.params
    return torch.cat(outs), params


def test_every_tiny_preset_is_covered():
    assert {name for name, _ in CASES} == {p.name for p in REGISTRY.presets() if p.random_init}


@pytest.mark.parametrize(("preset", "options"), CASES, ids=[f"{p}-{o}" for p, o in CASES])
def test_edit_is_bit_identical_for_every_batch_size(preset, options):
    editor = _editor(preset, **options)
    assert editor.compute_chunk == 8 and editor.cpu_threads == 1
    images, seeds, labels = _inputs(editor)
    ref_images, ref_params = None, None
    for bs in sorted(BATCH_SIZES, reverse=True):
        out, params = _edit_in_batches(editor, images, seeds, labels, bs)
        if ref_images is None:
            ref_images, ref_params = out, params
            continue
        diff = (out.int() - ref_images.int()).abs()
        assert torch.equal(out, ref_images), f"batch {bs}: {int((diff > 0).sum())} values differ, max {int(diff.max())}"
        assert params == ref_params, f"batch {bs}"


def test_caller_thread_count_does_not_change_the_output():
    editor = _editor("icgan-tiny")
    images, seeds, labels = _inputs(editor, 3)
    seen = []
    encoder = editor.encoder
    editor.encoder = lambda x: (seen.append(torch.get_num_threads()), encoder(x))[1]
    one = editor.edit(images, seeds, labels).images
    with pinned_threads(2):
        two = editor.edit(images, seeds, labels).images
        assert torch.get_num_threads() == 2  # restored after the edit
    assert torch.equal(one, two) and seen == [1, 1]


def _spy_batches(editor) -> list[int]:
    """Batch sizes the MaskGIT encoder sees."""
    seen, encode = [], editor.model.encode
    editor.model.encode = lambda x: (seen.append(x.shape[0]), encode(x))[1]
    return seen


def test_model_sees_fixed_chunks_and_unchunked_is_a_true_batch_1():
    editor = _editor("maskgit-tiny", class_token="random", num_iter=2)
    seen = _spy_batches(editor)
    images, seeds, labels = _inputs(editor, N)
    editor.edit(images[:1], seeds[:1], labels[:1])
    assert seen == [8]  # one padded chunk
    seen.clear()
    with unchunked(editor):
        editor.edit(images[:1], seeds[:1], labels[:1])
        editor.edit(images[:3], seeds[:3], labels[:3])
    assert seen == [1, 3] and editor.compute_chunk == 8
    seen.clear()
    time_editor(editor, 1, 2)  # benchmarks: one model call per batch of 1 (warm-up + 2 timed)
    assert seen == [1, 1, 1]
    seen.clear()
    time_editor(editor, 1, 1, chunked=True)
    assert seen == [8, 8]


def test_map_chunks_pads_and_trims():
    calls = []

    def fn(x, items):
        calls.append((x.shape[0], list(items)))
        return x * 10, [f"{v}!" for v in items]

    out, labels = map_chunks(fn, 4, torch.arange(6), ["a", "b", "c", "d", "e", "f"])
    assert torch.equal(out, torch.arange(6) * 10) and labels == ["a!", "b!", "c!", "d!", "e!", "f!"]
    assert calls[1] == (4, ["e", "f", "f", "f"])  # padded by repeating the last sample
    assert torch.equal(map_chunks(lambda x: x + 1, None, torch.arange(3)), torch.arange(1, 4))
    with pytest.raises(TypeError, match="seeds"):
        map_chunks(fn, 4, torch.arange(1), [torch.Generator()])
    with pytest.raises(ValueError, match="lengths"):
        map_chunks(fn, 4, torch.arange(2), ["a"])


def test_describe_records_the_compute_chunk():
    d = _editor("icgan-tiny").describe()
    assert d["compute_chunk"] == 8 and d["cpu_threads"] == 1
    assert editing.compute_chunk_for(torch.device("cuda")) == 40  # issue 10 item 2 (was 32)
    shard_size = BuildConfig.__dataclass_fields__["shard_size"].default
    assert all(shard_size % chunk == 0 for chunk in editing.COMPUTE_CHUNKS.values())  # default builds: no padding


@pytest.mark.parametrize(("preset", "options", "n"), [("maskgit-tiny", {"class_token": "random"}, 5),
                                                      ("icgan-tiny", {}, 8)])
def test_build_shards_are_byte_identical_for_batch_sizes_1_and_4(tmp_path, preset, options, n):
    """PNG (lossless): a one-level pixel difference would show; without the fixed chunks both builds
    differ here (checked), JPEG q95 would hide most one-level differences."""
    folder = make_image_folder(tmp_path / "data", n=n, odd=False)
    outputs = []
    for bs in (1, 4):
        out = tmp_path / f"out-{bs}"
        run_build(BuildConfig(method=REGISTRY.preset(preset).method, preset=preset, out=out, options=options,
                              data=(str(folder["root"]),), batch_size=bs, num_workers=0, shard_size=3,
                              device="cpu", precision="fp32", seed=5, aug_format="png"))
        outputs.append(editors.output_bytes(out))
    assert len([k for k in outputs[0] if k.startswith("shard-")]) == -(-n // 3)
    assert outputs[0] == outputs[1]


def test_pipeline_batch1_probe_times_a_true_batch_1():
    from genaug.build.pipeline import probe_batch1_ms

    editor = _editor("icgan-tiny")
    seen, encoder = [], editor.encoder
    editor.encoder = lambda x: (seen.append(x.shape[0]), encoder(x))[1]
    assert probe_batch1_ms(editor, torch.device("cpu"), seed=0, repeats=1) > 0
    assert seen == [1, 1] and editor.compute_chunk == 8


def test_cudnn_autotuning_is_off_while_editing_and_restored():
    editor = _editor("icgan-tiny")
    images, seeds, labels = _inputs(editor, 1)
    seen, encoder = [], editor.encoder
    editor.encoder = lambda x: (seen.append(torch.backends.cudnn.benchmark), encoder(x))[1]
    saved = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = True  # a caller's training script may have set it
        editor.edit(images, seeds, labels)
        assert seen == [False] and torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = saved


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "auto"])
@pytest.mark.parametrize("preset", sorted({name for name, _ in CASES}))
def test_cuda_edit_is_bit_identical_for_every_batch_size(preset, precision):
    p = REGISTRY.preset(preset)
    options = REGISTRY.method(p.method).validate_options({"class_token": "random"} if p.method == "mask" else {})
    editor = p.build(EditorContext(p, {}, torch.device("cuda"), precision, options))
    assert editor.compute_chunk == 32 and editor.cpu_threads is None
    images, seeds, labels = _inputs(editor)
    ref, ref_params = _edit_in_batches(editor, images.cuda(), seeds, labels.cuda(), N)
    for bs in (1, 3):
        out, params = _edit_in_batches(editor, images.cuda(), seeds, labels.cuda(), bs)
        assert torch.equal(out, ref) and params == ref_params, f"batch {bs}"


@pytest.mark.parametrize(("preset", "options"), [("maskgit-tiny", {"class_token": "random", "num_iter": 3}),
                                                 ("icgan-tiny", {"candidates": 2})])
def test_chunk_workers_do_not_change_the_output(preset, options):
    """CPU chunks computed side by side in threads (one intra-op thread each) give the serial bytes, for
    any number of threads; the caller's grad mode and thread count are kept."""
    editor = _editor(preset, **options)
    assert editor.chunk_workers == editing.cpu_chunk_workers() and editor.describe()["chunk_workers"] >= 1
    r = editor.resolution
    n = 19  # 3 chunks of 8, the last padded
    images = torch.randint(0, 256, (n, 3, r, r), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    seeds, labels = [7 * i + 3 for i in range(n)], torch.arange(n) % 1000
    outs = {}
    for workers in (1, 2, 3):
        editor.chunk_workers = workers
        result = editor.edit(images, seeds, labels)
        outs[workers] = (result.images, result.params)
    assert all(torch.equal(outs[w][0], outs[1][0]) and outs[w][1] == outs[1][1] for w in (2, 3))
    assert torch.get_num_threads() == 1 and torch.is_grad_enabled()


def test_map_chunks_in_threads_keeps_order_and_grad_mode():
    seen = []

    def fn(x):
        seen.append(torch.is_grad_enabled())
        return x * 2

    with torch.no_grad():
        out = map_chunks(fn, 2, torch.arange(7), workers=3)
    assert torch.equal(out, torch.arange(7) * 2) and seen == [False] * 4
