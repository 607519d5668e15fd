"""Cost columns from a build's own records, the time breakdown, and report.md rendering.

Timing facts come from the run folder: ``manifest.json`` ``timing`` (ms/image at batch 1 and at
the build's batch size, measured by the build on its device) and ``editor`` (Editor.describe(),
with ``parameters``), and the per-shard stats files (``timings_s`` per stage, ``images_per_s``).
Anything missing is reported as "unknown", never guessed.
"""

from __future__ import annotations

from typing import Mapping, Sequence

STAGES = ("read_decode", "model", "encode", "write")  # stats timings_s keys, pipeline order
STAGE_LABELS = {"read_decode": "read/decode", "model": "model", "encode": "encode", "write": "write"}
WALL = "wall"  # timings_s key of the shard's wall-clock time; any other key is a stage
BOUND_SHARE = 0.5  # the model (or the other stages together) busy this share of wall time -> bound by it
UNKNOWN = "unknown"


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _dict(value) -> dict:
    return value if isinstance(value, Mapping) else {}


def build_cost(manifest: Mapping, stats: Sequence[Mapping]) -> dict:
    """Cost columns of a generative row from manifest.json and the stats files."""
    timing, editor = _dict(manifest.get("timing")), _dict(manifest.get("editor"))
    batch_ms = _number(timing.get("batch_ms_per_image"))
    nsamples = sum(_number(s.get("nsamples")) or 0 for s in stats)
    wall = sum(_number(_dict(s.get("timings_s")).get("wall")) or 0 for s in stats)
    first = stats[0] if stats else {}
    return {
        "ms_batch1": _number(timing.get("batch1_ms_per_image")),
        "ms_batch": batch_ms,
        "batch_size": timing.get("batch_size", first.get("batch_size")),
        "images_per_s_model": 1000.0 / batch_ms if batch_ms else None,
        "images_per_s_run": nsamples / wall if wall > 0 else None,
        "parameters": _number(editor.get("parameters")),
        "device": timing.get("device") or editor.get("device") or first.get("device"),
        "device_name": timing.get("device_name") or editor.get("device_name") or first.get("device_name"),
        "timing_source": "manifest.json timing + stats files",
    }


def classic_cost(ms_per_image: float | None, cpu_name: str) -> dict:
    """Cost columns of a classic row: measured by the report, one image at a time on this CPU."""
    return {
        "ms_batch1": ms_per_image, "ms_batch": None, "batch_size": 1,
        "images_per_s_model": 1000.0 / ms_per_image if ms_per_image else None, "images_per_s_run": None,
        "parameters": None, "device": "cpu", "device_name": cpu_name,
        "timing_source": "measured by genaug report (includes parameter draws)",
    }


def shard_throughput(stats: Sequence[Mapping]) -> list[tuple[str, float]]:
    """(shard name, images/s) per stats file, in order; shards without a figure are skipped."""
    out = []
    for s in stats:
        value = _number(s.get("images_per_s"))
        if value is not None:
            out.append((str(s.get("shard", len(out))), value))
    return out


def _stage_seconds(stats: Sequence[Mapping]) -> tuple[dict[str, float], float, int]:
    """Summed seconds per stage (known stages first, then extras such as 'scores'), wall, shard count."""
    seconds = {stage: 0.0 for stage in STAGES}
    wall, seen = 0.0, 0
    for s in stats:
        timings = _dict(s.get("timings_s"))
        if not timings:
            continue
        seen += 1
        for stage, value in timings.items():
            if stage != WALL and _number(value) is not None:
                seconds[stage] = seconds.get(stage, 0.0) + float(value)
        wall += _number(timings.get(WALL)) or 0.0
    return seconds, wall, seen


def time_breakdown(name: str, manifest: Mapping, stats: Sequence[Mapping]) -> dict:
    """Per-stage seconds summed over the stats files, and what bound the run: the model on the device,
    the CPU-side stages, or neither (start-up / overhead, or a run too short to tell)."""
    seconds, wall, seen = _stage_seconds(stats)
    record = {"run": name, "shards_with_timings": seen, "stages_s": seconds, "wall_s": wall}
    if seen == 0 or wall <= 0:
        return record | {"bound": UNKNOWN, "sentence": f"{name}: no stats files with timings_s; "
                                                       "where time went is unknown."}
    device = _dict(manifest.get("timing")).get("device_name") or stats[0].get("device_name") or UNKNOWN
    busy = seconds["model"] / wall
    others = [s for s in seconds if s != "model"]
    cpu_share = sum(seconds[s] for s in others) / wall
    cpu_stage = max(others, key=lambda s: seconds[s])
    cpu_text = ", ".join(f"{_label(s)} {seconds[s]:.2f} s" for s in others)
    if busy >= BOUND_SHARE and busy >= cpu_share:
        bound = "device"
        sentence = (f"{name}: bound by the model on the device ({device}): the model stage ran "
                    f"{busy:.0%} of the {wall:.2f} s wall-clock time, and the other stages ({cpu_text}) kept up.")
    elif cpu_share >= BOUND_SHARE:
        bound = "cpu"
        sentence = (f"{name}: bound by the CPU side, not the device ({device}): the model ran only "
                    f"{busy:.0%} of the {wall:.2f} s wall-clock time while the other stages took "
                    f"{cpu_share:.0%} of it, the largest {_label(cpu_stage)} ({seconds[cpu_stage]:.2f} s). "
                    "More decode/encode workers or faster storage would speed the build up.")
    else:
        bound = "overhead"
        sentence = (f"{name}: neither the model ({busy:.0%}) nor the other stages ({cpu_share:.0%}: {cpu_text}) "
                    f"took most of the {wall:.2f} s wall-clock time: the rest went to start-up and overhead, "
                    "or the run was too short to tell; time a longer run to see what bounds it.")
    return record | {"model_busy_share": busy, "cpu_share": cpu_share, "bound": bound, "sentence": sentence}


