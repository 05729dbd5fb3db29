"""Typed training configuration: YAML files in ``configs/`` validated against pydantic v2 models.

Every section forbids unknown keys (``extra="forbid"``), so a typo such as ``optim.lrr`` is an
error that names the dotted key and the file it came from, raised before any work starts.
Files, ``base:`` inheritance and dotted overrides are handled by :mod:`reid.engine.config_files`.

Names of pluggable parts (dataset format, protocol, corrupt-frame policy, clip mode, weighting
scheme, identity and ranking loss, distance metric, optimiser, schedule, and in ``model`` the
backbone, aggregation and classifier) are plain strings checked against the registry that defines
them, so adding a choice never touches this file; an unknown name is an error listing the choices.

Types are strict where a silent conversion would hide a mistake: integer keys take integers
only (``train.epochs=true`` is an error, not 1), boolean keys take ``true``/``false`` only, and
number keys take floats or integers but not booleans. The defaults are the main job's
(``configs/default.yaml``), so ``load_config(None)`` trains what ``tools/train.py`` trains.

The resolved configuration is what a run records in ``<output_dir>/config.yaml``; loading that
file again reproduces the run.
"""

from __future__ import annotations

import importlib
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt,
                      field_validator, model_validator)

from reid.data.noise import NoiseConfig
from reid.engine.config_files import (
    ConfigError,
    check_key,
    deep_merge,
    dump_yaml,
    load_yaml_config,
    merge_config,
    model_class_of,
    parse_override,
)
from reid.models.config import ModelConfig


def registered(module: str, attribute: str, also: tuple[str, ...] = ()) -> AfterValidator:
    """Validator: the value must be a name of the registry ``module.attribute`` (imported when a
    config is validated, so this module stays importable on its own) or one of ``also``."""

    def check(value: str) -> str:
        # UnknownChoiceError (a ValueError): lists the registry's names and ``also``
        return getattr(importlib.import_module(module), attribute).check(value, also=also)

    return AfterValidator(check)


DatasetFormat = Annotated[str, registered("reid.data.build", "READERS", also=("auto",))]
ProtocolName = Annotated[str, registered("reid.protocols", "PROTOCOLS")]
CorruptPolicy = Annotated[str, registered("reid.data.frames", "CORRUPT_POLICIES")]
ClipMode = Annotated[str, registered("reid.data.sampling", "CLIP_MODES")]
SchemeName = Annotated[str, registered("reid.weighting", "SCHEMES")]
Normalization = Annotated[str, registered("reid.weighting", "NORMALIZATIONS")]
IdLossName = Annotated[str, registered("reid.losses", "ID_LOSSES")]
MetricLossName = Annotated[str, registered("reid.losses", "METRIC_LOSSES", also=("none",))]
DistanceMetric = Annotated[str, registered("reid.eval", "METRICS")]
OptimizerName = Annotated[str, registered("reid.engine.optim", "OPTIMIZERS")]
ScheduleName = Annotated[str, registered("reid.engine.optim", "SCHEDULES")]


def _not_a_bool(value: Any) -> Any:
    # pydantic's lax float takes True as 1.0; in a config that is a typo, not a number
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


