"""Typed training configuration: YAML files in ``configs/`` validated against pydantic v2 models.

Every section forbids unknown keys (``extra="forbid"``), so a typo such as ``optim.lrr`` is an
error that names the dotted key and the file it came from, raised before any work starts.

Three ways to set a value, later ones winning:

1. a base file named by ``base: default.yaml`` (or ``defaults: [default.yaml]``, Hydra-style),
   resolved relative to the including file and deep-merged (mappings merge key by key, everything
   else is replaced);
2. the config file itself;
3. dotted command-line overrides ``optim.lr=0.01 model.backbone=resnet50``, whose values are
   parsed as YAML scalars (``0.01`` -> float, ``null`` -> None, ``[30,60]`` -> list).

The resolved configuration is what a run records in ``<output_dir>/config.yaml``; loading that
file again reproduces the run.
"""

from __future__ import annotations

import difflib
import re
import time
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

try:  # the noise study's schema (issue 6) owns its own keys; fall back while it is not installed
    from reid.data.noise import NoiseConfig  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised only in a tree without reid.data.noise

    class NoiseConfig(BaseModel):  # type: ignore[no-redef]
        """Placeholder used only when ``reid.data.noise`` is missing: setting ``noise`` fails."""

        model_config = ConfigDict(extra="forbid")

        @model_validator(mode="before")
        @classmethod
        def _unavailable(cls, value: Any) -> Any:
            raise ValueError("the 'noise' section needs reid.data.noise, which is not installed")


class ConfigError(ValueError):
    """A configuration file or override is invalid. The message names the dotted key and the
    source (file path or 'command-line override')."""


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
    format: Literal["auto", "mars", "csv", "folder"] = Field("auto", description="dataset reader")
    protocol: Literal["official", "torchreid"] = Field(
        "official", description="query/gallery protocol used to build the splits and to score"
    )
    validate_index: bool = Field(True, description="validate the index tables (ranges, ids, cameras) on load")
    check_files: bool = Field(True, description="check that every frame file exists on load")
    corrupt: Literal["error", "skip"] = Field("error", description="policy for unreadable frames")
    synthetic: dict[str, Any] | None = Field(
        None, description="parameters of ensure_synthetic_mars when root is null (out, ids_train, ids_test, tiny, ...)"
    )
    height: int = Field(128, gt=0, description="input height in pixels")
    width: int = Field(64, gt=0, description="input width in pixels")
    clip_length: int = Field(4, gt=0, description="frames per training clip")
    clip_mode: Literal["random_chunk", "evenly", "restricted_random"] = Field(
        "restricted_random", description="how training clips are cut from a tracklet"
    )
    clip_stride: int = Field(1, gt=0, description="frame stride for random_chunk clips")
    augment: dict[str, Any] = Field(
        default_factory=dict, description="extra keyword arguments of build_clip_transform(train=True)"
    )
    p: int = Field(8, gt=0, description="identities per batch (PK sampling)")
    k: int = Field(4, gt=0, description="tracklets per identity per batch (PK sampling)")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (seeded per worker)")


class ModelConfig(_Section):
    """Passed as is to ``reid.models.build_model`` (attribute names are that contract)."""

    backbone: str = Field("resnet18", description="resnet18 | resnet34 | resnet50 | ...")
    pretrained: str | None = Field(
        None, description="null = from scratch; 'imagenet' = torchvision weights (downloads once); or a local .pth path"
    )
    last_stride: int = Field(1, ge=1, le=2, description="stride of the last backbone stage")
    embedding_dim: int = Field(0, ge=0, description="0 = backbone width, else a linear projection")
    bnneck: bool = Field(True, description="BNNeck: retrieval uses the BN'd feature")
    aggregation: Literal["mean", "max", "quality", "id_quality", "attention"] = Field(
        "mean", description="frame -> tracklet pooling: mean | max | quality | id_quality | attention")
    classifier: Literal["linear", "cosine"] = Field("linear", description="identity head")
    cosine_scale: float = Field(16.0, gt=0, description="fixed logit scale of the cosine head")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")


class IdLossConfig(_Section):
    """Identity classification loss on ``logits``: weighted CE under any scheme, or ProSelfLC."""

    weight: float = Field(1.0, ge=0, description="multiplier in the total loss (0 disables)")
    scheme: str = Field(
        "cce", description="cce | mae | mse | gce | imae | dm | exponential | normal | beta | proselflc"
    )
    normalize: Literal["sum", "n"] = Field("sum", description="Z = batch sum of weights, or N")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    params: dict[str, Any] = Field(
        default_factory=dict, description="scheme parameters (gce: q; imae: T; dm: lam, beta; proselflc: B, ...)"
    )


class MetricLossConfig(_Section):
    """Ranking loss on the pre-BNNeck embedding ``feat``."""

    name: Literal["none", "triplet", "rll", "ice"] = Field("triplet", description="ranking loss")
    weight: float = Field(1.0, ge=0, description="multiplier in the total loss")
    params: dict[str, Any] = Field(default_factory=dict, description="loss parameters (margin, alpha, ...)")


