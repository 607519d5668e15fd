"""`genaug` console script: a click group whose subcommands are imported only when used."""

from __future__ import annotations

import importlib
import logging

import click

from genaug import __version__
from genaug.stopping import Terminated, exit_code, sigterm_raises

# subcommand name -> ("module:attribute", one-line help for `genaug --help`); each module is one thin command
COMMANDS = {
    "build": ("genaug.cli.build:build", "Write paired real/augmented WebDataset shards for every input image."),
    "inspect": ("genaug.cli.inspect:inspect", "Summarise genaug shards: PATHS are shard files, run folders or "
                "brace patterns (e.g. out/shard-{0000..0009}.tar)."),
    "models": ("genaug.cli.models:models", "List model presets with their weight files, cache location and "
               "whether the files are present."),
    "convert": ("genaug.cli.convert:convert", "Convert official checkpoints (e.g. MaskGIT flax msgpack) to a "
                "torch file."),
    "report": ("genaug.cli.report:report", "Write the cost-benefit report of the genaug shards in SHARDS (build "
               "folders or .tar files)."),
    "finalize": ("genaug.cli.finalize:finalize", "Merge the shards of all ranks of a build (--rank/--world-size) "
                 "into one run: errors.jsonl, index.json and a complete manifest.json, as a single-process build "
                 "writes them."),
}


class LazyGroup(click.Group):
    """Imports a subcommand's module on first use; `genaug --help` lists the commands from COMMANDS
    without importing them (the build and the report import torch)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def invoke(self, ctx: click.Context):
        """SIGTERM raises Terminated like Ctrl-C raises KeyboardInterrupt; a stop that no command handled
        (e.g. during start-up, while torch loads) ends with one line and exit 130 (SIGINT) / 143 (SIGTERM),
        not click's "Aborted!" and exit 1."""
        try:
            with sigterm_raises():
                return super().invoke(ctx)
        except (KeyboardInterrupt, Terminated) as err:
            what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
            click.echo(f"\n{what}: stopped before the command finished", err=True)
            ctx.exit(exit_code(err))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name][0].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                text = click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)
            else:
                text = super().get_command(ctx, name).get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
