"""Which process of a multi-process job this is, from the launcher's environment.

    env = process_env()      # ProcessEnv(rank=0, world=1, local_rank=0, local_world=1) alone

torchrun, the `deepspeed` launcher and SLURM+torchrun all export RANK, WORLD_SIZE, LOCAL_RANK and
LOCAL_WORLD_SIZE (the `deepspeed` launcher's --local_rank argument is moved to LOCAL_RANK by
`cli.main`). Extraction and training read them here, the same way.
"""
from __future__ import annotations

import os
from typing import NamedTuple


class ProcessEnv(NamedTuple):
    rank: int
    world: int
    local_rank: int
    local_world: int


def process_env() -> ProcessEnv:
    """This process's place in the job (a lone process when no launcher set WORLD_SIZE)."""
    env = os.environ
    if "WORLD_SIZE" not in env:
        return ProcessEnv(0, 1, int(env.get("LOCAL_RANK", 0)), 1)
    world, rank = int(env["WORLD_SIZE"]), int(env.get("RANK", 0))
    return ProcessEnv(rank, world, int(env.get("LOCAL_RANK", rank)),
                      int(env.get("LOCAL_WORLD_SIZE", world)))
