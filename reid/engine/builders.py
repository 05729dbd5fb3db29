"""Config -> objects: data, model, losses, training loader (optimiser and schedule: :mod:`reid.engine.optim`).

Each builder takes the typed config section it needs, so a researcher can reuse them outside the
trainer (e.g. ``build_model(cfg.model, n)`` in a notebook). Library parts are imported lazily so
``reid.engine.config`` stays importable (and ``tools/train.py --help`` fast) on its own.
"""

from __future__ import annotations

import importlib
import random
from typing import Any, Callable

import numpy as np
import torch

from reid.engine.config import Config, DataConfig, IdLossConfig, MetricLossConfig
from reid.engine.config_files import ConfigError
from reid.engine.optim import build_optimizer, build_scheduler, lr_factor


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def build_data(cfg: DataConfig, progress: bool = True):
    """``reid.data.build.build_data`` with **all** the data settings of a run: reader, protocol,
    validation, corrupt-frame policy and synthetic parameters (``root: null`` = the embedded
    synthetic dataset, generated once). Training and re-evaluation both come through here."""
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
        **cfg.format_options,
    )


def build_train_dataset(cfg: DataConfig, tracklets, seed: int, corrupt: str | None = None):
    """Clip dataset over ``tracklets`` (one restricted-random / chunk clip per item, one
    augmentation draw per clip). ``corrupt`` defaults to the config's policy."""
    from reid.data.datasets import TrainClipDataset
    from reid.data.sampling import ClipSampler
    from reid.data.transforms import build_clip_transform

    clip_sampler = ClipSampler(mode=cfg.clip_mode, length=cfg.clip_length, stride=cfg.clip_stride)
    transform = build_clip_transform(True, cfg.height, cfg.width, **cfg.augment)
    return TrainClipDataset(tracklets, clip_sampler, transform, seed=seed, corrupt=corrupt or cfg.corrupt)


def build_train_loader(dataset, sampler, epoch: int, seed: int, rank: int = 0, num_workers: int = 0,
                       pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The DataLoader of one training epoch. The sampler and the dataset are moved to ``epoch``;
    worker base seeds come from a generator seeded by ``(seed, epoch, rank)`` only, never from
    how the run got here, so a resumed run sees exactly the batches of an uninterrupted one."""
    from reid.data.batch_slots import build_clip_loader
    from reid.data.datasets import collate_clips, worker_init

    sampler.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))
    # with workers, uint8 batches travel in shared buffers reused across batches (reid.data.batch_slots)
    return build_clip_loader(dataset, sampler, num_workers=num_workers, collate_fn=collate_clips,
                             worker_init_fn=worker_init, generator=generator, pin_memory=pin_memory,
                             persistent_workers=False)


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
    """``loss.id.name`` from ``reid.losses.ID_LOSSES`` (weighted CE under ``scheme``, ProSelfLC, ...).
    Errors name the ``loss.id`` keys."""
    from reid.losses import ID_LOSSES

    builder = ID_LOSSES.get(cfg.name, key="loss.id.name")
    try:
        return builder(num_classes=num_classes, scheme=cfg.scheme, normalize=cfg.normalize,
                       label_smoothing=cfg.label_smoothing, **cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"loss.id (name={cfg.name!r}, scheme={cfg.scheme!r}, params={cfg.params}): {exc}") from exc


def build_metric_loss(cfg: MetricLossConfig) -> torch.nn.Module | None:
    """Ranking loss on embeddings (PML contract ``loss(embeddings, labels)``) from
    ``reid.losses.METRIC_LOSSES``, or None."""
    if cfg.name == "none" or cfg.weight == 0:
        return None
    from reid.losses import METRIC_LOSSES

    builder = METRIC_LOSSES.get(cfg.name, key="loss.metric.name")
    try:
        return builder(**cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"loss.metric (name={cfg.name!r}, params={cfg.params}): {exc}") from exc


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
    "seed_everything",
    "build_data",
    "build_train_dataset",
    "build_train_loader",
    "build_test_transform",
    "build_model",
    "build_id_loss",
    "build_metric_loss",
    "build_optimizer",
    "lr_factor",
    "build_scheduler",
    "import_object",
]
