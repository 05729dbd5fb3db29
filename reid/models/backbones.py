"""Frame backbones: torchvision ResNets cut before global pooling.

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
from typing import Callable

import torch
import torchvision
from torch import nn

from reid.registry import Registry

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


# name -> entry. IMAGENET1K_V1 everywhere: the weights the ReID literature (Bag of Tricks,
# torchreid, fast-reid) starts from, so results stay comparable with published baselines.
BACKBONES: Registry[BackboneEntry] = Registry("backbone")
BACKBONES.register("resnet18", BackboneEntry(torchvision.models.resnet18, 512, "ResNet18_Weights.IMAGENET1K_V1"))
BACKBONES.register("resnet34", BackboneEntry(torchvision.models.resnet34, 512, "ResNet34_Weights.IMAGENET1K_V1"))
BACKBONES.register("resnet50", BackboneEntry(torchvision.models.resnet50, 2048, "ResNet50_Weights.IMAGENET1K_V1"))
BACKBONES.register("resnet101", BackboneEntry(torchvision.models.resnet101, 2048, "ResNet101_Weights.IMAGENET1K_V1"))


def build_backbone(name: str, last_stride: int = 1) -> ResNetTrunk:
    """Build the named backbone with random initialisation (torchvision's default init)."""
    return BACKBONES.get(name, key="model.backbone").build(last_stride)


__all__ = ["BACKBONES", "BackboneEntry", "ResNetTrunk", "build_backbone"]
