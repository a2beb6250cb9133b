"""Process groups for sharded leaderboard runs: ``torchrun --nproc_per_node=N`` (gloo on CPU, nccl on GPU).

The leaderboard never starts processes itself: ``torchrun`` does, and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (torch.distributed's environment contract). A plain
``python`` / ``art-ssni`` call is a world of one process and needs no process group.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["World", "world"]

#: how long a rank waits for the others at the final merge (shards may finish hours apart)
MERGE_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` in ``0 .. size - 1``, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in a world of one)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out


@contextmanager
def world(device: str = "cpu") -> Iterator[World]:
    """This process's :class:`World`; initialises (and at exit destroys) the process group under ``torchrun``.

    An already initialised default process group is used as it is (and left alone). Otherwise, when
    ``WORLD_SIZE > 1`` the group is created with backend ``nccl`` for ``device="cuda"`` (each rank on
    ``cuda:LOCAL_RANK``) and ``gloo`` for ``"cpu"``.
    """
    if dist.is_available() and dist.is_initialized():
        yield World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
        return
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        yield World()
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed.")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    dist.init_process_group(backend=backend, timeout=MERGE_TIMEOUT)
    try:
        yield World(dist.get_rank(), dist.get_world_size(), local_rank)
    finally:
        dist.destroy_process_group()
