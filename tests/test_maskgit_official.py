"""The port against outputs of the official Flax code (fixture made by fixtures_src/make_maskgit_fixture.py)."""

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from genaug.models.maskgit import MaskGIT, MaskGITConfig, flax_msgpack
from genaug.sampling.maskgit_decode import cosine_mask_ratio

FIXTURES = Path(__file__).parent / "fixtures" / "maskgit"
ATOL = 1e-4


@pytest.fixture(scope="module")
def meta():
    return json.loads((FIXTURES / "config.json").read_text())


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "reference.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def official_files(tmp_path_factory, meta):
    """The official-format msgpack files, un-gzipped to disk as the real checkpoints are."""
    folder = tmp_path_factory.mktemp("maskgit-official")
    paths = []
    for name in ("tokenizer", "transformer"):
        path = folder / f"{name}_checkpoint"
        path.write_bytes(gzip.decompress((FIXTURES / f"{name}.msgpack.gz").read_bytes()))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model(official_files, meta):
    cfg = MaskGITConfig(**meta["config"])
    return MaskGIT.from_official(*official_files, config=cfg)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def test_fixture_config_covers_channel_changes_and_several_blocks_per_level(meta):
    """The fixture's tiny config keeps what the numerical checks need to see: channel changes up and
    down, and more than one res-block per level (block numbering, as the ImageNet model's 2)."""
    cfg = meta["config"]
    mults = cfg["channel_multipliers"]
    assert cfg["num_res_blocks"] >= 2
    assert any(b > a for a, b in zip(mults, mults[1:])) and any(b < a for a, b in zip(mults, mults[1:]))


def test_reader_reads_official_format(official_files):
    tree = flax_msgpack.load(official_files[0])
    assert set(tree) == {"params"}
    flat = flax_msgpack.flatten(tree["params"])
    kernel = flat["encoder/Conv_0/kernel"]
    assert kernel.dtype == np.float32 and kernel.shape == (3, 3, 3, 32)
    assert np.abs(kernel).sum() > 0


def test_encoder_features(model, ref):
    with torch.no_grad():
        feats = model.encode_features(_nchw(ref["images_nhwc"]))
    expected = _nchw(ref["features_nhwc"])
    assert feats.shape == expected.shape
    torch.testing.assert_close(feats, expected, atol=ATOL, rtol=0)


def test_token_ids_exact(model, ref):
    with torch.no_grad():
        ids = model.encode(_nchw(ref["images_nhwc"]))
    assert ids.dtype == torch.int64
    assert torch.equal(ids, torch.from_numpy(ref["ids"]).long())


def test_reconstruction(model, ref):
    with torch.no_grad():
        recon = model.decode(torch.from_numpy(ref["ids"]))
    torch.testing.assert_close(recon, _nchw(ref["recon_nhwc"]), atol=ATOL, rtol=0)


def test_logits(model, ref):
    seq = torch.from_numpy(ref["logits_seq"])
    assert (seq == -1).any()
    with torch.no_grad():
        logits = model.logits(seq)
    torch.testing.assert_close(logits, torch.from_numpy(ref["logits"]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["gen", "edit"])
def test_decode_matches_official_with_same_noise(model, ref, meta, name):
    settings = meta["decodes"][name]
    num_iter, start = settings["num_iter"], settings["start_iter"]
    g_sample, g_choice = ref[f"{name}_gumbel_sample"], ref[f"{name}_gumbel_choice"]
    noise = [None] * start + [
        (torch.from_numpy(g_sample[i]), torch.from_numpy(g_choice[i])) for i in range(num_iter - start)
    ]
    seqs = model.inpaint(torch.from_numpy(ref[f"{name}_input"]), num_iter=num_iter, start_iter=start,
                         choice_temperature=settings["choice_temperature"], noise=noise)
    expected = torch.from_numpy(ref[f"{name}_seqs"]).long()
    assert seqs.shape == expected.shape
    mismatch = (seqs != expected).nonzero()
    assert mismatch.numel() == 0, f"first differing (sample, step, position): {mismatch[:5].tolist()}"


def test_float32_cosine_schedule_gives_official_token_counts(ref):
    """Token counts floor(unknown * ratio) equal the official float32 ones for unknown <= 1024 and
    num_iter <= 64; the ratio itself within one float32 ulp. A float64 schedule fails this."""
    table = ref["schedule"]
    unknown = np.arange(1, 1025, dtype=np.float32)[:, None]
    float64_differs = False
    for n in range(1, table.shape[0] + 1):
        official = table[n - 1, :n]
        mine = np.array([cosine_mask_ratio(s, n) for s in range(n)], np.float32)
        assert np.all(np.abs(mine.view(np.int32) - official.view(np.int32)) <= 1), f"num_iter={n}"
        counts = np.floor(unknown * official)
        assert np.array_equal(np.floor(unknown * mine), counts), f"num_iter={n}"
        in_f64 = np.maximum(np.cos(np.pi / 2 * (np.arange(1, n + 1) / n)), 1e-6)
        float64_differs |= not np.array_equal(np.floor(unknown.astype(np.float64) * in_f64), counts)
    assert float64_differs


FULL_ENV = "GENAUG_MASKGIT_FULL_FIXTURE"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(FULL_ENV), reason=f"${FULL_ENV} not set (make it with "
                    "fixtures_src/make_maskgit_fixture.py --full-size-out DIR; ~900 MB)")
def test_full_size_random_weights_match_official():
    """The full ImageNet-256 architecture (random weights) against the official code."""
    folder = Path(os.environ[FULL_ENV])
    model = MaskGIT.from_official(folder / "tokenizer_checkpoint", folder / "transformer_checkpoint",
                                  config=MaskGITConfig())
    with np.load(folder / "reference.npz") as data:
        ref = {k: data[k] for k in data.files}
    with torch.no_grad():
        images = _nchw(ref["images_nhwc"])
        torch.testing.assert_close(model.encode_features(images), _nchw(ref["features_nhwc"]), atol=ATOL, rtol=0)
        assert torch.equal(model.encode(images), torch.from_numpy(ref["ids"]).long())
        recon = model.decode(torch.from_numpy(ref["ids"]))
        torch.testing.assert_close(recon, _nchw(ref["recon_nhwc"]), atol=ATOL, rtol=0)
        logits = model.logits(torch.from_numpy(ref["logits_seq"]))
        torch.testing.assert_close(logits, torch.from_numpy(ref["logits"]), atol=ATOL, rtol=0)
    noise = [(torch.from_numpy(s), torch.from_numpy(c))
             for s, c in zip(ref["edit_gumbel_sample"], ref["edit_gumbel_choice"], strict=True)]
    seqs = model.inpaint(torch.from_numpy(ref["edit_input"]), num_iter=12, noise=noise)
    assert torch.equal(seqs, torch.from_numpy(ref["edit_seqs"]).long())
