"""Loading backbone weights: none, a local torchvision state dict, or ImageNet on request.

``pretrained`` (the ``model.pretrained`` config key) is one of

* ``None``: keep the random initialisation (works offline, everywhere);
* a path to a local file holding a torchvision ResNet state dict (e.g. saved with
  ``torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict(), path)``),
  read with ``torch.load(path, map_location="cpu", weights_only=True)``;
* ``"imagenet"``: torchvision's weights API downloads the ImageNet weights. This is the only
  place the package touches the network, and only because the user asked.

The ImageNet classifier (``fc.*``) in a torchvision state dict is dropped: the ReID heads are
trained from scratch. Every other key must match the backbone exactly; a missing, unexpected or
mis-shaped key is an error that names the file and the keys, because a half-loaded backbone trains
without complaint and silently costs accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

from .backbones import BACKBONES
from reid.errors import UserError

log = logging.getLogger(__name__)

# Keys of torchvision's ImageNet classifier: expected in a torchvision state dict, not used.
_IGNORED_PREFIXES = ("fc.",)
# Wrappers other tools put around a state dict (checkpoint dicts, DataParallel/DDP prefixes).
_WRAPPER_KEYS = ("state_dict", "model")
_MODULE_PREFIX = "module."
_MAX_KEYS_SHOWN = 8


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
    """Copy ``state`` into ``backbone`` strictly (``fc.*`` ignored), naming ``source`` in errors."""
    state = _unwrap_state_dict(state, source)
    ignored = sorted(k for k in state if k.startswith(_IGNORED_PREFIXES))
    wanted = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
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


def load_pretrained_backbone(backbone: nn.Module, arch: str, pretrained: str | Path | None) -> None:
    """Initialise ``backbone`` (built by :func:`reid.models.backbones.build_backbone` for ``arch``)
    according to ``pretrained``: ``None`` (no-op), ``"imagenet"`` (download on request), or a path."""
    if pretrained is None:
        return
    if isinstance(pretrained, str) and pretrained.lower() == "imagenet":
        load_state_into_backbone(backbone, fetch_imagenet_state_dict(arch), f"ImageNet weights of {arch}")
        return
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(
            f"model.pretrained: weights file {str(path)!r} does not exist. Give a local torchvision "
            "state dict path, 'imagenet' (downloads), or null (random init)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PretrainedWeightsError(
            f"{path}: could not be read as a weights-only torch file ({type(err).__name__}: {err})"
        ) from err
    load_state_into_backbone(backbone, state, str(path))


__all__ = [
    "PretrainedWeightsError",
    "fetch_imagenet_state_dict",
    "load_pretrained_backbone",
    "load_state_into_backbone",
]
