"""The configuration of one noisy-label classification run (see :mod:`reid.studies.classification`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reid.data.idx import FASHION_MNIST_DIR
from reid.data.noise import NoiseItem
from reid.studies.schemes import SchemeSpec


class HoldoutSpec(BaseModel):
    """A validation split: ``fraction`` of the (noisy-labelled) training images, class-stratified by
    the training label, drawn with ``seed`` (:func:`reid.data.holdout.holdout_fraction`)."""

    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(gt=0, lt=1)
    seed: int = 0


class ClassificationConfig(BaseModel):
    """One noisy-label classification run."""

    model_config = ConfigDict(extra="forbid")

    data_root: Path = FASHION_MNIST_DIR
    train_subset: int | None = 20000  # first stratified-random N training images (None: all)
    test_subset: int | None = None
    scheme: SchemeSpec = Field(default_factory=lambda: SchemeSpec(name="cce"))
    normalize: Literal["sum", "n"] = "sum"
    noise: list[NoiseItem] = Field(default_factory=list)
    noise_seed: int = 0
    seed: int = 0
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # reid.engine.optim schedules, per iteration; step = x0.1 at 1/3 and 2/3 of training
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: int = 0  # the engine's linear warm-up (from sched.warmup_factor of the peak rate)
    arch: Literal["cnn", "mlp"] = "cnn"  # SmallCNN (widths) or BN-MLP (mlp_widths)
    widths: tuple[int, int, int] = (16, 32, 64)
    mlp_widths: tuple[int, ...] = (512, 512)
    head: Literal["cosine", "linear"] = "cosine"
    cosine_scale: float = 16.0
    augment: bool = True  # per-image random horizontal flip + one random shift (<= 2 px) per batch; training only
    num_threads: int | None = None
    eval_batch_size: int = 1000
    validation: HoldoutSpec | None = None  # model selection on held-out noisy training images (best_by_val)


__all__ = ["ClassificationConfig", "HoldoutSpec", "SchemeSpec"]
