"""genaug.training: LARS and the VICReg schedule, the loss, the protocol end to end (pre-train -> linear
probe + k-NN -> table) and the gamma / T^G sweep, on tiny generated shards (CPU, small backbone)."""

import json
import math

import pytest
import torch

from genaug.testing.shardfactory import make_shards
from genaug.training import (
    LARS,
    EvalConfig,
    PretrainConfig,
    VICRegConfig,
    knn_accuracy,
    linear_probe,
    peak_lr,
    pretrain,
    run_protocol,
    run_sweep,
    warmup_cosine,
)
from genaug.training.optim import exclude_bias_and_norm

TINY = VICRegConfig(arch="small", mlp="64-64")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_shards(root / "train", n_samples=32, shard_size=8)
    make_shards(root / "val", n_samples=12, shard_size=12, seed=1)
    return root


def tiny(data, out=None, **changes) -> PretrainConfig:
    options = dict(shards=str(data / "train"), out=None if out is None else str(out), model=TINY, epochs=100,
                   max_steps=12, batch_size=16, base_lr=20.0, image_size=32, workers=0, log_every=4)
    return PretrainConfig(**{**options, **changes})


def test_lars_step_matches_the_update_rule():
    weight = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # norm 5
    bias = torch.nn.Parameter(torch.tensor([1.0]))
    weight.grad, bias.grad = torch.tensor([[0.0, 2.0]]), torch.tensor([0.5])
    opt = LARS([weight, bias], lr=0.1, weight_decay=0.5, momentum=0.9, eta=0.01)
    opt.step()
    update = torch.tensor([[0.0, 2.0]]) + 0.5 * torch.tensor([[3.0, 4.0]])  # weight decay on the matrix only
    trust = 0.01 * 5.0 / update.norm()
    assert torch.allclose(weight.detach(), torch.tensor([[3.0, 4.0]]) - 0.1 * trust * update)
    assert torch.allclose(bias.detach(), torch.tensor([1.0 - 0.1 * 0.5]))  # no decay, no adaptation
    opt.step()  # momentum: mu = 0.9 * mu + new update
    assert opt.state[bias]["mu"].item() == pytest.approx(0.9 * 0.5 + 0.5)
    assert exclude_bias_and_norm(torch.nn.BatchNorm1d(3).weight) and not exclude_bias_and_norm(weight)


