"""Counter-based per-sample noise of the decode loop: exact values, batch independence, statistics, and
the editor's decode (eager and torch.compile'd) on the tiny config."""

import pytest
import torch
from tokenfactory import ring_seq

from genaug.models.maskgit import MaskGIT, MaskGITConfig
from genaug.sampling import counter_rng
from genaug.sampling.maskgit_decode import SeedNoise, parallel_decode

SEEDS = [0, 1, 12345, (1 << 63) - 1, -5]  # -5: any 64-bit pattern is a valid seed


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(2)
    return MaskGIT(MaskGITConfig.tiny()).eval()


def test_uniforms_equal_the_pure_python_splitmix64():
    keys = counter_rng.sample_keys(torch.tensor(SEEDS, dtype=torch.int64))
    first = (2 * 11 + 1) << 32
    u = counter_rng.uniform(keys, first, counter_rng.counter_offsets(37, "cpu"))
    expected = torch.tensor([[counter_rng.splitmix64_reference(s, first + c) for c in range(37)] for s in SEEDS])
    assert u.dtype == torch.float32 and torch.equal(u, expected)
    assert u.min() >= 0 and u.max() < 1


def test_a_samples_numbers_depend_on_its_seed_alone():
    offsets = counter_rng.counter_offsets(1000, "cpu")
    batch = counter_rng.uniform(counter_rng.sample_keys(torch.tensor(SEEDS)), 5, offsets)
    for i, seed in enumerate(SEEDS):
        alone = counter_rng.uniform(counter_rng.sample_keys(torch.tensor([seed])), 5, offsets)
        assert torch.equal(alone[0], batch[i])
    assert len({tuple(row[:8].tolist()) for row in batch}) == len(SEEDS)  # seeds give different streams
    shifted = counter_rng.uniform(counter_rng.sample_keys(torch.tensor(SEEDS)), 6, offsets[:999])
    assert torch.equal(shifted, batch[:, 1:])  # counter ranges line up: the value is f(seed, counter)


def test_uniforms_look_uniform_and_steps_are_uncorrelated():
    noise = SeedNoise(torch.arange(16, dtype=torch.int64), 257, 64, torch.device("cpu"))
    g0, c0 = noise(0)
    g1, _ = noise(1)
    u = torch.exp(-torch.exp(-g0)).flatten()  # back to uniforms
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    hist = torch.histc(u, bins=16, min=0, max=1) / u.numel()
    assert float((hist - 1 / 16).abs().max()) < 0.005
    corr = torch.corrcoef(torch.stack([g0.flatten(), g1.flatten()]))[0, 1]
    assert abs(float(corr)) < 0.01
    assert g0.shape == (16, 257, 64) and c0.shape == (16, 257) and not torch.equal(c0, g0[:, :, 0])


def test_seeded_decode_is_batch_independent_and_seed_dependent(model):
    seqs = ring_seq(model, 4, seed=3)
    seeds = torch.tensor([42, 7, 8, 9])
    alone = model.inpaint(seqs[:1], seeds=seeds[:1])
    batched = model.inpaint(seqs, seeds=seeds)
    others = model.inpaint(torch.cat([seqs[:1], seqs[2:]]), seeds=torch.tensor([42, 5, 6]))
    assert torch.equal(alone[0], batched[0]) and torch.equal(alone[0], others[0])
    assert not torch.equal(batched[1], model.inpaint(seqs[1:2], seeds=torch.tensor([43]))[0])
    known = seqs != -1
    assert torch.equal(batched[:, -1][known], seqs[known]) and (batched[:, -1] >= 0).all()


def test_seeded_decode_equals_the_same_noise_injected(model):
    seq = ring_seq(model, 2, seed=5)
    seeds = torch.tensor([10, 11])
    noise = SeedNoise(seeds, model.config.seq_len, model.config.codebook_size, torch.device("cpu"))
    injected = model.inpaint(seq, noise=[noise(s) for s in range(12)])
    assert torch.equal(model.inpaint(seq, seeds=seeds), injected)


@pytest.mark.parametrize("kwargs, match", [
    (dict(seeds=torch.tensor([1, 2]), generator=[torch.Generator(), torch.Generator()]), "either seeds or generator"),
    (dict(seeds=torch.tensor([1])), r"seeds must be an int64 tensor \(2,\)"),
    (dict(seeds=torch.tensor([1.0, 2.0])), "int64"),
    (dict(seeds=[1, 2]), "got list"),
])
def test_seeds_are_validated(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.inpaint(ring_seq(model, 2, seed=0), **kwargs)


@pytest.mark.slow
def test_compile_option_gives_the_eager_edit():
    """--compile (torch.compile of the transformer pass and the decode step) changes no byte of a mask
    edit on the CPU; ~30 s, most of it compiling."""
    from genaug.registry import REGISTRY, EditorContext

    def editor(**options):
        preset = REGISTRY.preset("maskgit-tiny")
        opts = REGISTRY.method("mask").validate_options(options)
        return preset.build(EditorContext(preset, {}, torch.device("cpu"), "fp32", opts))

    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    labels, seeds = torch.tensor([1, 2, 3]), [5, 6, 7]
    eager = editor().edit(images, seeds, labels)
    compiled = editor(compile=True)
    assert compiled.describe()["options"]["compile"] is True
    out = compiled.edit(images, seeds, labels)
    assert torch.equal(out.images, eager.images) and out.params == eager.params


@pytest.mark.gpu
def test_counter_noise_is_the_same_on_cuda_and_cpu():
    keys = counter_rng.sample_keys(torch.tensor(SEEDS))
    cpu = counter_rng.uniform(keys, 3 << 32, counter_rng.counter_offsets(4096, "cpu"))
    cuda = counter_rng.uniform(keys.cuda(), 3 << 32, counter_rng.counter_offsets(4096, "cuda"))
    assert torch.equal(cuda.cpu(), cpu)


@pytest.mark.gpu
def test_seeded_decode_loop_does_not_synchronise_with_the_host_on_cuda():
    model = MaskGIT(MaskGITConfig.tiny()).cuda().eval()
    seq = ring_seq(model, 4, seed=0).cuda()
    seeds = torch.arange(4, dtype=torch.int64, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        expected = model.inpaint(seq, seeds=seeds)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = parallel_decode(seq, model.codebook_logits, codebook_size=model.config.codebook_size, seeds=seeds)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(out, expected)


@pytest.mark.gpu
def test_compiled_decode_with_cuda_graphs_gives_the_eager_tokens():
    from genaug.methods.mask import compiled_decode_fns

    torch.manual_seed(2)
    model = MaskGIT(MaskGITConfig.tiny()).cuda().eval()
    seq = ring_seq(model, 8, seed=1).cuda()
    seeds = torch.arange(8, dtype=torch.int64, device="cuda")
    logits_fn, step_fn = compiled_decode_fns(model, torch.device("cuda"))
    with torch.no_grad():
        eager = model.inpaint(seq, seeds=seeds)
        for _ in range(2):  # the second call replays the graphs
            compiled = parallel_decode(seq, logits_fn, codebook_size=model.config.codebook_size, seeds=seeds,
                                       step_fn=step_fn, mask_token_id=model.config.mask_token_id)
            assert torch.equal(compiled, eager)
