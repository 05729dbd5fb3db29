"""Frame backbones: torchvision ResNets cut before global pooling, and any timm model
(``timm:<name>``, :mod:`reid.models.timm_backbones`).

A backbone maps a batch of frames ``[N, 3, H, W]`` to a feature map ``[N, C, h, w]``. The video
model pools it spatially (global average pooling) to one vector per frame.

Every backbone is built with ``weights=None``: nothing is ever downloaded here. ImageNet weights
are loaded afterwards by :mod:`reid.models.pretrained`, only when the user asks for them.

Last stride (Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person
Re-identification", CVPRW 2019): setting the stride of the first block of ``layer4`` to 1 halves
the total stride from 32 to 16, doubling the height and width of the final feature map (a 256x128
input gives 16x8 instead of 8x4) at no parameter cost. It is the ReID default (``last_stride=1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torchvision
from torch import nn

from reid.registry import Registry, UnknownChoiceError

from .timm_backbones import TIMM_PREFIX, resolve_timm_backbone

# Names of the ResNet stages kept from torchvision, in forward order. Keeping torchvision's own
# attribute names means a torchvision state dict loads into the trunk key-for-key (minus ``fc``).
_RESNET_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without its global pooling and ``fc`` classifier.

    ``forward(x [N, 3, H, W]) -> [N, C, H/s, W/s]`` with ``s`` = 16 (last stride 1) or 32.
    Submodules keep torchvision's names, so ``state_dict()`` keys equal torchvision's keys
    minus ``fc.weight`` / ``fc.bias``.
    """

    def __init__(self, resnet: torchvision.models.ResNet, out_channels: int, last_stride: int) -> None:
        super().__init__()
        for name in _RESNET_STAGES:
            setattr(self, name, getattr(resnet, name))
        self.out_channels = out_channels
        self.last_stride = last_stride
        if last_stride == 1:
            # torchvision puts layer4's stride on conv1 (BasicBlock) or conv2 (Bottleneck, the
            # "ResNet v1.5" variant) and on the 1x1 downsample conv: set every stride-2 conv of
            # the first block to stride 1 so main path and shortcut keep the same size.
            for module in self.layer4[0].modules():
                if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                    module.stride = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in _RESNET_STAGES:
            x = getattr(self, name)(x)
        return x


@dataclass(frozen=True)
class BackboneEntry:
    """How to build one named backbone.

    Attributes:
        constructor: torchvision constructor, called with ``weights=None``.
        out_channels: channels of the final feature map (the frame feature width).
        imagenet_weights: name of the torchvision weights enum member used for
            ``pretrained="imagenet"`` (resolved lazily so importing this module never touches
            the weights registry).
    """

    constructor: Callable[..., torchvision.models.ResNet]
    out_channels: int
    imagenet_weights: str

    def build(self, last_stride: int = 1) -> ResNetTrunk:
        if last_stride not in (1, 2):
            raise ValueError(f"model.last_stride must be 1 or 2, got {last_stride!r}")
        return ResNetTrunk(self.constructor(weights=None), self.out_channels, last_stride)


class BackboneRegistry(Registry[Any]):
    """The backbone registry: named entries (the torchvision ResNets) plus name-prefix resolvers
    (``timm:`` -> any timm model), so one family is one line, not one entry per model.

    Iterating lists the named entries only; ``check`` / ``get`` / ``in`` also accept a prefixed
    name (``timm:convnext_tiny``), validated by its resolver."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self._prefixes: dict[str, Callable[[str, str | None], Any]] = {}

    def register_prefix(self, prefix: str, resolver: Callable[[str, str | None], Any]) -> None:
        """``resolver(rest_of_name, key)`` returns the entry or raises a ``UserError`` naming ``key``."""
        if prefix in self._prefixes:
            raise ValueError(f"{self.kind} prefix '{prefix}' is registered twice")
        self._prefixes[prefix] = resolver

    def _resolver(self, name: Any) -> tuple[str, Callable[[str, str | None], Any]] | None:
        if isinstance(name, str):
            for prefix, resolver in self._prefixes.items():
                if name.startswith(prefix):
                    return prefix, resolver
        return None

    def check(self, name: Any, key: str | None = None, also: tuple[str, ...] = ()) -> str:
        found = self._resolver(name)
        if found is not None:
            found[1](name[len(found[0]):], key)
            return name
        try:
            return super().check(name, key, also)
        except UnknownChoiceError as err:
            families = ", ".join(f"{p}<name>" for p in self._prefixes)
            raise UnknownChoiceError(f"{err} Or any of: {families} (e.g. timm:resnet50).") from None

    def get(self, name: str, key: str | None = None) -> Any:  # type: ignore[override]
        found = self._resolver(name)
        if found is not None:
            return found[1](name[len(found[0]):], key)
        return super().get(name, key)

    def __contains__(self, name: object) -> bool:
        if self._resolver(name) is not None:
            try:
                self.check(name)
            except (UnknownChoiceError, ValueError):
                return False
            return True
        return super().__contains__(name)


# name -> entry. IMAGENET1K_V1 everywhere: the weights the ReID literature (Bag of Tricks,
# torchreid, fast-reid) starts from, so results stay comparable with published baselines.
BACKBONES: BackboneRegistry = BackboneRegistry("backbone")
BACKBONES.register("resnet18", BackboneEntry(torchvision.models.resnet18, 512, "ResNet18_Weights.IMAGENET1K_V1"))
BACKBONES.register("resnet34", BackboneEntry(torchvision.models.resnet34, 512, "ResNet34_Weights.IMAGENET1K_V1"))
BACKBONES.register("resnet50", BackboneEntry(torchvision.models.resnet50, 2048, "ResNet50_Weights.IMAGENET1K_V1"))
BACKBONES.register("resnet101", BackboneEntry(torchvision.models.resnet101, 2048, "ResNet101_Weights.IMAGENET1K_V1"))
BACKBONES.register_prefix(TIMM_PREFIX, resolve_timm_backbone)


def build_backbone(name: str, last_stride: int = 1) -> nn.Module:
    """Build the named backbone with random initialisation (torchvision's or timm's default
    init): a module ``[N, 3, H, W] -> [N, C, h, w]`` with attribute ``out_channels``."""
    return BACKBONES.get(name, key="model.backbone").build(last_stride)


__all__ = ["BACKBONES", "BackboneEntry", "BackboneRegistry", "ResNetTrunk", "build_backbone"]