class LossConfig(_Section):
    id: IdLossConfig = Field(default_factory=IdLossConfig)
    metric: MetricLossConfig = Field(default_factory=MetricLossConfig)


class OptimConfig(_Section):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(3.5e-4, gt=0, description="peak learning rate (after warm-up)")
    weight_decay: float = Field(5e-4, ge=0)
    momentum: float = Field(0.9, ge=0, description="sgd only")
    nesterov: bool = Field(False, description="sgd only")
    betas: tuple[float, float] = Field((0.9, 0.999), description="adam/adamw only")


class SchedConfig(_Section):
    """Learning-rate schedule, a multiplier of ``optim.lr`` as a function of training progress.

    ``interval: iteration`` evaluates the schedule at fractional epochs (step / iters_per_epoch)
    after every optimiser step; ``interval: epoch`` only at whole epochs (classic step decay)."""

    name: Literal["constant", "step", "cosine"] = "step"
    interval: Literal["iteration", "epoch"] = "iteration"
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up length in epochs")
    warmup_factor: float = Field(0.01, gt=0, le=1, description="lr multiplier at step 0 of warm-up")
    milestones: list[float] = Field(default_factory=list, description="step: epochs at which lr *= gamma")
    gamma: float = Field(0.1, gt=0, description="step: decay factor")
    min_lr_factor: float = Field(0.0, ge=0, le=1, description="cosine: final lr / peak lr")


class TrainConfig(_Section):
    epochs: int = Field(10, gt=0)
    iters_per_epoch: int | None = Field(
        None, gt=0, description="cap on iterations per epoch; null = one pass of the PK sampler"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available")
    amp: Literal["none", "bf16", "fp16"] = Field("none", description="mixed precision (CUDA only)")
    channels_last: bool = False
    grad_clip: float | None = Field(None, gt=0, description="max global gradient L2 norm; null = off")
    nan_policy: Literal["skip", "stop"] = Field(
        "skip", description="non-finite loss: skip the step (counted) or checkpoint and stop"
    )
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints (last.pt)")
    log_every: int = Field(10, ge=1, description="iterations between metrics.jsonl train records")
    deterministic: bool = Field(True, description="torch.use_deterministic_algorithms (warn-only)")
    find_unused_parameters: bool = Field(
        False, description="DDP: tolerate parameters without gradient (forced on when loss.id.weight is 0)"
    )
    hooks: list[str] = Field(
        default_factory=list, description="extra trainer hooks as 'package.module:ClassName' (built with no args)"
    )
    progress: bool = Field(True, description="tqdm progress bar on rank 0")


class EvalConfig(_Section):
    every: int = Field(1, ge=0, description="epochs between evaluations (0 = only at the end)")
    metric: Literal["cosine", "euclidean"] = "cosine"
    chunk: int = Field(32, gt=0, description="frames per forward pass when extracting a tracklet")
    max_frames: int | None = Field(
        None, gt=0, description="use at most this many evenly spaced frames per test tracklet (null = all)"
    )
    untrained: bool = Field(True, description="evaluate the network before training (baseline row)")
    report: Literal["final", "best"] = Field(
        "final", description="which checkpoint's metrics final.json reports as the headline"
    )
    predict_frames: int = Field(8, gt=0, description="frames per tracklet for predict_train_split()")


class Config(_Section):
    """Root of the schema. Sections: data, model, loss (id, metric), optim, sched, train, eval, noise."""

    name: str | None = Field(None, description="run name (default: the config file's stem)")
    seed: int = Field(0, description="seeds python, numpy, torch, the samplers and DataLoader workers")
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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_INHERIT_KEYS = ("base", "defaults")
_UNION_ORIGINS = (Union, types.UnionType)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Mappings merge key by key; any other value in ``update`` replaces the one in ``base``."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, dict[str, Path]]:
    """Read ``path`` and its ``base``/``defaults`` files; returns the merged dict and, for every
    dotted leaf key, the file that set it last (for error messages)."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{path}: config inheritance cycle: {cycle}")
    raw = _read_yaml(path)
    bases: list[str] = []
    for key in _INHERIT_KEYS:
        if key in raw:
            value = raw.pop(key)
            if isinstance(value, str):
                bases.append(value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                bases.extend(value)
            else:
                raise ConfigError(f"{path}: key '{key}' must be a file name or a list of file names")
    merged: dict = {}
    sources: dict[str, Path] = {}
    for base in bases:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file():
            raise ConfigError(f"{path}: base config '{base}' not found (looked at {base_path})")
        base_dict, base_sources = _load_with_bases(base_path, (*chain, path))
        merged = deep_merge(merged, base_dict)
        sources.update(base_sources)
    merged = deep_merge(merged, raw)
    for key in _leaf_keys(raw):
        sources[key] = path
    return merged, sources


def _leaf_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in d.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict):
            keys.extend(_leaf_keys(value, dotted + "."))
    return keys


def _model_class_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``X``, ``X | None``), or None for a leaf type."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in _UNION_ORIGINS:
        for arg in get_args(annotation):
            found = _model_class_of(arg)
            if found is not None:
                return found
    return None


def _is_free_mapping(annotation: Any) -> bool:
    """``dict[...]`` (or ``dict | None``): sub-keys are free-form parameters."""
    if annotation is dict or get_origin(annotation) is dict:
        return True
    if get_origin(annotation) in _UNION_ORIGINS:
        return any(_is_free_mapping(a) for a in get_args(annotation))
    return False


def check_key(dotted: str, schema: type[BaseModel] = None) -> None:
    """Raise ConfigError unless ``dotted`` names a field of the schema (free-form dict fields
    accept any sub-key). The message lists the valid keys at that level and the closest match."""
    schema = schema or Config
    parts = dotted.split(".")
    model: type[BaseModel] | None = schema
    for depth, part in enumerate(parts):
        if model is None:
            return  # inside a free-form mapping
        fields = model.model_fields
        if part not in fields:
            here = ".".join(parts[:depth]) or "<top level>"
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f" Did you mean '{'.'.join(parts[:depth] + close)}'?" if close else ""
            raise ConfigError(
                f"unknown config key '{dotted}': '{part}' is not a key of {here} "
                f"(valid: {', '.join(fields)}).{hint}"
            )
        annotation = fields[part].annotation
        sub = _model_class_of(annotation)
        if sub is None and depth < len(parts) - 1 and not _is_free_mapping(annotation):
            raise ConfigError(f"unknown config key '{dotted}': '{'.'.join(parts[: depth + 1])}' is a value, not a section")
        model = sub


def parse_override(text: str) -> tuple[str, Any]:
    """``'optim.lr=0.01'`` -> ``('optim.lr', 0.01)``; the value is parsed as a YAML scalar/flow."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like dotted.key=value (e.g. optim.lr=0.01)")
    key, _, value_text = text.partition("=")
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"override '{text}': '{key}' is not a dotted key")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc})") from exc
    if isinstance(value, str):
        # YAML 1.1 reads '1e-3' (no dot) as a string; a researcher means the number
        try:
            value = float(value) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value) else value
        except ValueError:
            pass
    return key, value


