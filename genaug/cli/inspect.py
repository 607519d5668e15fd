"""`genaug inspect`: summarise, verify and preview genaug shards (prints what genaug.inspect returns)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from genaug.contact_sheet import SHEET_FORMATS, sheet_format, write_contact_sheet
from genaug.inspect import InspectError, inspect_shards, resolve_shards

MAX_PROBLEMS_SHOWN = 50  # the rest are counted (all of them are in --json output)


def _counts(counter: dict) -> str:
    return ", ".join(f"{k} ({v})" for k, v in counter.items()) or "-"


def _shard_lines(report: dict) -> list[str]:
    labels = report["labels"]
    label_text = (f"{labels['labelled']} labelled, {labels['classes']} class(es), {labels['min']}..{labels['max']}"
                  if labels["labelled"] else "unlabelled")
    side = report["orig_short_side"]
    lines = [
        f"{Path(report['shard']).name}: {report['nsamples']} samples; fields "
        + " ".join(f"{k}:{v}" for k, v in report["fields"].items()),
        f"  method {_counts(report['methods'])}; preset {_counts(report['presets'])}",
        f"  aug size {_counts(report['aug_sizes'])}; real short side "
        + (f"{side['min']}-{side['max']} px" if side else "-"),
        f"  labels: {label_text}",
    ]
    if not report["genaug"]:
        lines.append("  not genaug shards (no json/aug members): only fields and labels are summarised")
    stats = report["stats"]
    if stats is None:
        lines.append("  stats file: none (the shard is not marked done)")
    else:
        speed = f", {stats['images_per_s']:.1f} img/s" if isinstance(stats.get("images_per_s"), (int, float)) else ""
        lines.append(f"  stats file: {stats.get('nsamples')} samples, {stats.get('nerrors')} skipped inputs{speed}"
                     f" on {stats.get('device', '?')} ({stats.get('device_name', '?')})")
    errors = report["errors"]
    if errors["count"]:
        lines.append(f"  errors.jsonl: {errors['count']} skipped ({_counts(errors['reasons'])})")
    return lines


def _score_lines(scores: dict) -> list[str]:
    return [f"  {name}: mean {s['mean']:.4f}, median {s['median']:.4f} (n={s['n']})" for name, s in scores.items()]


def _print_report(result: dict) -> None:
    for report in result["shards"]:
        for line in _shard_lines(report):
            click.echo(line)
    for build in result["builds"]:
        click.echo(f"run folder {build['folder']}: {build['summary']}")
    totals = result["totals"]
    click.echo(f"total: {totals['shards']} shards, {totals['nsamples']} samples; method {_counts(totals['methods'])};"
               f" preset {_counts(totals['presets'])}")
    click.echo(f"skipped inputs recorded in errors.jsonl: {totals['errors_recorded']}"
               + (f" ({_counts(totals['error_reasons'])})" if totals["error_reasons"] else ""))
    if totals["scores"]:
        click.echo("scores:")
        for line in _score_lines(totals["scores"]):
            click.echo(line)
    problems = result["problems"]
    if result["verified"] and not problems:
        click.echo("verify: OK (every image decodes; pairs, json, labels and stats files check out)")
    elif problems:
        click.echo(f"{len(problems)} problem(s):")
        for problem in problems[:MAX_PROBLEMS_SHOWN]:
            click.echo(f"  {problem}")
        if len(problems) > MAX_PROBLEMS_SHOWN:
            click.echo(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more (see --json)")


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--verify", is_flag=True, help="Decode every image, check every pair, json, label and stats file; "
              "exit 1 on any problem.")
@click.option("--grid", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a contact sheet of real|aug pairs (real cropped as the model saw it, columns labelled "
              "real and aug, keys wrapped under each pair); the format "
              f"follows the extension: {', '.join(SHEET_FORMATS)}.")
@click.option("--n", "n_pairs", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="Number of pairs in the --grid sheet.")
@click.option("--tile", type=click.IntRange(8, 1024), default=None,
              help="Side of each image in the --grid sheet, in pixels (default: the aug image size).")
@click.option("--captions/--no-captions", default=True, show_default=True, help="Keys under the --grid pairs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
def inspect(paths: tuple[str, ...], verify: bool, grid: Path | None, n_pairs: int, tile: int | None,
            captions: bool, as_json: bool) -> None:
    """Summarise genaug shards: PATHS are shard files, run folders or brace patterns
    (e.g. out/shard-{0000..0009}.tar)."""
    if grid is not None:
        try:
            sheet_format(grid)  # before any work
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--grid") from err
    try:
        shards = resolve_shards(paths)
    except InspectError as err:
        raise click.BadParameter(str(err), param_hint="PATHS") from err
    result = inspect_shards(list(paths), verify=verify)  # also reports a build that wrote no shard yet
    if grid is not None:
        try:
            result["grid"] = write_contact_sheet(shards, grid, n=n_pairs, tile=tile, captions=captions, labels=True)
        except (ValueError, OSError) as err:
            result["problems"].append(f"--grid: {err}")
    if as_json:
        click.echo(json.dumps(result, indent=1, sort_keys=True))
    else:
        _print_report(result)
        if "grid" in result:
            g = result["grid"]
            click.echo(f"wrote {g['path']}: {g['pairs']} pairs, {g['size'][0]}x{g['size'][1]} px")
    if result["problems"]:
        sys.exit(1)