Number = Annotated[float, BeforeValidator(_not_a_bool)]  # a float; an int is accepted, a bool is not


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class DataConfig(_Section):
    """Where the tracklets come from, how clips are cut and how batches are sampled."""

    root: str | None = Field(
        None, description="dataset folder (MARS layout or a CSV manifest); null = embedded synthetic MARS"
    )
    format: DatasetFormat = Field("auto", description="dataset reader (reid.data.build.READERS) or auto")
    protocol: ProtocolName = Field(
        "official", description="query/gallery protocol used to build the splits and to score"
    )
    validate_index: StrictBool = Field(True, description="validate the index tables (ranges, ids, cameras) on load")
    check_files: StrictBool = Field(True, description="check that every frame file exists on load")
    corrupt: CorruptPolicy = Field("error", description="policy for unreadable frames: error | skip")
    verify_frames: StrictBool = Field(
        True, description="with corrupt=error, decode every frame before training (cached by size+mtime)"
    )
    format_options: dict[str, Any] = Field(
        default_factory=dict,
        description="the reader's own options, e.g. {split_index: 3} for ilids_vid / prid2011, {use_val: true} for msmt17",
    )
    synthetic: dict[str, Any] | None = Field(
        None, description="parameters of ensure_synthetic_mars when root is null (out, ids_train, ids_test, tiny, ...)"
    )
    height: StrictInt = Field(128, gt=0, description="input height in pixels")
    width: StrictInt = Field(64, gt=0, description="input width in pixels")
    clip_length: StrictInt = Field(2, gt=0, description="frames per training clip")
    clip_mode: ClipMode = Field(
        "restricted_random", description="how training clips are cut from a tracklet"
    )
    clip_stride: StrictInt = Field(1, gt=0, description="frame stride for random_chunk clips")
    augment: dict[str, Any] = Field(
        default_factory=dict, description="extra keyword arguments of build_clip_transform(train=True)"
    )
    p: StrictInt = Field(8, gt=0, description="identities per batch (PK sampling)")
    k: StrictInt = Field(4, gt=0, description="tracklets per identity per batch (PK sampling)")
    num_workers: StrictInt = Field(0, ge=0, description="DataLoader worker processes (seeded per worker; uint8 "
                                                        "batches in reused shared buffers, reid.data.batch_slots)")


class IdLossConfig(_Section):
    """Identity classification loss on ``logits``: ``name`` picks the loss (``reid.losses.ID_LOSSES``:
    ``weighted_ce`` = cross entropy under any weighting scheme, ``proselflc`` = progressive self
    label correction), ``scheme`` the example weighting of ``weighted_ce``."""

    name: IdLossName = Field("weighted_ce", description="weighted_ce | proselflc")
    weight: Number = Field(1.0, ge=0, description="multiplier in the total loss (0 disables)")
    scheme: SchemeName = Field(
        "imae", description="weighting scheme: cce | mae | mse | gce | imae | dm | exponential | normal | beta"
    )
    normalize: Normalization = Field("sum", description="Z = batch sum of weights (sum), or N (n)")
    label_smoothing: Number = Field(0.0, ge=0, lt=1)
    params: dict[str, Any] = Field(
        default_factory=dict, description="loss/scheme parameters (gce: q; imae: T; dm: lam, beta; proselflc: B, ...)"
    )


class MetricLossConfig(_Section):
    """Ranking loss on the pre-BNNeck embedding ``feat``."""

    name: MetricLossName = Field("triplet", description="ranking loss: none | triplet | rll | ice")
    weight: Number = Field(1.0, ge=0, description="multiplier in the total loss")
    params: dict[str, Any] = Field(default_factory=dict, description="loss parameters (margin, alpha, ...)")


class LossConfig(_Section):
    id: IdLossConfig = Field(default_factory=IdLossConfig)
    metric: MetricLossConfig = Field(default_factory=MetricLossConfig)


class OptimConfig(_Section):
    name: OptimizerName = Field("adam", description="adam | adamw | sgd")
    lr: Number = Field(1e-3, gt=0, description="peak learning rate (after warm-up)")
    weight_decay: Number = Field(5e-4, ge=0)
    momentum: Number = Field(0.9, ge=0, description="sgd only")
    nesterov: StrictBool = Field(False, description="sgd only")
    betas: tuple[Number, Number] = Field((0.9, 0.999), description="adam/adamw only")
    impl: Literal["auto", "loop", "foreach", "fused"] = Field(
        "fused", description="update kernel: fused = one kernel per parameter (Adam's step ~3x faster on CPU than "
                             "the loop; rounds differently from it); auto = torch's choice (per-tensor loop on CPU, "
                             "foreach on CUDA), what runs before issue 14 used"
    )


class SchedConfig(_Section):
    """Learning-rate schedule, a multiplier of ``optim.lr`` as a function of training progress.

    ``interval: iteration`` evaluates the schedule at fractional epochs (step / iters_per_epoch)
    after every optimiser step; ``interval: epoch`` only at whole epochs (classic step decay)."""

    name: ScheduleName = Field("cosine", description="constant | step | cosine")
    interval: Literal["iteration", "epoch"] = "iteration"
    warmup_epochs: Number = Field(1.0, ge=0, description="linear warm-up length in epochs")
    warmup_factor: Number = Field(0.01, gt=0, le=1, description="lr multiplier at step 0 of warm-up")
    milestones: list[Number] = Field(default_factory=list, description="step: epochs at which lr *= gamma")
    gamma: Number = Field(0.1, gt=0, description="step: decay factor")
    min_lr_factor: Number = Field(0.01, ge=0, le=1, description="cosine: final lr / peak lr")


