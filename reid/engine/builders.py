"""Config -> objects: data, model, losses, optimiser, learning-rate schedule, training loader.

Each builder takes the typed config section it needs, so a researcher can reuse them outside the
trainer (e.g. ``build_model(cfg.model, n)`` in a notebook). Library parts are imported lazily so
``reid.engine.config`` stays importable (and ``tools/train.py --help`` fast) on its own.
"""

from __future__ import annotations

import importlib
import math
import random
from typing import Any, Callable

import numpy as np
import torch

from reid.engine.config import (
    Config,
    DataConfig,
    IdLossConfig,
    MetricLossConfig,
    OptimConfig,
    SchedConfig,
)

# metric-loss name in the config -> name in the reid.losses registry
METRIC_LOSSES = {
    "triplet": "batch_hard_triplet",
    "rll": "ranked_list",
    "ice": "instance_ce",
}


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def build_data(cfg: DataConfig, progress: bool = True):
    """``reid.data.build.build_data`` with the config's reader, protocol and synthetic parameters
    (``root: null`` = the embedded synthetic dataset, generated once)."""
    from reid.data.build import build_data as _build_data

    return _build_data(
        root=cfg.root,
        fmt=cfg.format,
        protocol=cfg.protocol,
        validate=cfg.validate_index,
        check_files=cfg.check_files,
        corrupt=cfg.corrupt,
        synthetic_params=cfg.synthetic,
        progress=progress,
    )


def build_train_dataset(cfg: DataConfig, tracklets, seed: int):
    from reid.data.datasets import TrainClipDataset
    from reid.data.sampling import ClipSampler
    from reid.data.transforms import build_clip_transform

    clip_sampler = ClipSampler(mode=cfg.clip_mode, length=cfg.clip_length, stride=cfg.clip_stride)
    transform = build_clip_transform(True, cfg.height, cfg.width, **cfg.augment)
    return TrainClipDataset(tracklets, clip_sampler, transform, seed=seed, corrupt=cfg.corrupt)


def build_test_transform(cfg: DataConfig):
    from reid.data.transforms import build_clip_transform

    return build_clip_transform(False, cfg.height, cfg.width)


# ---------------------------------------------------------------------------------------------
# model and losses
# ---------------------------------------------------------------------------------------------


def build_model(cfg: Config, num_classes: int) -> torch.nn.Module:
    from reid.models import build_model as _build_model

    return _build_model(cfg.model, num_classes)


def build_id_loss(cfg: IdLossConfig, num_classes: int) -> torch.nn.Module:
    """Weighted CE under ``scheme`` (``reid.losses.WeightedCrossEntropyLoss``) or ProSelfLC.
    Errors name the ``loss.id`` keys."""
    from reid.losses import build_loss

    try:
        if cfg.scheme == "proselflc":
            return build_loss("proselflc", num_classes=num_classes, normalize=cfg.normalize, **cfg.params)
        return build_loss("weighted_ce", scheme=cfg.scheme, normalize=cfg.normalize,
                          label_smoothing=cfg.label_smoothing, **cfg.params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"loss.id (scheme={cfg.scheme!r}, params={cfg.params}): {exc}") from exc


def build_metric_loss(cfg: MetricLossConfig) -> torch.nn.Module | None:
    """Ranking loss on embeddings (PML contract ``loss(embeddings, labels)``), or None."""
    if cfg.name == "none" or cfg.weight == 0:
        return None
    from reid.losses import build_loss

    try:
        return build_loss(METRIC_LOSSES[cfg.name], **cfg.params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"loss.metric (name={cfg.name!r}, params={cfg.params}): {exc}") from exc


# ---------------------------------------------------------------------------------------------
# optimisation
# ---------------------------------------------------------------------------------------------


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD. Biases and normalisation parameters get no weight decay (the usual
    ReID strong-baseline practice: decaying BN scales only fights the normalisation)."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)


def lr_factor(progress: float, cfg: SchedConfig, total_epochs: float) -> float:
    """Multiplier of the peak learning rate at ``progress`` epochs into training.

    * linear warm-up over ``warmup_epochs``: ``f_w = warmup_factor + (1 - warmup_factor) * t / t_w``;
    * ``step``: ``gamma ** (number of milestones <= t)``;
    * ``cosine``: ``m + (1 - m) * (1 + cos(pi * (t - t_w) / (E - t_w))) / 2`` with
      ``m = min_lr_factor`` (cosine annealing without restarts, Loshchilov & Hutter 2017), starting
      after the warm-up;
    * ``constant``: 1.

    The factor is the warm-up factor times the decay factor.
    """
    warm = 1.0
    if cfg.warmup_epochs > 0 and progress < cfg.warmup_epochs:
        warm = cfg.warmup_factor + (1.0 - cfg.warmup_factor) * progress / cfg.warmup_epochs
    if cfg.name == "step":
        decay = cfg.gamma ** sum(1 for m in cfg.milestones if progress >= m)
    elif cfg.name == "cosine":
        span = max(total_epochs - cfg.warmup_epochs, 1e-12)
        t = min(max(progress - cfg.warmup_epochs, 0.0) / span, 1.0)
        decay = cfg.min_lr_factor + (1.0 - cfg.min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        decay = 1.0
    return warm * decay


def build_scheduler(
    cfg: SchedConfig, optimizer: torch.optim.Optimizer, total_epochs: int, iters_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` over :func:`lr_factor`. The trainer calls ``scheduler.step()`` after every
    optimiser step (``interval: iteration``, progress = step / iters_per_epoch) or once per epoch
    (``interval: epoch``, progress = whole epochs). Its state dict is plain ints/floats."""
    per_epoch = cfg.interval == "epoch"

    def factor(count: int) -> float:
        progress = float(count) if per_epoch else count / max(iters_per_epoch, 1)
        return lr_factor(progress, cfg, total_epochs)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------------------------------------
# hooks named in the config
# ---------------------------------------------------------------------------------------------


def import_object(spec: str, key: str = "train.hooks") -> Callable[..., Any]:
    """``'package.module:Name'`` -> the object; errors name the config key."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{key}: '{spec}' must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{key}: cannot import module '{module_name}' ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{key}: module '{module_name}' has no attribute '{attr}'") from None


__all__ = [
    "METRIC_LOSSES",
    "seed_everything",
    "build_data",
    "build_train_dataset",
    "build_test_transform",
    "build_model",
    "build_id_loss",
    "build_metric_loss",
    "build_optimizer",
    "lr_factor",
    "build_scheduler",
    "import_object",
]
