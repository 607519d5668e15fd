"""DDP setup for the training and evaluation entry points: torchrun's environment, or one process.

Under ``torchrun`` ($WORLD_SIZE > 1) the process group is initialised (NCCL on CUDA, gloo on CPU), each
process takes GPU $LOCAL_RANK when CUDA is used, and the loader splits shards by the same rank.
"""

from __future__ import annotations

import dataclasses
import os

import torch


@dataclasses.dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> Dist:
    """Initialise torch.distributed when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    wants_cuda = device.startswith("cuda")
    if wants_cuda and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use --device cpu")
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", 0))
        if wants_cuda:
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if wants_cuda else "gloo")
        return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(), torch.device(device))
    return Dist(0, 1, torch.device(device))


def teardown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
