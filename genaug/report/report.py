"""`genaug report`: the cost-benefit table (GenCL Table 4) for genaug runs, as report.json / report.md.

For every (run folder, method, preset, resolution) found in the shards: sample count, FID and SSIM
between each real image (model view: crop_box, resized to the aug size) and its augmentation, the
build's own timing (manifest.json, stats files) and the editor's parameter count; plus rows for the
classic crop, colour jitter and Gaussian blur augmentations applied to the first group's real images
and scored the same way. Pictures are written beside the report (see plots.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from genaug import __version__
from genaug.contact_sheet import write_sheet
from genaug.device import device_name
from genaug.report import classic, fid, plots, tables
from genaug.report.reader import Pair, ReportInputError, RunFolder, discover, iter_pairs
from genaug.report.scores import SSIM_SETTINGS, ssim
from genaug.runstatus import read_build_status

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CONTACT_COLUMNS = 2  # pairs a row in the contact sheets


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    max_samples: int | None = None  # pairs read per run folder, in shard order (None = all)
    batch_size: int = 32  # pairs per SSIM / Inception batch
    device: str = "cpu"  # torch device for SSIM and the Inception
    seed: int = 0  # seed of the classic augmentations (per sample: sample_seed(seed, key, name))
    classic: bool = True  # add the crop / colour jitter / Gaussian blur rows
    contact_pairs: int = 2  # pairs shown for each of best / median / worst SSIM

    def validate(self) -> None:
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples={self.max_samples}: must be >= 1 (or None for all)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 1")
        if self.contact_pairs < 1:
            raise ValueError(f"contact_pairs={self.contact_pairs}: must be >= 1")
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device={self.device!r}: not a torch device; use cpu, cuda or cuda:N") from err


@dataclasses.dataclass
class Row:
    """Scores accumulated for one table row."""

    label: str
    kind: str  # "generative" | "classic"
    run: RunFolder | None  # the run the images come from
    method: str | None = None
    preset: str | None = None
    resolution: int | None = None  # aug side, pixels
    keys: list[str] = dataclasses.field(default_factory=list)
    ssim: list[float] = dataclasses.field(default_factory=list)
    features: fid.FeatureStats | None = None  # of the augmented images
    reference: fid.FeatureStats | None = None  # of the real images they are compared with
    seconds: float = 0.0  # classic rows: time spent augmenting, on this machine's CPU
    classics: list["Row"] = dataclasses.field(default_factory=list)  # classic rows fed by this group


class _Scorer:
    """Streams pairs into rows: SSIM per pair, Inception features per image, classic augmentations."""

    def __init__(self, options: ReportOptions, features: fid.FeatureExtractor | None) -> None:
        self.options = options
        self.features = features
        self.device = torch.device(options.device)
        self.rows: list[Row] = []

    def _new_stats(self) -> fid.FeatureStats | None:
        return fid.FeatureStats(fid.FID_DIMS) if self.features is not None else None

    def new_group(self, run: RunFolder, pair: Pair) -> Row:
        method, preset = pair.meta.get("method") or "unknown", pair.meta.get("preset") or "unknown"
        row = Row(label=f"{method} ({preset})", kind="generative", run=run, method=method, preset=preset,
                  resolution=int(pair.aug.shape[0]), features=self._new_stats(), reference=self._new_stats())
        if self.options.classic and not any(r.kind == "generative" for r in self.rows):
            row.classics = [Row(label=classic.CLASSIC_LABELS[name], kind="classic", run=run, method=name,
                                resolution=row.resolution, features=self._new_stats(), reference=row.reference)
                            for name in classic.CLASSIC]
        self.rows.append(row)
        self.rows.extend(row.classics)
        return row

    def _embed(self, stats: fid.FeatureStats | None, images: torch.Tensor) -> None:
        if stats is not None:
            with torch.no_grad():
                stats.add(self.features(images.to(self.device)))  # (B, 2048)

    def score(self, row: Row, pairs: list[Pair]) -> None:
        keys = [p.key for p in pairs]
        real = torch.from_numpy(np.stack([p.real for p in pairs])).permute(0, 3, 1, 2)  # (B, 3, R, R)
        aug = torch.from_numpy(np.stack([p.aug for p in pairs])).permute(0, 3, 1, 2)  # (B, 3, R, R)
        real_dev = real.to(self.device)
        row.keys += keys
        row.ssim += ssim(real_dev, aug.to(self.device)).tolist()
        self._embed(row.reference, real)
        self._embed(row.features, aug)
        for extra in row.classics:
            start = time.perf_counter()
            out = classic.augment_batch(extra.method, real, self.options.seed, keys)  # (B, 3, R, R)
            extra.seconds += time.perf_counter() - start
            extra.keys += keys
            extra.ssim += ssim(real_dev, out.to(self.device)).tolist()
            self._embed(extra.features, out)

    def run(self, runs: Sequence[RunFolder], errors: list[dict]) -> list[Row]:
        for run in runs:
            start = time.perf_counter()
            groups: dict[tuple, Row] = {}
            pending: dict[tuple, list[Pair]] = {}
            for pair in iter_pairs(run, errors, limit=self.options.max_samples):
                gkey = (pair.meta.get("method"), pair.meta.get("preset"), pair.aug.shape)
                if gkey not in groups:
                    groups[gkey] = self.new_group(run, pair)
                pending.setdefault(gkey, []).append(pair)
                if len(pending[gkey]) == self.options.batch_size:
                    self.score(groups[gkey], pending.pop(gkey))
            for gkey, pairs in pending.items():
                self.score(groups[gkey], pairs)
            scored = sum(len(r.ssim) for r in groups.values())
            log.info("%s: scored %d pairs in %.1f s", run.name, scored, time.perf_counter() - start)
        return self.rows


def _disambiguate(rows: list[Row]) -> None:
    """Add the run folder, then the resolution, to labels that would otherwise repeat."""
    gen = [r for r in rows if r.kind == "generative"]
    for suffix in (lambda r: f" [{r.run.name}]", lambda r: f" @{r.resolution}px"):
        labels = [r.label for r in gen]
        for row in gen:
            if labels.count(row.label) > 1:
                row.label += suffix(row)


def _fid_value(row: Row) -> float | None:
    if row.features is None or row.reference is None or row.features.count < 2:
        return None
    return fid.frechet_distance(row.reference, row.features)


def _row_record(row: Row) -> dict:
    record = {
        "label": row.label, "kind": row.kind, "method": row.method, "preset": row.preset,
        "run": str(row.run.path) if row.run else None, "resolution": row.resolution,
        "samples": len(row.ssim), "fid": _fid_value(row),
        "ssim_mean": statistics.fmean(row.ssim) if row.ssim else None,
        "ssim_median": statistics.median(row.ssim) if row.ssim else None,
    }
    if row.kind == "classic":
        ms = 1000.0 * row.seconds / len(row.ssim) if row.ssim else None
        record.update(tables.classic_cost(ms, device_name(torch.device("cpu"))))
    else:
        record.update(tables.build_cost(row.run.manifest, row.run.stats))
    return record


def _pick_pairs(row: Row, per_kind: int) -> list[tuple[str, str, float]]:
    """(caption prefix, key, ssim) for the best, median and worst pairs by SSIM."""
    order = sorted(range(len(row.ssim)), key=lambda i: row.ssim[i], reverse=True)
    k = min(per_kind, len(order))
    mid = (len(order) - k) // 2  # the k pairs around the median rank
    picks = [("best", order[:k]), ("median", order[mid:mid + k]), ("worst", order[::-1][:k])]
    return [(name, row.keys[i], row.ssim[i]) for name, idx in picks for i in idx]


def _contact_sheets(rows: list[Row], out_dir: Path, per_kind: int) -> dict[str, str]:
    written = {}
    for number, row in enumerate(r for r in rows if r.kind == "generative" and r.ssim):
        picks = _pick_pairs(row, per_kind)
        found = {p.key: p for p in iter_pairs(row.run, [], keys={key for _, key, _ in picks}, warn=False)}
        cells = [(f"{name} {key} SSIM {value:.3f}", Image.fromarray(found[key].real), Image.fromarray(found[key].aug))
                 for name, key, value in picks if key in found]
        name = f"contact_{number}_{plots.slug(row.label)}.png"
        write_sheet(cells, out_dir / name, columns=CONTACT_COLUMNS, labels=True,
                    title=f"{row.label}: real | aug, by SSIM")
        written[row.label] = name
    return written


def _pictures(rows: list[Row], runs: list[RunFolder], out_dir: Path, options: ReportOptions) -> dict:
    hist = {r.label: r.ssim for r in rows if r.ssim}
    pictures = {"contact_sheets": _contact_sheets(rows, out_dir, options.contact_pairs)}
    if hist:
        plots.ssim_histograms(hist, out_dir / "ssim_hist.png")
        pictures["ssim_histogram"] = "ssim_hist.png"
    series = {run.name: tables.shard_throughput(run.stats) for run in runs}
    if any(series.values()):
        plots.throughput(series, out_dir / "throughput.png")
        pictures["throughput"] = "throughput.png"
    return pictures


def _classic_settings(rows: list[Row], options: ReportOptions) -> dict | None:
    fed = next((r for r in rows if r.classics), None)
    if fed is None:
        return None
    return classic.describe() | {"seed": options.seed, "images": f"the real images of {fed.label}"}


def _build_warnings(runs: Sequence[RunFolder]) -> list[str]:
    """One warning per run folder whose manifest.json says the build did not complete: its table rows
    cover only the finished shards, and its timing columns are unknown until the build completes."""
    statuses = (read_build_status(run.path) for run in runs)
    return [f"{status.folder}: {status.problem()}; its rows cover only the finished shards"
            for status in statuses if status is not None and not status.finished]


def _shard_warnings(errors: list[dict]) -> list[str]:
    """One warning per shard that stopped being readable (reader.iter_pairs records it with key None)."""
    return [f"{e['shard']}: {e['reason']}" for e in errors if e.get("key") is None]


def generate_report(paths: Sequence[str | Path], out_dir: str | Path, options: ReportOptions,
                    features: fid.FeatureExtractor | None, features_note: str | None = None) -> dict:
    """Score the shards under `paths`, write report.json, report.md and the PNGs into `out_dir`.

    features: images uint8 (B, 3, H, W) -> (B, 2048) Inception pool3 features (see fid.load_inception),
    or None to leave FID out ("not computed"). features_note says where the weights came from.
    """
    options.validate()
    runs = discover(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    errors: list[dict] = []
    rows = _Scorer(options, features).run(runs, errors)
    if not any(r.ssim for r in rows):
        raise ReportInputError(
            f"no readable pairs in {[str(r.path) for r in runs]} ({len(errors)} unreadable samples or shards); "
            "check the shards with `genaug inspect --verify`")
    samples = [e for e in errors if e.get("key") is not None]  # unreadable shards are warnings instead
    _disambiguate(rows)
    rows = [r for r in rows if r.kind == "generative"] + [r for r in rows if r.kind == "classic"]
    few = fid.few_samples_warning({r.label: r.features.count for r in rows if r.features is not None})
    report = {
        "genaug_version": __version__,
        "inputs": [str(r.path) for r in runs],
        "rows": [_row_record(r) for r in rows],
        "time": [tables.time_breakdown(r.name, r.manifest, r.stats) for r in runs],
        "settings": {
            "ssim": SSIM_SETTINGS,
            "fid": {**fid.FID_SETTINGS, "computed": features is not None, "inception": features_note},
            "real_reference": "real.jpg, EXIF-transposed, cropped to json crop_box, resized (bicubic) "
                              "to the aug image's size: the model input",
            "classic": _classic_settings(rows, options),
            "max_samples_per_run": options.max_samples,
        },
        "warnings": _build_warnings(runs) + _shard_warnings(errors) + ([few] if few else []),
        "errors": {"count": len(samples), "first": samples[:20]},
    }
    report["pictures"] = _pictures(rows, runs, out, options)
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1, sort_keys=False, default=str))
    (out / REPORT_MD).write_text(tables.render_markdown(report))
    log.info("wrote %s and %s in %s", REPORT_MD, REPORT_JSON, out)
    return report
