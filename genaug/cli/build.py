"""`genaug build`: a thin click command that turns its options into a BuildConfig and runs the build.

The options of every registered method (MethodSpec.options) become ``--name`` options, added when
the command is used, so methods registered later (plugins, tests) get theirs too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import click

from genaug.errors import ConfigError
from genaug.format import AUG_FORMATS
from genaug.registry import PRECISIONS, REGISTRY
from genaug.stopping import Terminated, exit_code

log = logging.getLogger(__name__)

OPTION_DEST = "method_option__"  # prefix of click destinations of method options


def _method_option(name: str, specs: list) -> click.Option:
    """One click option for a method option `name` declared by one or more methods."""
    methods = ", ".join(sorted(method for method, _ in specs))
    opt = specs[0][1]
    flag = "--" + name.replace("_", "-")
    help_text = f"[{methods}] {opt.help} (default {opt.default!r})."
    if opt.type is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", OPTION_DEST + name], default=None, help=help_text)
    ptype = click.Choice(list(opt.type)) if isinstance(opt.type, tuple) else opt.type
    return click.Option([flag, OPTION_DEST + name], type=ptype, default=None, help=help_text)


class BatchSize(click.ParamType):
    """--batch-size: auto or an integer (the range is checked with the other settings)."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "auto":
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither auto nor an integer", param, ctx)


class BuildCommand(click.Command):
    """Adds the registered methods' options at parse and help time, and keeps the raw arguments."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        taken = {p.name for p in params}
        declared: dict[str, list] = {}
        for spec in REGISTRY.methods():
            for opt in spec.options:
                declared.setdefault(opt.name, []).append((spec.name, opt))
        extra = []
        for name, specs in sorted(declared.items()):
            if name in taken:
                log.warning("method option %r clashes with a build option; it cannot be set", name)
                continue
            extra.append(_method_option(name, specs))
        return params[:-1] + extra + params[-1:]  # keep --help last

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["genaug_build_args"] = list(args)
        return super().parse_args(ctx, args)


class TqdmProgress:
    """Progress bar on stderr: images/s and ETA."""

    def __init__(self) -> None:
        self.bar = None

    def start(self, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="img", desc="build", dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    def set_total(self, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _method_options(method: str, values: dict) -> dict:
    """The method options given on the command line; error for options of other methods."""
    given = {k[len(OPTION_DEST):]: v for k, v in values.items() if k.startswith(OPTION_DEST) and v is not None}
    try:
        spec = REGISTRY.method(method)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--method") from err
    foreign = sorted(set(given) - {o.name for o in spec.options})
    if foreign:
        flags = ", ".join("--" + n.replace("_", "-") for n in foreign)
        owners = sorted({m.name for m in REGISTRY.methods() for o in m.options if o.name in foreign})
        raise click.UsageError(f"{flags}: option(s) of method {owners}, not of --method {method}; drop them "
                               f"or choose that method")
    return given


@contextlib.contextmanager
def _quiet_logs(quiet: bool):
    """--quiet: only warnings and errors from the library while the build runs."""
    logger = logging.getLogger("genaug")
    previous = logger.level
    if quiet:
        logger.setLevel(max(previous, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def _logs_above_bar(active: bool):
    """Route log records through tqdm while a bar is shown, so lines do not break it."""
    if not active:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield


def without_rank_flags(args: list[str]) -> list[str]:
    """The build arguments minus --rank/--world-size: the command recorded in manifest.json is the same
    for every rank, and rerunning it (with any number of processes) completes the build."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--rank", "--world-size"):
            skip = True
        elif not arg.startswith(("--rank=", "--world-size=")):
            kept.append(arg)
    return kept


@contextlib.contextmanager
def _rank_prefix(ranks):
    """Prefix log lines with the rank when several processes share a terminal (torchrun, srun)."""
    if not ranks.distributed:
        yield
        return
    prefix = logging.Formatter(f"[rank {ranks.rank}/{ranks.world_size}] %(levelname)s %(name)s: %(message)s")
    handlers = list(logging.getLogger().handlers)
    previous = [h.formatter for h in handlers]
    for handler in handlers:
        handler.setFormatter(prefix)
    try:
        yield
    finally:
        for handler, formatter in zip(handlers, previous, strict=True):
            handler.setFormatter(formatter)


def _run(config, ranks, progress):
    """One process's build: the whole of it, or one rank's share (genaug.build.distributed)."""
    if not ranks.distributed:
        from genaug.build.pipeline import run_build

        return run_build(config, progress=progress)
    from genaug.build.distributed import run_rank

    return run_rank(config, ranks, progress=progress)


@click.command(cls=BuildCommand)
@click.option("--method", required=True, metavar="METHOD", help="Augmentation method: mask (MaskGIT) or noise (IC-GAN).")
@click.option("--preset", default=None, help="Model preset (see `genaug models`); default: the method's default.")
@click.option("--data", multiple=True, metavar="PATH",
              help="Image folder, ImageNet-style class folders, path[,label] list file, or WebDataset shards "
                   "(brace pattern; repeat for several). Default: $GENAUG_DATA, else the bundled sample photos.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--batch-size", default="auto", show_default=True, type=BatchSize(),
              help="Images per editor call, or auto: whole compute chunks (8 per CPU core, 40 on CUDA).")