class TrainConfig(_Section):
    epochs: StrictInt = Field(10, gt=0)
    iters_per_epoch: StrictInt | None = Field(
        None, gt=0, description="cap on iterations per epoch; null = one pass of the PK sampler"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available")
    amp: Literal["none", "bf16", "fp16"] = Field("none", description="mixed precision (CUDA only)")
    channels_last: StrictBool = Field(True, description="model and input in channels_last (NHWC) memory format "
                                                        "(faster convolutions on CPU and GPU; false = NCHW)")
    compile: StrictBool = Field(
        False, description="torch.compile the backbone in place (checkpoint keys unchanged); the compile time is "
                           "paid on the first steps and again for evaluation shapes"
    )
    grad_clip: Number | None = Field(10.0, gt=0, description="max global gradient L2 norm; null = off")
    nan_policy: Literal["skip", "stop"] = Field(
        "skip", description="non-finite loss: skip the step (counted) or checkpoint and stop"
    )
    checkpoint_every: StrictInt = Field(1, ge=1, description="epochs between checkpoints (last.pt)")
    log_every: StrictInt = Field(5, ge=1, description="iterations between metrics.jsonl train records")
    deterministic: StrictBool = Field(True, description="torch.use_deterministic_algorithms (warn-only)")
    fill_uninitialized_memory: StrictBool = Field(
        False, description="with deterministic: torch's NaN fill of every new tensor (a debug aid; results are "
                           "the same without it, and it cost ~11 % of a CPU training step)"
    )
    find_unused_parameters: StrictBool = Field(
        False, description="DDP: tolerate parameters without gradient (forced on when loss.id.weight is 0)"
    )
    hooks: list[str] = Field(
        default_factory=list, description="extra trainer hooks as 'package.module:ClassName' (built with no args)"
    )
    progress: StrictBool = Field(True, description="tqdm progress bar on rank 0")


class ValidationConfig(_Section):
    """A validation split carved from the training data (:mod:`reid.data.holdout`), with the
    training (noisy) labels: ``fraction`` of the training identities, or the training labels
    ``ids``, become validation query/gallery tracklets; checkpoints are then also ranked on it
    (``best_by_val``; ``best_by_test`` is the oracle)."""

    fraction: float | None = Field(None, gt=0, lt=1, description="fraction of training identities held out")
    ids: list[StrictInt] | None = Field(None, description="training labels held out (instead of fraction)")
    seed: StrictInt = Field(0, description="seed of the identity and query draw")

    @field_validator("ids")
    @classmethod
    def _ids_not_empty(cls, v):
        if v is not None and not v:
            raise ValueError("give at least one training label, or use fraction")
        return v


class EvalConfig(_Section):
    every: StrictInt = Field(0, ge=0, description="epochs between evaluations (0 = only at the end)")
    metric: DistanceMetric = Field("cosine", description="cosine | euclidean")
    chunk: StrictInt = Field(32, gt=0, description="frames per forward pass when extracting a tracklet")
    max_frames: StrictInt | None = Field(
        4, gt=0, description="use at most this many evenly spaced frames per test tracklet (null = all)"
    )
    untrained: StrictBool = Field(True, description="evaluate the network before training (baseline row)")
    report: Literal["final", "best", "best_by_val"] = Field(
        "final", description="final.json's headline: final | best (by test mAP: an oracle) | best_by_val "
                             "(by validation mAP; needs eval.validation)"
    )
    predict_frames: StrictInt = Field(8, gt=0, description="frames per tracklet for predict_train_split()")
    validation: ValidationConfig | None = Field(
        None, description="hold out training identities for model selection (off: the main job)")

    @field_validator("validation")
    @classmethod
    def _fraction_or_ids(cls, v):
        if v is not None and (v.fraction is None) == (v.ids is None):
            raise ValueError("set exactly one of eval.validation.fraction and eval.validation.ids")
        return v

    @model_validator(mode="after")
    def _best_by_val_needs_validation(self):
        if self.report == "best_by_val" and self.validation is None:
            raise ValueError("eval.report=best_by_val needs eval.validation (e.g. {fraction: 0.1})")
        return self


class Config(_Section):
    """Root of the schema. Sections: data, model, loss (id, metric), optim, sched, train, eval, noise."""

    name: str | None = Field(None, description="run name (default: the config file's stem)")
    seed: StrictInt = Field(0, description="seeds python, numpy, torch, the samplers and DataLoader workers")
    output_dir: str | None = Field(None, description="default runs/<name>-<timestamp>")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sched: SchedConfig = Field(default_factory=SchedConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    noise: NoiseConfig | None = Field(None, description="noisy-identity injection (issue 6); null = clean")

    @field_validator("name")
    @classmethod
    def _name_is_a_path_component(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._+-]+", value):
            raise ValueError("use only letters, digits and . _ + - (it names the run folder)")
        return value

    def to_plain(self) -> dict:
        """JSON/YAML-safe nested dict (what ``config.yaml`` and checkpoints store)."""
        return self.model_dump(mode="json")


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    set_output_dir: StrictBool = True,
) -> Config:
    """Load, merge, override and validate a config.

    Args:
        path: YAML file (``None`` = schema defaults only, i.e. the main job's settings).
        overrides: ``["optim.lr=0.01", ...]``; unknown keys raise ``ConfigError`` naming the key.
        set_output_dir: fill ``output_dir`` with :func:`default_output_dir` when unset.

    Raises:
        ConfigError: naming the dotted key and the file (or 'command-line override').
    """
    cfg = load_yaml_config(Config, path, overrides)
    if cfg.name is None and path is not None:
        cfg.name = Path(path).stem if Path(path).stem != "config" else None
    if cfg.name is None:
        cfg.name = "run"
    if set_output_dir and cfg.output_dir is None:
        cfg.output_dir = default_output_dir(cfg.name)
    return cfg


def default_output_dir(name: str, now: datetime | None = None) -> str:
    """``runs/<name>-<YYYYmmdd-HHMMSS>-<microseconds>``: runs started in the same second (a
    backgrounded seed sweep) get different folders, and the names sort in start order. (Two
    starts in one microsecond would share a name; the trainer then refuses the second run's
    folder rather than mixing the runs.)"""
    now = now or datetime.now()
    return str(Path("runs") / f"{name}-{now:%Y%m%d-%H%M%S-%f}")


def config_sources(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict, str]:
    """``(sources, label)`` of :func:`load_config`'s inputs: for every dotted key the file (or
    ``'command-line override'``) that set it, and the label of the schema defaults. Checks that
    run after validation (:mod:`reid.engine.preflight`) name the file with it."""
    _, sources, label = merge_config(Config, path, overrides)
    return sources, label


def check_config_key(dotted: str) -> None:
    """Raise :class:`ConfigError` unless ``dotted`` names a key of :class:`Config`."""
    check_key(dotted, Config)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (loadable again with ``load_config``)."""
    Path(path).write_text(dump_yaml(cfg.to_plain()), encoding="utf-8")


def describe_schema(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """One line per section listing its keys, for ``tools/train.py --help``."""
    lines = []
    for name, field in model.model_fields.items():
        sub = model_class_of(field.annotation)
        if sub is None:
            continue
        if sub is NoiseConfig:
            lines.append(f"  {prefix}{name}: see reid.data.noise.NoiseConfig (null = clean labels)")
            continue
        leaves = [k for k, f in sub.model_fields.items() if model_class_of(f.annotation) is None]
        if leaves:
            lines.append(f"  {prefix}{name}: {', '.join(leaves)}")
        lines.extend(describe_schema(sub, prefix=f"{prefix}{name}."))
    return lines


__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "IdLossConfig",
    "MetricLossConfig",
    "LossConfig",
    "OptimConfig",
    "SchedConfig",
    "TrainConfig",
    "EvalConfig",
    "NoiseConfig",
    "load_config",
    "default_output_dir",
    "config_sources",
    "save_config",
    "dump_yaml",
    "parse_override",
    "check_config_key",
    "deep_merge",
    "describe_schema",
]
