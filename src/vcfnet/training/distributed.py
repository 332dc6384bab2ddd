"""Data-parallel training on CPU (gloo) or CUDA (NCCL): starting the ranks (``--nproc``) or
joining the process group torchrun set up, and the few collective operations the loops need
(``vcfnet train`` and ``vcfnet train-localiser``)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from vcfnet.models.artifact import state_dict_hash

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT")
T = TypeVar("T")


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


def rank_share(batch: Sequence[T] | np.ndarray, dist: Dist) -> Sequence[T] | np.ndarray:
    """This rank's part of a batch every rank drew alike (same seed): every ``world_size``-th item
    from position ``rank``. The parts are disjoint, together are the batch, and differ in size by
    at most one; a single process gets the whole batch."""
    return batch[dist.rank :: dist.world_size]


def rank_stream(shared: np.random.Generator, seed: list[int], dist: Dist) -> np.random.Generator:
    """Where a rank draws its share's augmentation: ``shared`` itself in a single process (so a
    run without DDP draws exactly as before), else a stream of its own seeded ``[*seed, 1 + rank]``."""
    return np.random.default_rng([*seed, 1 + dist.rank]) if dist.enabled else shared


def data_parallel(model: nn.Module, dist: Dist, device: torch.device | None = None) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when distributed (gradients averaged over the
    ranks in backward), else ``model`` itself."""
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    cuda = device is not None and device.type == "cuda"
    return DistributedDataParallel(model, device_ids=[device.index] if cuda else None)


def all_gather_list(items: list[T], dist: Dist) -> list[T]:
    """Every rank's ``items`` concatenated in rank order, on every rank (picklable items)."""
    if not dist.enabled:
        return list(items)
    import torch.distributed as tdist

    parts: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]


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


def under_launcher() -> bool:
    """True in a process torchrun (or :func:`run_ranks`) started as one rank of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """True unless torchrun (or :func:`run_ranks`) started this process as a rank other than 0:
    the one process that reports to the user."""
    return int(os.environ.get("RANK", "0")) == 0


def will_spawn(nproc: int) -> bool:
    """True when :func:`run_ranks` with ``nproc`` starts processes (not already under torchrun)."""
    return nproc > 1 and not under_launcher()


def run_ranks(worker: Callable[[ConfigT], None], cfg: ConfigT, nproc: int) -> None:
    """``worker(cfg)`` in ``nproc`` local processes that find each other through torchrun's env
    vars (``worker`` calls :func:`init_distributed`); in this process when ``nproc`` is 1 or when
    torchrun already started this one as a rank. ``worker`` must be a module-level function."""
    if will_spawn(nproc):
        import torch.multiprocessing as mp

        mp.spawn(_spawned_rank, args=(worker, cfg, free_port(), nproc), nprocs=nproc, join=True)
        return
    if nproc > 1:
        log.warning("already launched by torchrun (WORLD_SIZE set); ignoring --nproc %d", nproc)
    worker(cfg)


def _spawned_rank(
    local_rank: int, worker: Callable[[ConfigT], None], cfg: ConfigT, port: int, nproc: int
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
    )
    worker(cfg)


def destroy_distributed(dist: Dist) -> None:
    """Leave the process group :func:`init_distributed` joined (no-op for a single process)."""
    if dist.enabled:
        import torch.distributed as tdist

        tdist.destroy_process_group()


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
