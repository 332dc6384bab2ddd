"""Data-parallel training on CPU (gloo) or CUDA (NCCL): joining the process group set up by
torchrun or ``--nproc``, and the few collective operations the loop needs."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vcfnet.models.artifact import state_dict_hash

log = logging.getLogger(__name__)


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def all_reduce_sum(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    if not dist.enabled:
        return t
    import torch.distributed as tdist

    t = t.clone()
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t


def init_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun (or ``--nproc``) set up through RANK/WORLD_SIZE env vars."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if device.type == "cpu":  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return Dist(rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local_rank)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def average_buffers(model: nn.Module, dist: Dist) -> None:
    """Average batch-norm running statistics over ranks (each rank saw its own shard)."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    for buf in model.buffers():
        if buf.is_floating_point():
            tdist.all_reduce(buf, op=tdist.ReduceOp.SUM)
            buf.div_(dist.world_size)


def check_ranks_agree(model: nn.Module, dist: Dist) -> None:
    """DDP keeps replicas identical; verify it with the weights' content hash on every rank."""
    import torch.distributed as tdist

    hashes: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(hashes, state_dict_hash(model.state_dict()))
    if len(set(hashes)) != 1:
        raise RuntimeError(f"DDP replicas diverged: weight hashes per rank {hashes}")
    log.info("all %d ranks hold identical weights (hash %s)", dist.world_size, hashes[0][:12])


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()