def test_schedule_is_the_official_one():
    assert peak_lr(0.2, 800) == pytest.approx(0.625) and peak_lr(0.2, 256) == pytest.approx(0.2)
    total, warmup, peak = 1000, 100, 0.625
    assert warmup_cosine(0, total, warmup, peak) == 0.0
    assert warmup_cosine(50, total, warmup, peak) == pytest.approx(peak / 2)
    assert warmup_cosine(100, total, warmup, peak) == pytest.approx(peak)
    assert warmup_cosine(550, total, warmup, peak) == pytest.approx(peak * (0.5 + 0.5e-3))
    assert warmup_cosine(1000, total, warmup, peak) == pytest.approx(peak * 1e-3)
    lrs = [warmup_cosine(s, total, warmup, peak) for s in range(warmup, total)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_vicreg_loss_parts():
    import numpy as np

    from genaug.training import vicreg_loss

    cfg = VICRegConfig()
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 3
    cov = np.cov(z.numpy().T)  # identical views with std > 1: only the covariance term is left
    expected = 2 * (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / 16
    assert vicreg_loss(z, z, cfg).item() == pytest.approx(expected, rel=1e-4)
    collapsed = vicreg_loss(torch.zeros(64, 16), torch.zeros(64, 16), cfg)
    assert collapsed.item() == pytest.approx(25 * (1 - 1e-2), rel=1e-4)  # std = sqrt(1e-4) per dim
    shifted = vicreg_loss(z, z + 1, cfg)  # invariance: 25 * mean squared difference
    assert shifted.item() == pytest.approx(expected + 25.0, rel=1e-4)


def test_knn_and_linear_probe_on_separable_features():
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(4, 16) * 10
    train_y, val_y = torch.arange(64) % 4, torch.arange(20) % 4
    train_x = centres[train_y] + torch.randn(64, 16, generator=gen)
    val_x = centres[val_y] + torch.randn(20, 16, generator=gen)
    assert knn_accuracy(train_x, train_y, val_x, val_y, k=5, temperature=0.07, n_classes=4) == 1.0
    cfg = EvalConfig(train="unused", val="unused", probe_epochs=20, batch_size=16, probe_lr=0.3)
    assert linear_probe(train_x, train_y, val_x, val_y, 4, cfg) == 1.0
    shuffled = val_y[torch.randperm(20, generator=gen)]  # wrong labels: far from perfect
    assert knn_accuracy(train_x, train_y, val_x, shuffled, k=5, temperature=0.07, n_classes=4) < 0.6


def test_protocol_end_to_end(data, tmp_path):
    """Pre-training lowers the fixed-batch loss; the linear probe and k-NN fill the results table."""
    out = tmp_path / "run"
    eval_cfg = EvalConfig(train=str(data / "train"), val=str(data / "val"), image_size=32, batch_size=16,
                          workers=0, probe_epochs=5)
    row = run_protocol(tiny(data, out), eval_cfg)
    assert row["probe_after"] < row["probe_before"] - 0.3, row
    assert len(row["losses"]) == 12 and all(math.isfinite(v) for v in row["losses"])
    assert 0.0 <= row["linear_top1"] <= 1.0 and 0.0 <= row["knn_top1"] <= 1.0
    assert (row["n_train"], row["n_val"], row["n_classes"]) == (32, 12, 4)
    table = json.loads((out / "results.json").read_text())
    assert table["rows"][0]["run"] == "gamma0.5-tg_gencl" and "losses" not in table["rows"][0]
    markdown = (out / "results.md").read_text()
    assert "| gamma0.5-tg_gencl | 0.5 | gencl | small |" in markdown and "linear top-1 %" in markdown
    log = json.loads((out / "train_log.json").read_text())
    assert log["losses"] == row["losses"] and log["config"]["base_lr"] == 20.0
    from genaug.training import load_backbone

    backbone = load_backbone(out / "backbone.pt")  # strict keys, weights_only
    assert backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 128)


def test_without_learning_the_loss_stays(data):
    """Control: with lr 0 the fixed-batch loss is unchanged, so the decrease above comes from training."""
    result = pretrain(tiny(data, base_lr=0.0))
    assert result.probe_after == pytest.approx(result.probe_before, abs=1e-4)


def test_batch_larger_than_the_data_is_refused_before_work(data, tmp_path):
    with pytest.raises(ValueError, match="batch_size=64 .* exceeds the 32 samples"):
        pretrain(tiny(data, tmp_path / "never", batch_size=64))
    assert not (tmp_path / "never").exists()


def test_unlabelled_eval_split_is_refused(data, tmp_path):
    make_shards(tmp_path / "unlabelled", n_samples=4, shard_size=4, labelled=False)
    eval_cfg = EvalConfig(train=str(tmp_path / "unlabelled"), val=str(data / "val"), image_size=32,
                          batch_size=4, workers=0, probe_epochs=1)
    with pytest.raises(ValueError, match="has no label"):
        run_protocol(tiny(data, tmp_path / "run", max_steps=1), eval_cfg)


def test_sweep_writes_one_table(data, tmp_path):
    rows = run_sweep(tiny(data, tmp_path / "sweep", max_steps=3), None, gammas=[0.0, 1.0], tgs=["gencl", "crop"])
    assert [r["run"] for r in rows] == ["gamma0-tg_gencl", "gamma0-tg_crop", "gamma1-tg_gencl", "gamma1-tg_crop"]
    counts = [r["pair_counts"] for r in rows]
    assert counts[0]["generative"] == 0 and counts[2]["real"] == 0  # gamma 0: real pairs only; 1: generative
    table = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert [r["run"] for r in table["rows"]] == [r["run"] for r in rows]
    assert (tmp_path / "sweep" / "results.md").read_text().count("| gamma") == 4
    assert all((tmp_path / "sweep" / r["run"] / "backbone.pt").exists() for r in rows)


@pytest.mark.parametrize("gammas, tgs, message", [([1.5], ["gencl"], "gamma=1.5"), ([0.5], ["zoom"], "zoom")])
def test_sweep_refuses_bad_values_before_training(data, tmp_path, gammas, tgs, message):
    with pytest.raises(ValueError, match=message):
        run_sweep(tiny(data, tmp_path / "sweep"), None, gammas=gammas, tgs=tgs)
    assert not (tmp_path / "sweep").exists()


def test_pretrain_from_a_brace_pattern(data):
    """Without index.json the epoch length comes from the counted tar headers (4 shards of 8 -> 2 steps of 16)."""
    result = pretrain(tiny(data, shards=str(data / "train" / "shard-{0000..0003}.tar"), max_steps=3))
    assert result.steps_per_epoch == 2 and len(result.losses) == 3
