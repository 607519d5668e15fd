"""The paper's training protocol on genaug shards: VICReg pre-training with LARS and the official
schedule (single process or torchrun/DDP), frozen linear probe + k-NN evaluation, results tables,
and the gamma / T^G ablation sweep. Entry points: examples/train_vicreg.py, examples/linear_eval.py,
examples/gencl_sweep.py (docs/training.md)."""

from genaug.training.evaluate import EvalConfig, evaluate, knn_accuracy, linear_probe, load_backbone
from genaug.training.optim import LARS, exclude_bias_and_norm, peak_lr, warmup_cosine
from genaug.training.pretrain import PretrainConfig, PretrainResult, pretrain
from genaug.training.protocol import run_protocol, run_sweep, sweep_settings
from genaug.training.results import write_table
from genaug.training.vicreg import VICReg, VICRegConfig, vicreg_loss

__all__ = [
    "EvalConfig", "LARS", "PretrainConfig", "PretrainResult", "VICReg", "VICRegConfig", "evaluate",
    "exclude_bias_and_norm", "knn_accuracy", "linear_probe", "load_backbone", "peak_lr", "pretrain",
    "run_protocol", "run_sweep", "sweep_settings", "vicreg_loss", "warmup_cosine", "write_table",
]
