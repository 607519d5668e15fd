"""`genaug convert`: turn a preset's official checkpoints into a torch state dict for fast loads."""

from __future__ import annotations

from pathlib import Path

import click

from genaug import weights
from genaug.build.editor import WEIGHT_LOAD_ERRORS
from genaug.checkpoint import reason as load_error_reason
from genaug.registry import REGISTRY


@click.command()
@click.option("--preset", required=True, help="Preset to convert (see `genaug models`), e.g. maskgit-imagenet256.")
@click.option("--weights", "weights_path", type=click.Path(path_type=Path), default=None,
              help="Folder holding the official files (default: the cache, downloading what is missing).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Output file (default: <cache>/<preset>/converted.pt, which builds then use automatically).")
@click.option("--no-download", is_flag=True, help="Fail instead of downloading missing files (also: GENAUG_OFFLINE=1).")
def convert(preset: str, weights_path: Path | None, out: Path | None, no_download: bool) -> None:
    """Convert official checkpoints (e.g. MaskGIT flax msgpack) to a torch file."""
    try:
        spec = REGISTRY.preset(preset)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--preset") from err
    if preset not in weights.CONVERTERS:
        raise click.BadParameter(
            f"preset {preset!r} has no converter; convertible presets: {sorted(weights.CONVERTERS)}",
            param_hint="--preset",
        )
    target = out if out is not None else weights.converted_path(spec)
    if out is not None and out.exists() and out.is_dir():
        raise click.BadParameter(f"{out} is a folder; give a file name", param_hint="--out")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(f"cannot create {target.parent} ({err.strerror}); choose a writable place",
                                 param_hint="--out") from err
    try:
        resolved = weights.resolve(spec, weights_path, download=False if no_download else None, use_converted=False)
    except weights.WeightsError as err:
        raise click.ClickException(str(err)) from err
    try:
        weights.CONVERTERS[preset](resolved.paths, target)
    except (ValueError, *WEIGHT_LOAD_ERRORS) as err:  # damaged or wrong official files
        files = ", ".join(str(p) for p in resolved.paths.values())
        todo = ("check --weights" if weights_path is not None else
                "delete the damaged file(s) and rerun to download them again")
        raise click.ClickException(f"preset {preset!r}: cannot convert {files}: {load_error_reason(err)}. "
                                   f"The file may be corrupt or incomplete; {todo}.") from err
    sha = weights.sha256_file(target)
    click.echo(f"wrote {target}  sha256 {sha}")
    for name, value in sorted(resolved.sha256.items()):
        click.echo(f"  from {name}  sha256 {value}")
