"""examples/train_vicreg.py trains on tiny genaug shards: the fixed-batch loss goes down."""

import importlib.util
import sys
from pathlib import Path

import pytest

from genaug.testing.shardfactory import make_shards

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_vicreg.py"


@pytest.fixture(scope="module")
def train_vicreg():
    spec = importlib.util.spec_from_file_location("train_vicreg", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_vicreg"] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("train_vicreg", None)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    make_shards(out, n_samples=32, shard_size=8)
    return out


def _args(shards, lr):
    return ["--shards", str(shards), "--steps", "10", "--batch-size", "16", "--image-size", "32", "--arch",
            "small", "--mlp", "64-64", "--workers", "0", "--seed", "0", "--lr", lr, "--log-every", "5"]


def test_loss_goes_down(train_vicreg, shards, caplog):
    caplog.set_level("INFO", logger="train_vicreg")
    result = train_vicreg.main(_args(shards, "1e-3"))
    assert len(result["losses"]) == 10
    assert result["probe_after"] < result["probe_before"] - 0.3, result
    assert "step 10/10 loss" in caplog.text and "fixed-batch loss" in caplog.text


def test_without_learning_the_loss_stays(train_vicreg, shards):
    """Control: with lr 0 the fixed-batch loss is unchanged, so the decrease above comes from training."""
    result = train_vicreg.main(_args(shards, "0"))
    assert result["probe_after"] == pytest.approx(result["probe_before"], abs=1e-4)


def test_vicreg_loss_parts(train_vicreg):
    import numpy as np
    import torch

    cfg = train_vicreg.VICRegConfig()
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 3
    cov = np.cov(z.numpy().T)  # identical views with std > 1: only the covariance term is left
    expected = 2 * (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / 16
    assert train_vicreg.vicreg_loss(z, z, cfg).item() == pytest.approx(expected, rel=1e-4)
    collapsed = train_vicreg.vicreg_loss(torch.zeros(64, 16), torch.zeros(64, 16), cfg)
    assert collapsed.item() == pytest.approx(25 * (1 - 1e-2), rel=1e-4)  # std = sqrt(1e-4) per dim
    shifted = train_vicreg.vicreg_loss(z, z + 1, cfg)  # invariance: 25 * mean squared difference
    assert shifted.item() == pytest.approx(expected + 25.0, rel=1e-4)


def test_bad_batch_size_is_refused(train_vicreg, shards):
    with pytest.raises(SystemExit):
        train_vicreg.parse_args(["--shards", str(shards), "--batch-size", "1"])


@pytest.mark.gpu
def test_trains_on_cuda(train_vicreg, shards):
    args = _args(shards, "1e-3") + ["--device", "cuda", "--arch", "resnet18", "--mlp", "256-256"]
    result = train_vicreg.main(args)
    assert len(result["losses"]) == 10 and all(loss == loss for loss in result["losses"])  # finite, no NaN
    assert result["probe_after"] < result["probe_before"]
