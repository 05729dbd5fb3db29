"""Distributed data parallel helpers (``torchrun``): gloo on CPU, nccl on CUDA.

Design (documented in the README's training section):

* every rank builds the same model from the same seed; DDP broadcasts rank 0's parameters anyway;
* the PK sampler shards *identities* across ranks (``PKSampler(rank=, world_size=)``), so ranks see
  disjoint identities within an epoch and the per-rank batch keeps its P x K structure (ranking
  losses need positives inside the local batch);
* every rank runs the same number of iterations per epoch (the minimum over ranks), otherwise the
  gradient all-reduce would hang;
* evaluation runs on **rank 0 only, over the full test set** (the other ranks wait at a barrier):
  retrieval needs the whole gallery in one place, and the test set of a video benchmark is small
  next to the training cost, so gathering sharded features would buy little;
* logging, TensorBoard, ``metrics.jsonl``, checkpoints and ``final.json`` are written by rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1), else no-op."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_min(value: int, info: DistInfo, device: torch.device) -> int:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (so every rank takes the same branch)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank (e.g. the timestamped output directory)."""
    if not info.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistInfo", "init_distributed", "barrier", "all_reduce_min", "any_rank", "broadcast_object", "cleanup"]
