"""examples/train_vicreg.py (a front end of genaug.training) trains on tiny genaug shards: the fixed-batch
loss goes down. The loss itself is tested in test_training.py (test_vicreg_loss_parts, moved there)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from shardfactory import make_shards

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
            "small", "--mlp", "64-64", "--workers", "0", "--seed", "0", "--base-lr", lr, "--log-every", "5"]


def test_loss_goes_down(train_vicreg, shards, caplog):
    caplog.set_level("INFO", logger="genaug.training")
    result = train_vicreg.main(_args(shards, "20"))  # LARS: base lr 20 x 16/256 = peak lr 1.25 for 10 steps
    assert len(result["losses"]) == 10
    assert result["probe_after"] < result["probe_before"] - 0.3, result
    assert "step 10/10 lr" in caplog.text and "fixed-batch loss" in caplog.text


def test_without_learning_the_loss_stays(train_vicreg, shards):
    """Control: with lr 0 the fixed-batch loss is unchanged, so the decrease above comes from training."""
    result = train_vicreg.main(_args(shards, "0"))
    assert result["probe_after"] == pytest.approx(result["probe_before"], abs=1e-4)


def test_bad_batch_size_is_refused(train_vicreg, shards):
    with pytest.raises(SystemExit):
        train_vicreg.parse_args(["--shards", str(shards), "--batch-size", "1"])


def test_defaults_are_the_papers_protocol(train_vicreg, shards):
    args = train_vicreg.parse_args(["--shards", str(shards)])
    cfg = args.config
    assert (cfg.model.arch, cfg.model.mlp, cfg.batch_size, cfg.epochs) == ("resnet50", "8192-8192-8192", 800, 100)
    assert (cfg.base_lr, cfg.warmup_epochs, cfg.weight_decay) == (0.2, 10.0, 1e-6)


def test_eval_needs_both_splits_and_an_out_folder(train_vicreg, shards):
    with pytest.raises(SystemExit):
        train_vicreg.parse_args(["--shards", str(shards), "--eval-train", str(shards), "--out", "x"])
    with pytest.raises(SystemExit):
        train_vicreg.parse_args(["--shards", str(shards), "--eval-train", str(shards), "--eval-val", str(shards)])


@pytest.mark.gpu
def test_trains_on_cuda(train_vicreg, shards):
    args = _args(shards, "20") + ["--device", "cuda", "--arch", "resnet18", "--mlp", "256-256"]
    result = train_vicreg.main(args)
    assert len(result["losses"]) == 10 and all(loss == loss for loss in result["losses"])  # finite, no NaN
    assert result["probe_after"] < result["probe_before"]
