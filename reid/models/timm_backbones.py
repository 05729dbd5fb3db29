"""Frame backbones from timm: ``model.backbone: timm:<name>`` for any timm model (``timm.list_models()``,
a pretrained tag such as ``timm:resnet50.a1_in1k`` included) that yields a feature map or tokens.

How a timm model becomes a frame trunk ``[N, 3, H, W] -> [N, C, h, w]`` (the video model then
global-average-pools it):

* **feature-map models** (ResNets and their variants, ResNeSt, SE-ResNet, RegNet, ...):
  ``forward_features`` is used as is, a true spatial map. timm's global average pooling is exactly
  the video model's GAP, so nothing of the model is skipped.
* **models with parameters after the map** (ConvNeXt's head LayerNorm, ViT's ``fc_norm``) and
  **token models** (ViT, DeiT, EVA, ...: ``forward_features`` returns ``[N, L, C]`` tokens): the
  model's own pooled pre-logits feature, ``forward_head(forward_features(x), pre_logits=True)``,
  returned as a ``[N, C, 1, 1]`` map. For ViT/DeiT that is the CLS token after the final norm (the
  global feature of TransReID-style ReID baselines; timm's ``global_pool='token'``); models built
  with ``global_pool='avg'`` give the mean of the patch tokens. Keeping the model's head layers in
  the path means no parameter goes unused (DDP would refuse one) and pretrained weights keep
  their meaning. Which path a model takes is found by one probe forward/backward at build time.
* ViT-style models are built with ``dynamic_img_size=True`` when they accept it, so any input
  size works (position embeddings interpolated), e.g. the 256x128 ReID crops.

Last stride (Bag of Tricks): ``last_stride=1`` sets every stride-2 layer of the first block of
``layer4`` to stride 1 (a 2x2 average-pool shortcut becomes the identity, as timm builds it for
stride 1) in models that expose a ResNet-style ``layer4``; other models keep their strides (a
ViT has none to change) and the log says so. BNNeck comes from the video model, as for every
backbone. The model is built with ``num_classes=0`` (no ImageNet classifier) and random
initialisation; weights are loaded afterwards by :mod:`reid.models.pretrained`, only when asked.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reid.errors import UserError

log = logging.getLogger(__name__)

TIMM_PREFIX = "timm:"
_MAX_CHOICES_SHOWN = 5


class TimmBackboneError(UserError, ValueError):
    """A ``timm:`` backbone name is unknown, timm is not installed, or the model cannot be used as
    a frame trunk. The message names ``model.backbone`` and says what to do."""


def _timm() -> Any:
    try:
        import timm
    except ImportError as err:  # a declared dependency, but an install can still lack it
        raise TimmBackboneError(
            f"model.backbone: timm: backbones need the timm package ({err}); install it with "
            "`pip install timm` or pick a torchvision backbone (resnet18/34/50/101)"
        ) from err
    return timm


def check_timm_name(name: str, key: str | None = "model.backbone") -> str:
    """Return ``name`` (without the ``timm:`` prefix) if timm knows it, else raise
    :class:`TimmBackboneError` naming ``key`` and the closest timm model names."""
    timm = _timm()
    if name and timm.is_model(name):
        return name
    close = difflib.get_close_matches(name, timm.list_models(), n=_MAX_CHOICES_SHOWN)
    hint = f" Closest: {', '.join(TIMM_PREFIX + c for c in close)}." if close else ""
    where = f"{key}: " if key else ""
    raise TimmBackboneError(
        f"{where}unknown timm model {name!r} (any name of timm.list_models(), e.g. timm:resnet50, "
        f"timm:convnext_tiny, timm:vit_small_patch16_224).{hint}"
    )


def _create(timm: Any, name: str) -> nn.Module:
    """``timm.create_model(name)`` without classifier, random init; ``dynamic_img_size`` where the
    architecture takes it (ViT family), so the ReID input size needs no configuration."""
    try:
        return timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
    except TypeError as err:  # raised before any weight is created: no random draw is lost
        if "dynamic_img_size" not in str(err):
            raise
        return timm.create_model(name, pretrained=False, num_classes=0)


def _probe_input(model: nn.Module) -> torch.Tensor:
    size = tuple(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224)))
    return torch.zeros(1, *size)


@dataclass(frozen=True)
class _Probe:
    rank: int            # of forward_features' output: 4 = map, 3 = tokens
    unused: list[str]    # parameters forward_features does not reach (head norms, fc_norm)
    map_width: int       # channels of the map (NCHW or NHWC as the model says)
    pooled_width: int    # width of forward_head(..., pre_logits=True)


def _probe(model: nn.Module) -> _Probe:
    """One forward/backward in eval mode on zeros (no random draw, no BatchNorm statistic
    changes): which path the model takes and how wide its output is."""
    was_training = model.training
    model.eval()
    try:
        feats = model.forward_features(_probe_input(model))
        pooled = model.forward_head(feats, pre_logits=True)
        feats.float().sum().backward()
        unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        for p in model.parameters():
            p.grad = None
        model.train(was_training)
    nhwc = getattr(model, "output_fmt", "NCHW") == "NHWC"
    map_width = feats.shape[-1] if nhwc or feats.dim() == 3 else feats.shape[1]
    return _Probe(feats.dim(), unused, int(map_width), int(pooled.flatten(1).shape[1]))


def _set_last_stride_one(model: nn.Module, name: str) -> bool:
    """Stride 1 in the first block of a ResNet-style ``layer4``; False if the model has none."""
    layer4 = getattr(model, "layer4", None)
    if not isinstance(layer4, nn.Sequential) or len(layer4) == 0:
        return False
    block = layer4[0]
    for parent in list(block.modules()):
        for child_name, child in list(parent.named_children()):
            stride = getattr(child, "stride", None)
            if stride not in (2, (2, 2)):
                continue
            if isinstance(child, nn.AvgPool2d) and child.kernel_size in (2, (2, 2)):
                # what timm builds for a stride-1 avg-down shortcut: no pooling at all
                setattr(parent, child_name, nn.Identity())
            else:
                child.stride = (1, 1) if isinstance(stride, tuple) else 1
    log.info("timm:%s: last stride set to 1 in layer4[0]", name)
    return True


class TimmBackbone(nn.Module):
    """A timm model as a frame trunk. ``forward(x [N, 3, H, W]) -> [N, C, h, w]`` (``h = w = 1``
    for pooled models, see the module docstring); ``out_channels`` = C; the timm model is
    ``self.model``, so its weights load key-for-key into ``backbone.model``."""

    def __init__(self, model: nn.Module, name: str, out_channels: int, pooled: bool, last_stride: int) -> None:
        super().__init__()
        self.model = model
        self.timm_name = name
        self.out_channels = int(out_channels)
        self.pooled = pooled
        self.last_stride = last_stride
        # NHWC feature maps (a few timm families) are turned into NCHW for the video model's GAP
        self._channels_last_output = getattr(model, "output_fmt", "NCHW") == "NHWC"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.model.forward_features(x)
        if self.pooled:
            return self.model.forward_head(feats, pre_logits=True).flatten(1)[:, :, None, None]
        return feats.permute(0, 3, 1, 2) if self._channels_last_output else feats

    def extra_repr(self) -> str:
        return f"timm:{self.timm_name}, out_channels={self.out_channels}, pooled={self.pooled}"


@dataclass(frozen=True)
class TimmBackboneEntry:
    """How to build ``timm:<name>`` (the :data:`reid.models.backbones.BACKBONES` prefix entry)."""

    name: str

    def build(self, last_stride: int = 1) -> TimmBackbone:
        if last_stride not in (1, 2):
            raise ValueError(f"model.last_stride must be 1 or 2, got {last_stride!r}")
        model = _create(_timm(), self.name)
        changed = last_stride == 1 and _set_last_stride_one(model, self.name)
        if last_stride == 1 and not changed:
            log.info("timm:%s has no ResNet-style layer4: model.last_stride=1 leaves its strides as built",
                     self.name)
        try:
            probe = _probe(model)
        except RuntimeError as err:
            if changed:
                raise TimmBackboneError(
                    f"model.last_stride=1 does not fit timm:{self.name} ({err}); set model.last_stride=2"
                ) from err
            raise
        if probe.rank not in (3, 4):
            raise TimmBackboneError(
                f"model.backbone: timm:{self.name} gives forward_features of rank {probe.rank}, not a "
                "feature map [N, C, h, w] or tokens [N, L, C]; pick another timm model"
            )
        pooled = probe.rank == 3 or bool(probe.unused)
        width = probe.pooled_width if pooled else probe.map_width
        return TimmBackbone(model, self.name, width, pooled, last_stride)


def resolve_timm_backbone(name: str, key: str | None = "model.backbone") -> TimmBackboneEntry:
    """The entry for ``timm:<name>`` (``name`` given without the prefix), checked against timm."""
    return TimmBackboneEntry(check_timm_name(name, key))


def fetch_timm_state_dict(name: str) -> dict[str, torch.Tensor]:
    """timm's pretrained weights of ``name`` (its default tag, or the tag in the name), through
    timm's own hub loader (Hugging Face Hub, then the release URL); the classifier is dropped."""
    model = _timm().create_model(name, pretrained=True, num_classes=0)
    return model.state_dict()


def timm_classifier_prefixes(backbone: TimmBackbone) -> tuple[str, ...]:
    """Key prefixes of the ImageNet classifier in a full timm state dict (``fc.``, ``head.``,
    ``head.fc.``, ``head_dist.``): present in a file, absent from the built trunk, not used."""
    names = backbone.model.pretrained_cfg.get("classifier") or ()
    if isinstance(names, str):
        names = (names,)
    return tuple(f"{n}." for n in names)


__all__ = [
    "TIMM_PREFIX",
    "TimmBackbone",
    "TimmBackboneEntry",
    "TimmBackboneError",
    "check_timm_name",
    "fetch_timm_state_dict",
    "resolve_timm_backbone",
    "timm_classifier_prefixes",
]
