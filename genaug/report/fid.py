"""FID between real and augmented images with pytorch-fid's Inception, built offline.

pytorch-fid's ``InceptionV3`` downloads its weights when constructed. Here the same network
(torchvision's Inception v3 patched with pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` blocks, exactly
as ``pytorch_fid.inception.fid_inception_v3`` builds it) is assembled without any download, and
the weights are loaded strictly from a local file: ``--inception-weights`` or the file in torch
hub's checkpoint folder, where pytorch-fid itself would cache it. Activations are the 2048-d
pool3 features; the distance is ``pytorch_fid.fid_score.calculate_frechet_distance``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import warnings
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from pytorch_fid import inception as fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance

from genaug.checkpoint import CheckpointError, load_checkpoint

log = logging.getLogger(__name__)

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's converted TF Inception
FID_WEIGHTS_URL = fid_inception.FID_WEIGHTS_URL  # where that file is published
FID_DIMS = 2048  # pool3 feature size
FID_INPUT_SIZE = 299  # Inception input side; images are resized bilinearly as pytorch-fid does
FID_SETTINGS = {
    "implementation": "pytorch-fid (InceptionV3 FID variant, pool3 2048-d) + calculate_frechet_distance",
    "weights": FID_WEIGHTS_FILENAME,
    "input": "uint8 RGB / 255, bilinear resize to 299x299, scaled to [-1, 1]",
    "dims": FID_DIMS,
}

# images uint8 (B, 3, H, W) -> features float (B, D)
FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


class InceptionWeightsMissing(FileNotFoundError):
    """The FID Inception weights file is not on disk."""


class InceptionWeightsInvalid(ValueError):
    """The given file is not pytorch-fid's Inception state dict."""


def default_weights_path() -> Path:
    """Where pytorch-fid (torch hub) caches the FID Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILENAME


def resolve_weights(path: str | Path | None) -> Path:
    """The weights file to use: `path` if given, else the torch hub location. Raises if missing."""
    candidate = Path(path).expanduser() if path is not None else default_weights_path()
    if candidate.is_file():
        return candidate
    where = "given by --inception-weights" if path is not None else "expected at"
    raise InceptionWeightsMissing(
        f"FID Inception weights {FID_WEIGHTS_FILENAME} not found ({where} {candidate}). "
        f"Download it from {FID_WEIGHTS_URL} and put it at {default_weights_path()} "
        "(or pass --inception-weights PATH), or run `genaug report --no-fid` to skip FID."
    )


def build_fid_inception() -> nn.Module:
    """pytorch-fid's FID Inception topology (no weights loaded, nothing downloaded)."""
    net = torchvision.models.inception_v3(
        weights=None, num_classes=1008, aux_logits=False, init_weights=False
    )
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    return net