def _set_dotted(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = d
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _format_validation_error(exc: ValidationError, sources: dict[str, Path], fallback: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # pydantic appends union member / tag names to loc; keep only real keys for the lookup
        dotted = ".".join(loc)
        source = None
        for n in range(len(loc), 0, -1):
            source = sources.get(".".join(loc[:n]))
            if source is not None:
                break
        where = source if source is not None else fallback
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {dotted}: {err['msg']}{got_text}  [{where}]")
    return "invalid configuration:\n" + "\n".join(lines)


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    set_output_dir: bool = True,
) -> Config:
    """Load, merge, override and validate a config.

    Args:
        path: YAML file (``None`` = schema defaults only).
        overrides: ``["optim.lr=0.01", ...]``; unknown keys raise ``ConfigError`` naming the key.
        set_output_dir: fill ``output_dir`` with ``runs/<name>-<YYYYmmdd-HHMMSS>`` when unset.

    Raises:
        ConfigError: naming the dotted key and the file (or 'command-line override').
    """
    merged: dict = {}
    sources: dict[str, Path] = {}
    label = "<defaults>"
    if path is not None:
        path = Path(path)
        label = str(path)
        merged, sources = _load_with_bases(path)
    for text in overrides:
        key, value = parse_override(text)
        check_key(key)
        _set_dotted(merged, key, value)
        for sub in [key, *(f"{key}.{k}" for k in (_leaf_keys(value) if isinstance(value, dict) else []))]:
            sources[sub] = "command-line override"  # type: ignore[assignment]
    try:
        cfg = Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, sources, label)) from None
    if cfg.name is None and path is not None:
        cfg.name = Path(path).stem if Path(path).stem != "config" else None
    if cfg.name is None:
        cfg.name = "run"
    if set_output_dir and cfg.output_dir is None:
        cfg.output_dir = str(Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (loadable again with ``load_config``)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_plain(), sort_keys=False))


def describe_schema(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """One line per section listing its keys, for ``tools/train.py --help``."""
    lines = []
    for name, field in model.model_fields.items():
        sub = _model_class_of(field.annotation)
        if sub is None:
            continue
        if sub is NoiseConfig:
            lines.append(f"  {prefix}{name}: see reid.data.noise.NoiseConfig (null = clean labels)")
            continue
        leaves = [k for k, f in sub.model_fields.items() if _model_class_of(f.annotation) is None]
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
    "save_config",
    "parse_override",
    "check_key",
    "deep_merge",
    "describe_schema",
]