def _label(stage: str) -> str:
    return STAGE_LABELS.get(stage, stage)


def _fmt(value, digits: int = 2, missing: str = UNKNOWN) -> str:
    return missing if value is None else f"{value:.{digits}f}"


def _params(value) -> str:
    if value is None:
        return UNKNOWN
    return f"{value / 1e6:.1f}M ({int(value):,})" if value >= 1e5 else f"{int(value):,}"


def _row_cells(row: Mapping, fid_computed: bool) -> list[str]:
    classic = row["kind"] == "classic"
    fid_text = _fmt(row["fid"], 3, missing="too few samples") if fid_computed else "not computed"
    batch = "n/a" if classic else f"{_fmt(row['ms_batch'])} (batch {row['batch_size'] or UNKNOWN})"
    device = f"{row['device'] or UNKNOWN}: {row['device_name'] or UNKNOWN}"
    return [
        row["label"], str(row["samples"]), fid_text, _fmt(row["ssim_mean"], 4), _fmt(row["ssim_median"], 4),
        _fmt(row["ms_batch1"], 3), batch, _fmt(row["images_per_s_model"], 1),
        _fmt(row["images_per_s_run"], 1, missing="n/a" if classic else UNKNOWN),
        "N/A" if classic else _params(row["parameters"]), device + (" (this machine)" if classic else ""),
    ]


TABLE_HEADER = ("Augmentation", "Samples", "FID (lower = closer)", "SSIM mean", "SSIM median",
                "ms/image, batch 1", "ms/image, build batch", "images/s (model)", "images/s (run)",
                "Parameters", "Device")


def markdown_table(report: Mapping) -> str:
    """The cost-benefit table alone (also printed by the CLI)."""
    computed = report["settings"]["fid"]["computed"]
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(_row_cells(row, computed)) + " |" for row in report["rows"]]
    return "\n".join(lines)


def _time_section(report: Mapping) -> list[str]:
    lines = ["## Where the time went", "",
             "Per-stage seconds summed over the build's stats files (stages may overlap when decode and "
             "encode run in worker processes).", ""]
    for item in report["time"]:
        lines.append(f"**{item['run']}** ({item['shards_with_timings']} shards with timings)")
        lines.append("")
        if item["shards_with_timings"]:
            lines += ["| stage | seconds |", "|---|---|"]
            lines += [f"| {_label(s)} | {v:.2f} |" for s, v in item["stages_s"].items()]
            lines += [f"| wall | {item['wall_s']:.2f} |", ""]
        lines += [item["sentence"], ""]
    return lines


def _settings_section(report: Mapping) -> list[str]:
    settings = report["settings"]
    ssim_text = ", ".join(f"{k}={v}" for k, v in settings["ssim"].items())
    fid_set = settings["fid"]
    fid_text = ", ".join(f"{k}={v}" for k, v in fid_set.items() if k not in ("computed", "inception"))
    lines = ["## Metric settings", "", f"- SSIM (per pair, aug vs real): {ssim_text}.",
             f"- FID (real set vs augmented set): {fid_text}; Inception weights: "
             f"{fid_set['inception'] or 'none (FID not computed)'}.",
             f"- Real reference: {settings['real_reference']}.",
             f"- Samples per run: {settings['max_samples_per_run'] or 'all'}."]
    if settings["classic"]:
        lines.append("- Classic rows: " + "; ".join(f"{k}: {v}" for k, v in settings["classic"].items()) + ".")
    lines += ["- ms/image and parameters of generative rows come from the build's manifest.json "
              "(timing measured by `genaug build` on its device); images/s (run) = samples / wall time "
              "from the stats files.", ""]
    return lines


def _pictures_section(report: Mapping) -> list[str]:
    pictures = report.get("pictures", {})
    lines = ["## Pictures", ""]
    if "ssim_histogram" in pictures:
        lines += [f"![SSIM histograms]({pictures['ssim_histogram']})", ""]
    for label, name in pictures.get("contact_sheets", {}).items():
        lines += [f"Best / median / worst pairs by SSIM, {label}:", "", f"![{label}]({name})", ""]
    if "throughput" in pictures:
        lines += [f"![Throughput per shard]({pictures['throughput']})", ""]
    return lines


def render_markdown(report: Mapping) -> str:
    lines = ["# genaug cost-benefit report", "",
             f"Inputs: {', '.join(report['inputs'])} (genaug {report['genaug_version']}).", "",
             "## Cost-benefit table (GenCL paper, Table 4)", "", markdown_table(report), ""]
    lines += _time_section(report) + _settings_section(report) + _pictures_section(report)
    notes = list(report["warnings"])
    if report["errors"]["count"]:
        notes.append(f"{report['errors']['count']} samples could not be read and were left out "
                     "(report.json lists the first 20).")
    if notes:
        lines += ["## Warnings", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
