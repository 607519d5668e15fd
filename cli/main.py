"""`genaug` console script: a click group whose subcommands are imported only when used."""

from __future__ import annotations

import importlib
import logging

import click

from genaug import __version__

# subcommand name -> "module:attribute"; each module is one thin command
COMMANDS = {
    "build": "cli.build:build",
    "inspect": "cli.inspect:inspect",
    "models": "cli.models:models",
    "convert": "cli.convert:convert",
    "report": "cli.report:report",
    "finalize": "cli.finalize:finalize",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module on first use, so `genaug --help` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="genaug")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Precompute generative augmentations (GenCL) as paired WebDataset shards."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("genaug").setLevel(min(level, logging.INFO))


if __name__ == "__main__":
    main()
