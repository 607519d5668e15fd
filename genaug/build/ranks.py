"""Which part of a build this process does: rank, world size and local rank, from the launcher.

Looked up once, before any work, in this order:

1. torchrun (torch.distributed.run) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
2. SLURM's ``srun`` sets ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID``;
3. ``--rank R --world-size W`` (job arrays, any other scheduler).

The flags override a launcher that says "one process" (a job-array task is a one-task SLURM job);
flags that disagree with a launcher running several processes are an error. Ranks started by
torchrun or srun *meet* (they finish together and rank 0 writes the run files); ranks given by
flags never meet and `genaug finalize OUT` writes the run files once they are all done.

Work split: chunk (= shard) i belongs to rank ``i % world_size``. See docs/build.md for why.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping

from genaug.errors import ConfigError

TORCHRUN = "torchrun"
SLURM = "slurm"
FLAGS = "flags"
SINGLE = "single"
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_SLURM_VARS = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place in a build spread over `world_size` processes."""

    rank: int  # 0 .. world_size - 1
    world_size: int  # number of processes sharing the build
    local_rank: int  # index among the processes on this machine (picks the GPU)
    launcher: str  # "torchrun" | "slurm" | "flags" | "single"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def meets(self) -> bool:
        """The ranks run at the same time and can wait for each other (torchrun, srun)."""
        return self.distributed and self.launcher in (TORCHRUN, SLURM)

    def owns(self, chunk: int) -> bool:
        """Whether input chunk (= shard) `chunk` is this rank's to build."""
        return chunk % self.world_size == self.rank

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world_size} ({self.launcher})"


def _env_int(environ: Mapping[str, str], name: str, low: int) -> int:
    raw = environ[name]
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low:
        raise ConfigError(f"${name}={raw!r}: must be an integer >= {low}; the launcher sets it, so check how "
                          "genaug was started (torchrun, srun) or unset it")
    return value


def _from_env(environ: Mapping[str, str]) -> Ranks | None:
    """Ranks from torchrun's or SLURM's variables; None when neither set them."""
    for launcher, (rank_var, world_var, local_var) in ((TORCHRUN, _TORCHRUN_VARS), (SLURM, _SLURM_VARS)):
        if rank_var in environ and world_var in environ:
            rank, world = _env_int(environ, rank_var, 0), _env_int(environ, world_var, 1)
            local = _env_int(environ, local_var, 0) if local_var in environ else 0
            if rank >= world:
                raise ConfigError(f"${rank_var}={rank} is not below ${world_var}={world}; check the launcher")
            return Ranks(rank, world, local, launcher)
    return None


def detect_ranks(rank: int | None = None, world_size: int | None = None,
                 environ: Mapping[str, str] | None = None) -> Ranks:
    """This process's Ranks from the launcher's variables and the --rank/--world-size flags."""
    environ = os.environ if environ is None else environ
    if (rank is None) != (world_size is None):
        raise ConfigError("--rank and --world-size go together: give both (e.g. --rank 0 --world-size 4) or neither")
    from_env = _from_env(environ)
    if rank is None:
        return from_env or Ranks(0, 1, 0, SINGLE)
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ConfigError(f"--world-size {world_size!r}: must be an integer >= 1")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ConfigError(f"--rank {rank!r}: must be an integer between 0 and --world-size - 1 ({world_size - 1})")
    if from_env is not None and from_env.distributed:
        if (from_env.rank, from_env.world_size) == (rank, world_size):
            return from_env
        raise ConfigError(
            f"--rank {rank} --world-size {world_size} disagree with {from_env.launcher}, which started this as "
            f"rank {from_env.rank} of {from_env.world_size}; drop --rank/--world-size under {from_env.launcher}"
        )
    return Ranks(rank, world_size, 0, FLAGS if world_size > 1 else SINGLE)


def rank_device(device: str, ranks: Ranks) -> str:
    """The device a rank uses: ``auto``/``cuda`` become ``cuda:LOCAL_RANK`` when CUDA is there and
    several ranks share the build, or ``cuda:0`` when the process sees a single GPU (the launcher bound
    one GPU to each task, e.g. ``srun --gpus-per-task 1``); anything else is kept (and checked later)."""
    if not ranks.distributed or device not in ("auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    count = torch.cuda.device_count()
    if count == 1:
        return "cuda:0"
    if ranks.local_rank >= count:
        raise ConfigError(
            f"--device {device}: local rank {ranks.local_rank} needs cuda:{ranks.local_rank}, but this machine has "
            f"{count} CUDA device(s); start at most {count} processes per machine (torchrun --nproc-per-node, "
            "srun --ntasks-per-node)"
        )
    return f"cuda:{ranks.local_rank}"
