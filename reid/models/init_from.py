"""``model.init_from``: initialise a freshly built model from one of our checkpoints.

The file is one of the trainer's checkpoints (``best.pt``, ``last.pt``: a dict whose ``model`` is
the state dict, loaded with ``torch.load(weights_only=True)``), a plain state dict, or a
weights-only ``.safetensors`` export. What is loaded, per parameter group of
:class:`reid.models.video_model.VideoReIDModel`:

* ``backbone.*``, ``projection.*``, ``bnneck.*`` (backbone + neck): required. Every one of these
  tensors must be in the file with the model's shape, otherwise it is an :class:`InitFromError`
  naming the file and the keys (a half-initialised trunk trains without complaint and silently
  costs accuracy; the checkpoint's own ``config.model.backbone`` is named when it differs).
* ``classifier.*``: loaded when the shapes match (same class count); otherwise the freshly built
  classifier is kept (re-created for the new identities) and the log says so.
* anything else (``aggregator.*``): loaded when present with the same shape, else kept fresh.

Keys of the file that the model lacks are reported in the log, never silently used. DDP's
``module.`` and ``torch.compile``'s ``_orig_mod.`` prefixes are removed first. Nothing here
draws random numbers, so a seed gives the same run with or without ``init_from``'s fresh parts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid.errors import UserError
from reid.models.pretrained import load_weights, strip_wrapper_prefixes

log = logging.getLogger(__name__)

_REQUIRED_PREFIXES = ("backbone.", "projection.", "bnneck.")
_CLASSIFIER_PREFIX = "classifier."

_MAX_KEYS_SHOWN = 6


class InitFromError(UserError, ValueError):
    """``model.init_from`` names a file that is missing, unreadable, or whose weights do not fit
    the model built from the config. The message names the file and what to do."""


def _show(keys: list[str]) -> str:
    more = len(keys) - _MAX_KEYS_SHOWN
    return ", ".join(keys[:_MAX_KEYS_SHOWN]) + (f", ... ({more} more)" if more > 0 else "")


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state dict, the checkpoint's config.model or {})`` of ``path``."""
    if not path.is_file():
        raise InitFromError(
            f"model.init_from: checkpoint {str(path)!r} does not exist; give the path of a best.pt / "
            "last.pt written by `reid train` (or null)"
        )
    try:
        obj: Any = load_weights(path)
    except Exception as err:
        raise InitFromError(
            f"model.init_from: {path} could not be read as a weights-only checkpoint "
            f"({type(err).__name__}: {' '.join(str(err).split())[:300]})"
        ) from err
    model_cfg: dict[str, Any] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        config = obj.get("config")
        if isinstance(config, Mapping) and isinstance(config.get("model"), Mapping):
            model_cfg = dict(config["model"])
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InitFromError(
            f"model.init_from: {path} holds no model state dict (expected a checkpoint written by "
            "`reid train`, with a 'model' entry of tensors, or a plain state dict)"
        )
    return strip_wrapper_prefixes(obj), model_cfg


def init_from_checkpoint(model: nn.Module, path: str | Path, backbone_name: str | None = None) -> dict[str, list[str]]:
    """Copy the weights of checkpoint ``path`` into ``model`` (rules in the module docstring).

    Args:
        model: a freshly built video model.
        path: the checkpoint (``model.init_from``).
        backbone_name: the config's ``model.backbone``, named in the error when the checkpoint
            was trained with another one.

    Returns:
        ``{"loaded": [...], "kept": [...], "unused": [...]}`` (model keys copied, model keys left as
        built, file keys the model does not have), also written to the log.

    Raises:
        InitFromError: missing / unreadable file, or a required tensor missing or mis-shaped.
    """
    path = Path(path).expanduser()
    state, saved_cfg = _read(path)
    own = model.state_dict()
    fits = {k for k in own if k in state and state[k].shape == own[k].shape}
    bad = [k for k in own if k.startswith(_REQUIRED_PREFIXES) and k not in fits]
    if bad:
        missing = [k for k in bad if k not in state]
        shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in bad if k in state]
        saved = saved_cfg.get("backbone")
        hint = (f" The checkpoint was trained with model.backbone={saved!r}, this config builds {backbone_name!r}: "
                f"set model.backbone={saved!r}." if saved and backbone_name and saved != backbone_name else
                " Use the model.backbone / model.embedding_dim / model.bnneck the checkpoint was trained with.")
        parts = ([f"{len(missing)} missing key(s): {_show(missing)}"] if missing else []) + (
            [f"{len(shapes)} shape mismatch(es): {_show(shapes)}"] if shapes else [])
        raise InitFromError(f"model.init_from: {path} does not fit the model's backbone + neck ("
                            + "; ".join(parts) + ")." + hint)
    model.load_state_dict({k: state[k] for k in fits}, strict=False)
    report = {
        "loaded": sorted(fits),
        "kept": sorted(set(own) - fits),
        "unused": sorted(set(state) - set(own)),
    }
    classifier_kept = [k for k in report["kept"] if k.startswith(_CLASSIFIER_PREFIX)]
    log.info("model.init_from %s: loaded %d of %d tensors (backbone + neck%s)", path, len(fits), len(own),
             ", classifier" if not classifier_kept and any(k.startswith(_CLASSIFIER_PREFIX) for k in own) else "")
    if classifier_kept:
        sizes = {k: (tuple(state[k].shape) if k in state else None) for k in classifier_kept}
        log.info("model.init_from %s: classifier re-created, not loaded (%s; checkpoint %s vs model %s)", path,
                 _show(classifier_kept), sizes, {k: tuple(own[k].shape) for k in classifier_kept})
    other_kept = [k for k in report["kept"] if not k.startswith(_CLASSIFIER_PREFIX)]
    if other_kept:
        log.info("model.init_from %s: kept as built (absent or other shape in the file): %s", path, _show(other_kept))
    if report["unused"]:
        log.info("model.init_from %s: not used (the model has no such tensor): %s", path, _show(report["unused"]))
    return report


__all__ = ["InitFromError", "init_from_checkpoint"]