class InceptionPool3(nn.Module):
    """uint8 images -> 2048-d pool3 features, as pytorch_fid.inception.InceptionV3([3]) computes them."""

    def __init__(self, inception: nn.Module) -> None:
        super().__init__()
        net = inception
        self.features = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d,
            net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e,
            net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0  # (B, 3, H, W) in [0, 1]
        x = F.interpolate(x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # (B, 3, 299, 299) in [-1, 1]
        return self.features(x).flatten(1)  # (B, 2048)


def inception_from_state_dict(state_dict: Mapping[str, torch.Tensor], device: torch.device | str = "cpu") -> InceptionPool3:
    """Load a state dict strictly into the FID Inception; eval mode, no gradients."""
    net = build_fid_inception()
    net.load_state_dict(state_dict, strict=True)
    model = InceptionPool3(net).to(device).eval()
    model.requires_grad_(False)
    return model


def load_inception(weights: str | Path | None, device: torch.device | str = "cpu") -> InceptionPool3:
    """The real FID Inception from a local file (see resolve_weights)."""
    path = resolve_weights(weights)
    log.info("loading FID Inception weights from %s", path)
    try:
        state_dict = load_checkpoint(path, "pytorch-fid's Inception weights")
    except CheckpointError as err:
        raise InceptionWeightsInvalid(f"{err}; download {FID_WEIGHTS_FILENAME} from {FID_WEIGHTS_URL} and pass "
                                      "that file, or use --no-fid to skip FID") from err
    try:
        return inception_from_state_dict(state_dict, device)
    except RuntimeError as err:  # missing / unexpected keys or wrong shapes
        raise _invalid(path, err) from err


def _invalid(path: Path, err: BaseException) -> InceptionWeightsInvalid:
    detail = str(err)[:300] or "no detail"
    return InceptionWeightsInvalid(
        f"{path}: not pytorch-fid's Inception weights ({type(err).__name__}: {detail}); download "
        f"{FID_WEIGHTS_FILENAME} from {FID_WEIGHTS_URL} and pass that file, or use --no-fid to skip FID"
    )


def random_inception_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """Random weights for the FID Inception (He-normal convolutions, identity batch norm).

    A STAND-IN FOR TESTS AND SMOKE RUNS ONLY: distances computed with it are not FID.
    ``genaug report`` never uses it.
    """
    gen = torch.Generator().manual_seed(int(seed))
    state = {}
    for name, tensor in build_fid_inception().state_dict().items():
        if name.endswith("running_var") or (name.endswith("weight") and tensor.ndim == 1):
            state[name] = torch.ones_like(tensor)
        elif tensor.ndim >= 2:
            fan_in = tensor[0].numel()
            state[name] = torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        else:
            state[name] = torch.zeros_like(tensor)
    return state


def random_inception(seed: int, device: torch.device | str = "cpu") -> InceptionPool3:
    """The FID Inception with random_inception_state_dict(seed): a test stand-in, never a real FID."""
    return inception_from_state_dict(random_inception_state_dict(seed), device)


@dataclasses.dataclass
class FeatureStats:
    """Running mean/covariance of features; keeps the raw rows while there are at most `dims` of them."""

    dims: int  # feature size D
    count: int = 0
    total: np.ndarray | None = None  # (D,) float64 sum
    outer: np.ndarray | None = None  # (D, D) float64 sum of x x^T
    rows: list = dataclasses.field(default_factory=list)  # raw (n, D) blocks while count <= dims

    def add(self, features: torch.Tensor) -> None:
        x = features.detach().to("cpu", torch.float64).numpy()  # (B, D)
        if x.ndim != 2 or x.shape[1] != self.dims:
            raise ValueError(f"features must be (B, {self.dims}), got {x.shape}")
        if self.total is None:
            self.total, self.outer = np.zeros(self.dims), np.zeros((self.dims, self.dims))
        self.total += x.sum(0)
        self.outer += x.T @ x
        self.count += x.shape[0]
        if self.count <= self.dims:
            self.rows.append(x)
        else:
            self.rows.clear()

    def mean(self) -> np.ndarray:
        return self.total / self.count

    def cov(self) -> np.ndarray:
        mu = self.mean()
        return (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)

    def matrix(self) -> np.ndarray | None:
        """All rows (n, D), or None once more than D were seen."""
        return np.concatenate(self.rows) if self.rows and self.count <= self.dims else None


def _frechet(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's distance; its console message and scipy's warnings go to the log."""
    captured = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(captured):
        warnings.simplefilter("always")
        value = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    notes = [captured.getvalue().strip()] + [str(w.message) for w in caught if "`disp`" not in str(w.message)]
    for note in filter(None, notes):
        log.info("pytorch-fid / scipy: %s", note)
    return float(value)


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two feature sets.

    With fewer samples than dimensions the covariances live in the span of the centred rows;
    both sets (and the mean difference) are then expressed in an orthonormal basis of that span
    (at most n_a + n_b + 1 dimensions), which leaves every term of the distance unchanged and
    avoids a 2048 x 2048 matrix square root.
    """
    for name, s in (("first", a), ("second", b)):
        if s.count < 2:
            raise ValueError(f"FID needs at least 2 samples per set; the {name} set has {s.count}")
    mu_a, mu_b = a.mean(), b.mean()
    rows_a, rows_b = a.matrix(), b.matrix()
    if rows_a is None or rows_b is None or rows_a.shape[0] + rows_b.shape[0] + 1 >= a.dims:
        return _frechet(mu_a, a.cov(), mu_b, b.cov())
    span = np.concatenate([rows_a - mu_a, rows_b - mu_b, (mu_a - mu_b)[None]])  # (k, D)
    basis, _ = np.linalg.qr(span.T)  # (D, k) orthonormal columns
    proj_a, proj_b = rows_a @ basis, rows_b @ basis  # (n, k)
    return _frechet(
        proj_a.mean(0), np.cov(proj_a, rowvar=False), proj_b.mean(0), np.cov(proj_b, rowvar=False)
    )


def few_samples_warning(counts: Mapping[str, int]) -> str | None:
    """One warning text (also logged) for the sets whose FID rests on fewer samples than dimensions."""
    few = {label: n for label, n in counts.items() if n < FID_DIMS}
    if not few:
        return None
    listed = ", ".join(f"{label} ({n})" for label, n in few.items())
    text = (
        f"FID from fewer samples than the {FID_DIMS} feature dimensions for {listed}: the covariance "
        "is singular and FID is biased upwards; compare FIDs only between sets of equal size, and use "
        "at least 2048 (better 10,000+) samples for values comparable with the literature"
    )
    log.warning(text)
    return text
