"""Decode behaviour on the tiny config: per-sample seeding, noise injection, schedule, validation."""

import numpy as np
import pytest
import torch
from tokenfactory import ring_seq

from genaug.models.maskgit import MaskGIT, MaskGITConfig
from genaug.sampling.maskgit_decode import cosine_mask_ratio, decode_step, draw_gumbel, schedule_tensors


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    return MaskGIT(MaskGITConfig.tiny()).eval()


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_known_tokens_kept_and_all_masked_tokens_filled(model):
    seq = ring_seq(model, 3, seed=0)
    out = model.inpaint(seq, generator=_gens([1, 2, 3]))
    assert out.shape == (3, 12, model.config.seq_len) and out.dtype == torch.int64
    known = seq != -1
    for step in range(12):
        assert torch.equal(out[:, step][known], seq[known])
        assert (out[:, step] >= 0).all() and (out[:, step][:, 1:] < model.config.codebook_size).all()
    changed = out[:, -1][~known]
    assert changed.unique().numel() > 5  # really sampled, not a constant


def test_codebook_logits_are_the_codebook_slice_of_the_full_logits(model):
    seq = ring_seq(model, 2, seed=4)
    with torch.no_grad():
        full = model.logits(seq)
        part = model.codebook_logits(seq)
    assert full.shape == (2, model.config.seq_len, model.config.vocab_size)
    assert part.shape == (2, model.config.seq_len, model.config.codebook_size)
    torch.testing.assert_close(part, full[..., : model.config.codebook_size], atol=1e-6, rtol=0)


def test_per_sample_generators_make_output_independent_of_batch(model):
    seqs = ring_seq(model, 4, seed=3)
    alone = model.inpaint(seqs[:1], generator=_gens([42]))
    batched = model.inpaint(seqs, generator=_gens([42, 7, 8, 9]))
    others = model.inpaint(torch.cat([seqs[:1], seqs[2:]]), generator=_gens([42, 5, 6]))
    assert torch.equal(alone[0], batched[0]) and torch.equal(alone[0], others[0])
    assert not torch.equal(batched[1], model.inpaint(seqs[1:2], generator=_gens([43]))[0])


def test_injected_noise_reproduces_generator_draws_in_official_order(model):
    seq = ring_seq(model, 2, seed=5)
    cfg, length = model.config, model.config.seq_len
    gens = _gens([10, 11])
    noise = []
    for _ in range(12):  # sample noise first, then choice noise, per step
        noise.append((draw_gumbel((length, cfg.codebook_size), gens, 2, torch.device("cpu")),
                      draw_gumbel((length,), gens, 2, torch.device("cpu"))))
    assert torch.equal(model.inpaint(seq, noise=noise), model.inpaint(seq, generator=_gens([10, 11])))
    start = 3
    partial = [None] * start + noise[start:]
    out = model.inpaint(seq, start_iter=start, noise=partial)
    assert torch.equal(out[:, :start], seq[:, None].expand(-1, start, -1))


def test_remask_count_follows_float32_cosine_schedule():
    torch.manual_seed(0)
    batch, length, k, n_iter = 2, 1 + 196 + 60, 16, 12
    cur = torch.randint(0, k, (batch, length))
    cur[:, 1:197] = -1
    unknown0 = (cur == -1).sum(-1, keepdim=True).float()
    ratios, temps = schedule_tensors(n_iter, 4.5, torch.device("cpu"))
    unknown = 196
    for step in range(n_iter):
        logits = torch.randn(batch, length, k)
        _, cur = decode_step(cur, logits, unknown0, torch.randn(batch, length, k), torch.randn(batch, length),
                             ratios[step], temps[step])
        expected = max(1, min(unknown - 1, int(np.floor(np.float32(196) * cosine_mask_ratio(step, n_iter)))))
        assert ((cur == -1).sum(-1) == expected).all(), step
        unknown = expected
    assert temps[-1] == 0 and abs(float(temps[0]) - 4.5 * 11 / 12) < 1e-6


def test_bf16_autocast_runs_with_fp32_sampling(model):
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = model.encode(images)
        seq = torch.cat([torch.full((2, 1), model.config.codebook_size), tokens.flatten(1)], dim=1)
        seq[:, 20:120] = -1
        out = model.inpaint(seq, num_iter=4, generator=_gens([1, 2]))
        recon = model.decode(out[:, -1, 1:].reshape(2, 16, 16))
    assert tokens.dtype == torch.int64 and recon.dtype == torch.float32
    assert torch.equal(out[:, -1][seq != -1], seq[seq != -1]) and (out[:, -1] >= 0).all()


def test_output_head_runs_in_fp32_under_bf16_autocast(model):
    """The tied-embedding projection + bias gives float32 logits computed from float32 operands, so
    log p and the sampled tokens are not rounded to bf16; the layers before it still run in bf16."""
    seq = ring_seq(model, 2, seed=3)
    seen = {}

    def keep(name):
        def hook(_module, _args, output):
            seen[name] = output
        return hook

    handles = [model.transformer.mlm_ln.register_forward_hook(keep("h")),
               model.transformer.mlm_dense.register_forward_hook(keep("dense"))]
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model.logits(seq)
            codebook = model.codebook_logits(seq)
    finally:
        for handle in handles:
            handle.remove()
    assert logits.dtype == torch.float32 and codebook.dtype == torch.float32
    assert seen["dense"].dtype == torch.bfloat16  # autocast is active in the body
    t = model.transformer
    with torch.no_grad():  # the head by hand, all in fp32, from the hidden state the model produced
        expected = seen["h"].float() @ t.tok_emb.weight.float().T + t.mlm_bias.float()
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(codebook, expected[..., : model.config.codebook_size], atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # bf16 rounding of the same projection is visibly coarser
        rounded = (seen["h"].bfloat16() @ t.tok_emb.weight.bfloat16().T).float() + t.mlm_bias
    assert (rounded - expected).abs().max() > (logits - expected).abs().max()


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_iter=0), "num_iter=0"),
    (dict(num_iter=4, start_iter=4), "start_iter=4"),
    (dict(choice_temperature=float("nan")), "choice_temperature"),
    (dict(generator=_gens([1])), "1 generators for a batch of 2"),
    (dict(noise=[None] * 3), "noise has 3 entries"),
])
def test_inpaint_validates_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.inpaint(ring_seq(model, 2, seed=0), **kwargs)


def test_inputs_are_validated(model):
    seq = ring_seq(model, 1, seed=0)
    with pytest.raises(ValueError, match="outside"):
        model.inpaint(seq.clone().fill_(model.config.vocab_size))
    with pytest.raises(ValueError, match=r"\(B, 257\)"):
        model.inpaint(seq[:, :100])
    with pytest.raises(ValueError, match="float"):
        model.encode(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="integer"):
        model.decode(torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match="filters=16.*multiple of 32"):
        MaskGITConfig(filters=16)


@pytest.mark.gpu
def test_decode_loop_does_not_synchronise_with_the_host_on_cuda():
    from genaug.sampling.maskgit_decode import parallel_decode

    model = MaskGIT(MaskGITConfig.tiny()).cuda().eval()
    seq = ring_seq(model, 4, seed=0).cuda()

    def gens():
        return [torch.Generator(device="cuda").manual_seed(s) for s in range(4)]

    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        expected = model.inpaint(seq, generator=gens())  # warm-up, validates inputs (one sync)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = parallel_decode(seq, model.codebook_logits, codebook_size=model.config.codebook_size,
                                  generator=gens())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(out, expected)
    assert torch.equal(out[:, -1][seq != -1], seq[seq != -1])
