"""`genaug report`: the cost-benefit table (FID, SSIM, ms/image, parameters) for genaug runs."""

from __future__ import annotations

from pathlib import Path

import click

from genaug.device import resolve_device
from genaug.errors import ConfigError
from genaug.report import fid
from genaug.report.reader import ReportInputError, discover
from genaug.report.report import REPORT_JSON, REPORT_MD, ReportOptions, generate_report
from genaug.report.tables import markdown_table


@click.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.json and the PNG pictures.")
@click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"FID Inception weights ({fid.FID_WEIGHTS_FILENAME}); default: torch hub's checkpoints folder.")
@click.option("--no-fid", is_flag=True, help="Skip FID (the FID column says 'not computed').")
@click.option("--no-classic", is_flag=True, help="Leave out the crop / colour jitter / blur rows.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="Pairs read per run folder, in shard order (default: all).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Pairs per SSIM / Inception batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the classic augmentations.")
def report(shards, out, inception_weights, no_fid, no_classic, max_samples, batch_size, device, seed) -> None:
    """Write the cost-benefit report of the genaug shards in SHARDS (build folders or .tar files)."""
    if no_fid and inception_weights is not None:
        raise click.UsageError("--no-fid and --inception-weights contradict each other; give one of them")
    options = _options(max_samples, batch_size, device, seed, not no_classic)
    try:
        discover(shards)  # shard paths are checked before the Inception is loaded
    except ReportInputError as err:
        raise click.BadParameter(str(err), param_hint="SHARDS") from err
    features, note = None, None
    if not no_fid:
        try:
            weights = fid.resolve_weights(inception_weights)
            features, note = fid.load_inception(weights, options.device), str(weights)
        except (fid.InceptionWeightsMissing, fid.InceptionWeightsInvalid) as err:
            raise click.BadParameter(str(err), param_hint="--inception-weights") from err
    try:
        result = generate_report(shards, out, options, features, note)
    except ReportInputError as err:  # e.g. no readable pair in the shards
        raise click.ClickException(str(err)) from err
    except OSError as err:  # the shards are read defensively; this is writing into --out
        raise click.ClickException(f"--out {out}: cannot write the report there ({err}); choose another "
                                   "folder") from err
    click.echo(markdown_table(result))
    for item in result["time"]:
        click.echo(item["sentence"])
    if result["warnings"]:
        click.echo(f"{len(result['warnings'])} warning(s): see report.md", err=True)
    click.echo(f"wrote {out / REPORT_MD}, {out / REPORT_JSON} and {len(_pngs(result))} pictures")


def _options(max_samples, batch_size, device, seed, classic) -> ReportOptions:
    """The report settings; a device that is not usable here is a usage error (exit 2), before any work."""
    try:
        resolved = str(resolve_device(device))
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--device") from err
    options = ReportOptions(max_samples=max_samples, batch_size=batch_size, device=resolved, seed=seed,
                            classic=classic)
    try:
        options.validate()
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    return options


def _pngs(result: dict) -> list[str]:
    pictures = result.get("pictures", {})
    return [v for k, v in pictures.items() if k != "contact_sheets"] + list(pictures.get("contact_sheets", {}).values())
