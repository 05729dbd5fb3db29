"""Checks that run before any work: everything about a training config that the schema cannot
see, and the checkpoints a command was given, so that a bad value fails in a second with one
line naming the key and its file, not after the data has loaded and the run folder exists.

``preflight(cfg, sources, label)`` checks, without touching any data:

* ``loss.id`` / ``loss.metric``: the losses are built (the id loss with a dummy class count),
  so a bad scheme parameter (``loss.id.params.T=-1``, an unknown parameter) is caught;
* ``data.synthetic``: the generator's parameters (when ``data.root`` is null);
* ``data.augment``: the training transform is built with them;
* ``train.hooks``: each ``package.module:Class`` imports.

With ``environment=True`` (training; ``--print-config`` skips these) also what the machine must
provide: ``data.root`` exists, ``model.pretrained`` names an existing file (or ``imagenet``),
``noise.manifest`` exists, ``train.device=cuda`` has a CUDA device.

``check_checkpoint(path, option)`` loads a checkpoint (``weights_only=True``) and says in one
line when it is missing, empty, truncated or lacks the keys a command needs.

Every problem is a :class:`~reid.engine.config_files.ConfigError` or a
:class:`~reid.engine.checkpoint.CheckpointError` (both :class:`reid.errors.UserError`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from reid.engine.checkpoint import CheckpointError, load_checkpoint, require_keys
from reid.engine.config import Config
from reid.engine.config_files import ConfigError, sources_of

DUMMY_CLASSES = 2  # the smallest class count every identity loss accepts
SYNTHETIC_RUNTIME_KEYS = ("out", "force", "workers", "progress")  # ensure_synthetic_mars options, not params
RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "sampler", "epoch", "global_step")
EVAL_KEYS = ("model", "config", "num_classes")


def preflight(cfg: Config, sources: dict[str, Any] | None = None, label: str = "<defaults>",
              environment: bool = True) -> None:
    """Raise :class:`ConfigError` (one line: dotted key, problem, source file) for the first
    problem found; see the module docstring for what is checked."""
    checks = [_check_losses, _check_synthetic, _check_augment, _check_hooks]
    if environment:
        checks += [_check_data_root, _check_pretrained, _check_init_from, _check_noise_manifest, _check_device]
    for check in checks:
        problem = check(cfg)
        if problem is not None:
            key, message = problem
            where = sources_of(key, sources or {}, label)
            raise ConfigError(f"invalid configuration: {key}: {message}  [{where}]")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _check_losses(cfg: Config) -> tuple[str, str] | None:
    from reid.engine.builders import build_id_loss, build_metric_loss

    ident, metric = cfg.loss.id, cfg.loss.metric
    try:
        build_id_loss(ident, num_classes=DUMMY_CLASSES)
    except (TypeError, ValueError) as exc:
        cause = exc.__cause__ or exc  # the builder's own message, without its restatement of the section
        return "loss.id", f"{_one_line(cause)} (name={ident.name!r}, scheme={ident.scheme!r}, params={ident.params})"
    try:
        build_metric_loss(metric)
    except (TypeError, ValueError) as exc:
        cause = exc.__cause__ or exc
        return "loss.metric", f"{_one_line(cause)} (name={metric.name!r}, params={metric.params})"
    return None


def _check_synthetic(cfg: Config) -> tuple[str, str] | None:
    params = dict(cfg.data.synthetic or {})
    if not params:
        return None
    if cfg.data.root is not None:
        return "data.synthetic", "only applies with data.root=null (the embedded synthetic dataset); remove it"
    from reid.data.synthetic import SyntheticMarsParams

    for key in SYNTHETIC_RUNTIME_KEYS:
        params.pop(key, None)
    try:
        SyntheticMarsParams.create(**params)
    except (TypeError, ValueError) as exc:
        return "data.synthetic", _one_line(exc)
    return None


def _check_augment(cfg: Config) -> tuple[str, str] | None:
    if not cfg.data.augment:
        return None
    from reid.data.transforms import build_clip_transform

    try:
        build_clip_transform(train=True, height=cfg.data.height, width=cfg.data.width, **cfg.data.augment)
    except (TypeError, ValueError) as exc:
        return "data.augment", _one_line(exc)
    return None


def _check_hooks(cfg: Config) -> tuple[str, str] | None:
    from reid.engine.builders import import_object

    for spec in cfg.train.hooks:
        try:
            import_object(spec)
        except (ImportError, ValueError) as exc:
            return "train.hooks", _one_line(exc).removeprefix("train.hooks: ")
    return None


def _check_data_root(cfg: Config) -> tuple[str, str] | None:
    root = cfg.data.root
    if root is not None and not Path(root).exists():
        return "data.root", (f"{root} does not exist; set data.root=/path/to/MARS (a MARS root, a .csv "
                             "manifest or a train/query/gallery folder), or data.root=null for the synthetic dataset")
    return None


def _check_pretrained(cfg: Config) -> tuple[str, str] | None:
    value = cfg.model.pretrained
    if value is None or value == "imagenet" or Path(value).is_file():
        return None
    return "model.pretrained", (f"{value} is not a file; use null (from scratch), 'imagenet' (torchvision or, "
                                "for timm:<name>, timm weights, downloaded once; 'timm' is the same) or the path "
                                "of a local .pth / .safetensors state dict")


def _check_init_from(cfg: Config) -> tuple[str, str] | None:
    value = cfg.model.init_from
    if value is None or Path(value).is_file():
        return None
    return "model.init_from", f"{value} is not a file (one of our checkpoints, e.g. runs/<run>/best.pt)"


def _check_noise_manifest(cfg: Config) -> tuple[str, str] | None:
    manifest = cfg.noise.manifest if cfg.noise is not None else None
    if manifest is not None and not Path(manifest).is_file():
        return "noise.manifest", f"{manifest} is not a file (a noise_manifest.json written by an earlier run)"
    return None


def _check_device(cfg: Config) -> tuple[str, str] | None:
    if cfg.train.device != "cuda":
        return None
    import torch

    if not torch.cuda.is_available():
        return "train.device", "'cuda' requested but no CUDA device is visible; use train.device=auto (or cpu)"
    return None


def check_checkpoint(path: str | Path, option: str, keys: tuple[str, ...] = ()) -> Path:
    """The checkpoint file ``path`` names (a run folder means its ``last.pt``), after loading it
    with ``weights_only=True`` and checking ``keys``. Raises :class:`CheckpointError` naming
    ``option`` (e.g. ``--resume``) and the file, in one line."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"{option}: no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{option}: {path} is empty (0 bytes): an interrupted copy? use another checkpoint")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; no central directory = cut short
            raise CheckpointError(f"{option}: {path} is truncated or not a torch checkpoint "
                                  f"({path.stat().st_size} bytes, no complete zip archive); use another "
                                  "checkpoint (best.pt, or an earlier copy)") from exc
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise CheckpointError(f"{option}: {path} cannot be loaded ({type(cause).__name__}: "
                              f"{_one_line(cause)[:300]})") from exc
    try:
        require_keys(ckpt, keys, path)
    except CheckpointError as exc:
        raise CheckpointError(f"{option}: {_one_line(exc)}; was it written by reid's trainer?") from None
    return path


__all__ = ["preflight", "check_checkpoint", "RESUME_KEYS", "EVAL_KEYS"]
