"""Loading backbone weights: none, a local state dict, or the backbone library's hub on request.

``pretrained`` (the ``model.pretrained`` config key) is one of

* ``None``: keep the random initialisation (works offline, everywhere);
* a path to a local file holding the backbone's state dict: ``.pth``/``.pt``/``.bin`` read with
  ``torch.load(path, map_location="cpu", weights_only=True)``, ``.safetensors`` with
  ``safetensors.torch.load_file``. For a torchvision ResNet e.g.
  ``torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict(), path)``; for a
  ``timm:`` backbone a timm state dict (``timm.create_model(name, pretrained=True).state_dict()``
  or the ``model.safetensors`` of the model's page on the timm Hugging Face hub);
* ``"imagenet"`` (or its synonym ``"timm"``, canonicalised by :class:`ModelConfig`): download the
  backbone's pretrained weights, torchvision's ImageNet weights for the torchvision ResNets, timm's
  default (or tagged, ``timm:resnet50.a1_in1k``) weights through timm's hub loader for ``timm:``
  backbones. This is the only place the package touches the network, and only because the user
  asked; offline it is one :class:`PretrainedWeightsError` saying how to get a local file.

The ImageNet classifier (``fc.*`` for torchvision, the model's ``classifier`` keys for timm) is
dropped: the ReID heads are trained from scratch. Every other key must match the backbone exactly;
a missing, unexpected or mis-shaped key is an error that names the file and the keys, because a
half-loaded backbone trains without complaint and silently costs accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from reid.errors import UserError

from .backbones import BACKBONES
from .timm_backbones import TimmBackbone, fetch_timm_state_dict, timm_classifier_prefixes

log = logging.getLogger(__name__)

# Keys of torchvision's ImageNet classifier: expected in a torchvision state dict, not used.
_IGNORED_PREFIXES = ("fc.",)
# Wrappers other tools put around a state dict (checkpoint dicts, DataParallel/DDP prefixes).
_WRAPPER_KEYS = ("state_dict", "model")
_MODULE_PREFIX = "module."
_MAX_KEYS_SHOWN = 8


_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile wrappers

class PretrainedWeightsError(UserError, RuntimeError):
    """Backbone weights could not be obtained or do not fit the backbone. The message names the
    source (file or download) and says what to do."""


def _show(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = len(keys) - _MAX_KEYS_SHOWN
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _unwrap_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    """Return the plain ``name -> tensor`` dict inside ``obj`` (accepting the common wrappers)."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and not isinstance(obj.get("conv1.weight"), torch.Tensor):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise PretrainedWeightsError(
            f"{source}: expected a non-empty state dict (name -> tensor), got {type(obj).__name__}. "
            "Save one with torch.save(torchvision.models.<arch>(weights=...).state_dict(), path)."
        )
    state: dict[str, torch.Tensor] = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise PretrainedWeightsError(f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor")
        if name.startswith(_MODULE_PREFIX):
            name = name[len(_MODULE_PREFIX):]
        state[name] = value
    return state


def load_state_into_backbone(backbone: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``backbone`` strictly (the ImageNet classifier ignored), naming
    ``source`` in errors. A ``timm:`` backbone's state goes into its timm model (timm's keys)."""
    state = _unwrap_state_dict(state, source)
    ignore = _IGNORED_PREFIXES
    if isinstance(backbone, TimmBackbone):
        ignore = timm_classifier_prefixes(backbone)
        backbone = backbone.model
    ignored = sorted(k for k in state if ignore and k.startswith(ignore))
    wanted = {k: v for k, v in state.items() if not (ignore and k.startswith(ignore))}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(wanted))
    unexpected = sorted(set(wanted) - set(own))
    mismatched = [
        f"{k}: file {tuple(wanted[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(wanted))
        if wanted[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_show(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_show(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_show(mismatched)}")
    if problems:
        raise PretrainedWeightsError(
            f"{source}: the state dict does not fit the {type(backbone).__name__} backbone "
            f"(is it the same architecture?): " + "; ".join(problems)
        )
    backbone.load_state_dict(wanted, strict=True)
    log.info("loaded backbone weights from %s (%d tensors; ignored %s)", source, len(wanted), ignored or "nothing")


def _imagenet_weights(arch: str) -> torchvision.models.WeightsEnum:
    enum_name, member = BACKBONES[arch].imagenet_weights.split(".")
    return getattr(getattr(torchvision.models, enum_name), member)


def fetch_imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """Download (or read from torch's hub cache) the ImageNet weights of ``arch``.

    Raises:
        PretrainedWeightsError: when the download fails (e.g. no internet), saying how to get the
            weights onto this machine as a local file.
    """
    weights = _imagenet_weights(arch)
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as err:  # URLError, HTTPError, hash mismatch, ...: all mean "no weights"
        raise PretrainedWeightsError(
            f"model.pretrained='imagenet': downloading {weights} for {arch} from {weights.url} failed "
            f"({type(err).__name__}: {err}). On a machine with internet run\n"
            f"  python -c \"import torch, torchvision; torch.save(torchvision.models.{arch}"
            f"(weights='{weights.name}').state_dict(), '{arch}_imagenet.pth')\"\n"
            f"copy {arch}_imagenet.pth here and set model.pretrained to its local path."
        ) from err


def fetch_timm_hub_state_dict(name: str) -> dict[str, torch.Tensor]:
    """timm's pretrained weights for ``name`` (download on request). Raises
    :class:`PretrainedWeightsError`, one line saying how to make a local file, when it fails."""
    try:
        return fetch_timm_state_dict(name)
    except Exception as err:  # offline (LocalEntryNotFoundError), DNS, HTTP, no weights for the tag
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise PretrainedWeightsError(
            f"model.pretrained='timm' (or 'imagenet'): downloading timm's weights of {name} failed ({reason}). "
            f"On a machine with internet run python -c \"import timm, torch; torch.save(timm.create_model("
            f"'{name}', pretrained=True).state_dict(), '{name}.pth')\", copy {name}.pth here and set "
            "model.pretrained to its local path (or null to train from scratch)."
        ) from err


def load_weights(path: Path) -> Any:
    """The object in a weights file, never unpickling code: ``.safetensors`` through safetensors,
    anything else through ``torch.load(weights_only=True)``. Callers name their own errors."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def strip_wrapper_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """State-dict keys without the ``module.`` (DataParallel/DDP) and ``_orig_mod.``
    (``torch.compile``) prefixes a wrapped model's keys carry."""
    out = {}
    for key, value in state.items():
        for prefix in _WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def read_weights_file(path: str | Path, key: str = "model.pretrained") -> dict[str, Any]:
    """The tensors of a local weights file: ``.safetensors`` through safetensors (no pickle),
    anything else through ``torch.load(weights_only=True)``. Errors name ``key`` and the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(
            f"{key}: weights file {str(path)!r} does not exist. Give a local state dict path "
            "(.pth or .safetensors), 'imagenet' (downloads), or null (random init)."
        )
    try:
        return load_weights(path)
    except Exception as err:
        kind = "safetensors" if path.suffix == ".safetensors" else "weights-only torch"
        raise PretrainedWeightsError(
            f"{path}: could not be read as a {kind} file ({type(err).__name__}: {err})"
        ) from err


def load_pretrained_backbone(backbone: nn.Module, arch: str, pretrained: str | Path | None) -> None:
    """Initialise ``backbone`` (built by :func:`reid.models.backbones.build_backbone` for ``arch``)
    according to ``pretrained``: ``None`` (no-op), ``"imagenet"``/``"timm"`` (download on
    request, from torchvision or timm as the backbone comes), or a local file."""
    if pretrained is None:
        return
    if isinstance(pretrained, str) and pretrained.lower() in ("imagenet", "timm"):
        if isinstance(backbone, TimmBackbone):
            state = fetch_timm_hub_state_dict(backbone.timm_name)
            load_state_into_backbone(backbone, state, f"timm's pretrained weights of {backbone.timm_name}")
        else:
            load_state_into_backbone(backbone, fetch_imagenet_state_dict(arch), f"ImageNet weights of {arch}")
        return
    load_state_into_backbone(backbone, read_weights_file(pretrained), str(Path(pretrained).expanduser()))


__all__ = [
    "PretrainedWeightsError",
    "fetch_imagenet_state_dict",
    "fetch_timm_hub_state_dict",
    "read_weights_file",
    "load_pretrained_backbone",
    "load_state_into_backbone",
]
