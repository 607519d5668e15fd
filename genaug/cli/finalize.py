"""`genaug finalize OUT`: write the run files of a build whose ranks never met (job arrays)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No summary.")
def finalize(out: Path, quiet: bool) -> None:
    """Merge the shards of all ranks of a build (--rank/--world-size) into one run: errors.jsonl,
    index.json and a complete manifest.json, as a single-process build writes them.

    Run it once every rank has ended; it names the shards (and ranks) still missing otherwise.
    """
    from genaug.build.finalize import finalize as merge  # here: the build imports torch, --help does not
    from genaug.build.pipeline import BuildError
    from genaug.errors import ConfigError

    try:
        summary = merge(out)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    except BuildError as err:
        raise click.ClickException(str(err)) from err
    if not quiet:
        click.echo(f"{summary.samples} pairs, {summary.errors} inputs skipped (see errors.jsonl), "
                   f"{summary.shards} shards in {summary.out}; the build is complete")
