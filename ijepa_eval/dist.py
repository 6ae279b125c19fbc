"""torchrun awareness: which process am I, and a barrier that is a no-op alone.

Launch with ``torchrun --nproc_per_node N -m ijepa_eval …`` (NCCL on GPUs, gloo on CPU); a
plain ``python -m ijepa_eval …`` is a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            tdist.barrier()


def world() -> World:
    """The torchrun world from the environment, joining the process group on first use."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        tdist.init_process_group(backend=backend)
    return World(
        rank=tdist.get_rank(),
        size=tdist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