@click.option("--num-workers", default=min(4, os.cpu_count() or 1), show_default=True, type=int,
              help="Decode/encode worker processes (0: everything in-process).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(PRECISIONS),
              help="Model precision (auto: bf16 where faithful on CUDA, fp32 on CPU).")
@click.option("--decode-device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda", "auto"]),
              help="Where JPEG inputs are decoded and resized: cpu (PIL in the workers), cuda (torchvision, batched "
                   "on the GPU; other pixels than PIL's by a few levels), auto (cuda when the GPU has under 16 CPU "
                   "cores).")
@click.option("--limit", default=None, type=int, help="Process only the first N inputs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Run seed (per-sample seeds derive from it).")
@click.option("--shard-size", default=1000, show_default=True, type=int, help="Inputs per shard.")
@click.option("--aug-format", default="jpg", show_default=True, type=click.Choice(AUG_FORMATS),
              help="Encoding of the augmented image.")
@click.option("--quality", default=95, show_default=True, type=int, help="JPEG/WebP quality (1-100).")
@click.option("--weights", default=None, type=click.Path(path_type=Path),
              help="Weight file or folder overriding the preset's cached files.")
@click.option("--overwrite", is_flag=True, help="Replace the build already in --out (otherwise it is resumed).")
@click.option("--scores", default="", metavar="NAMES", help="Per-sample scores stored in each json, e.g. ssim.")
@click.option("--quiet", is_flag=True, help="No progress bar, no summary, only warnings and errors in the log.")
@click.option("--rank", default=None, type=int,
              help="This process's rank in a build split over --world-size processes (job arrays); torchrun and "
                   "srun set it themselves.")
@click.option("--world-size", default=None, type=int, help="Number of processes sharing the build (with --rank).")
def build(method, preset, data, out, batch_size, num_workers, device, precision, decode_device, limit, seed, shard_size,
          aug_format, quality, weights, overwrite, scores, quiet, rank, world_size, **method_values):
    """Write paired real/augmented WebDataset shards for every input image.

    Rerunning the same command resumes: complete shards are kept and the rest is rebuilt. Under torchrun
    or srun, or with --rank/--world-size, each process builds its share of the shards (docs/build.md).
    """
    from genaug.build.config import BuildConfig  # here: the build imports torch, --help does not need it
    from genaug.build.pipeline import BuildError
    from genaug.build.ranks import detect_ranks

    ctx = click.get_current_context()
    try:
        ranks = detect_ranks(rank, world_size)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    config = BuildConfig(
        method=method, out=out, data=tuple(data) or None, preset=preset,
        options=_method_options(method, method_values), batch_size=batch_size, num_workers=num_workers,
        device=device, precision=precision, decode_device=decode_device, limit=limit, seed=seed, shard_size=shard_size,
        aug_format=aug_format, quality=quality, weights=weights, overwrite=overwrite,
        scores=tuple(s.strip() for s in scores.split(",") if s.strip()),
        command=("genaug", "build", *without_rank_flags(ctx.meta.get("genaug_build_args", []))),
    )
    show_bar = not quiet and sys.stderr.isatty() and ranks.rank == 0
    progress = TqdmProgress() if show_bar else None
    try:
        with _quiet_logs(quiet), _logs_above_bar(progress is not None), _rank_prefix(ranks):
            summary = _run(config, ranks, progress)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    except BuildError as err:
        raise click.ClickException(f"{err}\nCompleted shards are valid; rerun the same command to resume.") from err
    except (KeyboardInterrupt, Terminated) as err:  # Ctrl-C, or SIGTERM (e.g. SLURM ending the job)
        if progress is not None:
            progress.close()
            progress = None
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        click.echo(f"\n{what}: completed shards in {out} are kept, the shard in progress was dropped; rerun the "
                   "same command to resume the build.", err=True)
        sys.exit(exit_code(err))
    finally:
        if progress is not None:
            progress.close()
    whole = not ranks.distributed or (ranks.meets and ranks.rank == 0)  # the summary covers every shard
    if not quiet:
        who = ""
        if ranks.distributed:
            who = f"rank {ranks.rank} of {ranks.world_size} ({'whole build' if whole else 'its own shards'}): "
        empty = f", {summary.empty_shards} empty (every input skipped)" if summary.empty_shards else ""
        click.echo(
            f"{who}{summary.samples} pairs written, {summary.errors} inputs skipped (see errors.jsonl), "
            f"{summary.shards} shards ({summary.shards_resumed} resumed{empty}) in {summary.out}; "
            f"{summary.wall_s:.1f} s, {summary.images_per_s:.1f} images/s"
        )
    if whole and summary.samples == 0 and summary.errors > 0:
        raise click.ClickException(
            f"no pairs written: all {summary.errors} inputs were skipped; their reasons are in "
            f"{summary.out}/errors.jsonl"
        )
