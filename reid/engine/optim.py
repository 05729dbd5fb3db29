"""Optimisers and learning-rate schedules, by name (``optim.name``, ``sched.name``).

Adding an optimiser or a schedule is one function plus one registration line. The video trainer
and the classification study both build their optimisation from here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch

from reid.registry import Registry

if TYPE_CHECKING:  # annotations only: the schema module imports this one's registries
    from reid.engine.config import OptimConfig, SchedConfig

# name -> builder(param_groups, cfg: OptimConfig) -> torch.optim.Optimizer
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
# name -> decay(progress_epochs, cfg: SchedConfig, total_epochs) -> multiplier of the peak rate
SCHEDULES: Registry[Callable[..., float]] = Registry("learning-rate schedule")


def impl_kwargs(cfg: OptimConfig) -> dict:
    """torch.optim's keyword arguments for ``optim.impl``.

    ``auto``: none (torch picks: the per-tensor loop on CPU, ``foreach`` on CUDA; what every run
    before this key did). ``loop`` / ``foreach``: forced; on CPU ``foreach`` gives the loop's
    parameters bit for bit and is not faster (torch's CPU foreach kernels loop over the tensors).
    ``fused`` (the default since issue 14): one kernel per parameter doing the whole update;
    measured on 2 CPU cores (ResNet-18, 11.2 M parameters) Adam's step took ~1/3 of the loop's
    time; it rounds differently from the loop (parameters differ by ~1e-5 after 5 steps)."""
    return {"auto": {}, "loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[cfg.impl]


@OPTIMIZERS.register("adam")
def _adam(groups, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, **impl_kwargs(cfg))


@OPTIMIZERS.register("adamw")
def _adamw(groups, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, **impl_kwargs(cfg))


@OPTIMIZERS.register("sgd")
def _sgd(groups, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, **impl_kwargs(cfg))


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    """``optim.name`` over two parameter groups. Biases and normalisation parameters (tensors
    with ``ndim <= 1``) get no weight decay (the usual ReID strong-baseline practice: decaying BN
    scales only fights the normalisation)."""
    params = [p for p in params if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return OPTIMIZERS.get(cfg.name, key="optim.name")(groups, cfg)


@SCHEDULES.register("constant")
def _constant(progress: float, cfg: SchedConfig, total_epochs: float) -> float:
    return 1.0


@SCHEDULES.register("step")
def _step(progress: float, cfg: SchedConfig, total_epochs: float) -> float:
    """``gamma ** (number of milestones <= t)``."""
    return cfg.gamma ** sum(1 for m in cfg.milestones if progress >= m)


@SCHEDULES.register("cosine")
def _cosine(progress: float, cfg: SchedConfig, total_epochs: float) -> float:
    """``m + (1 - m) * (1 + cos(pi * (t - t_w) / (E - t_w))) / 2`` with ``m = min_lr_factor``
    (cosine annealing without restarts, Loshchilov & Hutter 2017), starting after the warm-up."""
    span = max(total_epochs - cfg.warmup_epochs, 1e-12)
    t = min(max(progress - cfg.warmup_epochs, 0.0) / span, 1.0)
    return cfg.min_lr_factor + (1.0 - cfg.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


def lr_factor(progress: float, cfg: SchedConfig, total_epochs: float) -> float:
    """Multiplier of the peak learning rate at ``progress`` epochs into training: the linear
    warm-up factor ``f_w = warmup_factor + (1 - warmup_factor) * t / t_w`` (for ``t < t_w``, else 1)
    times the decay of ``sched.name``."""
    warm = 1.0
    if cfg.warmup_epochs > 0 and progress < cfg.warmup_epochs:
        warm = cfg.warmup_factor + (1.0 - cfg.warmup_factor) * progress / cfg.warmup_epochs
    return warm * SCHEDULES.get(cfg.name, key="sched.name")(progress, cfg, total_epochs)


def build_scheduler(
    cfg: SchedConfig, optimizer: torch.optim.Optimizer, total_epochs: int, iters_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` over :func:`lr_factor`. The loop calls ``scheduler.step()`` after every
    optimiser step (``interval: iteration``, progress = step / iters_per_epoch) or once per epoch
    (``interval: epoch``, progress = whole epochs). Its state dict is plain ints/floats."""
    per_epoch = cfg.interval == "epoch"

    def factor(count: int) -> float:
        progress = float(count) if per_epoch else count / max(iters_per_epoch, 1)
        return lr_factor(progress, cfg, total_epochs)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "impl_kwargs", "lr_factor", "build_scheduler"]
