"""Heads on the tracklet embedding: BNNeck and the identity classifiers.

BNNeck (Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person Re-identification",
CVPRW 2019, Sec. 3.6): the metric loss (triplet, ranked list, ...) sees the embedding ``f``
*before* a BatchNorm1d, the identity classifier and retrieval see ``BN(f)``. The BN bias is
fixed at zero (``requires_grad=False``), so ``BN(f)`` stays centred and the classifier, which
has no bias either, separates classes by angle, which is what cosine retrieval compares.

Classifiers (``model.classifier``):

* ``linear``: ``z = W x`` (no bias), weights initialised ``N(0, 0.001^2)`` as in Bag of Tricks.
  Logits are unbounded.
* ``cosine``: ``z_c = s * cos(x, w_c) = s * <x/||x||, w_c/||w_c||>`` with a fixed scale ``s``
  (``model.cosine_scale``, default 16; NormFace, Wang et al. 2017, and CosFace without margin).
  ``|z_c| <= s``, so ``p_i`` cannot saturate to 0/1 in floating point. docs/methods.md §1: with
  derivative-manipulation weights (IMAE, DM) the gradient magnitude does not vanish for fitted
  examples and an unbounded linear head's logits keep growing (~3e4 measured, then NaN); the
  cosine head was stable in the same run. Prefer it with ``imae`` / ``dm`` weighting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid.registry import Registry


class BNNeck(nn.Module):
    """BatchNorm1d with a frozen zero bias (Bag of Tricks).

    ``frame_forward`` applies the same affine map with the *running* statistics and never updates
    them: used to put individual frame features in the BN space (ID-aware quality) without the
    frames' statistics leaking into the tracklet-level running mean/var.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)

    def frame_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` for any leading shape."""
        bn = self.bn
        shape = x.shape
        out = F.batch_norm(
            x.reshape(-1, shape[-1]), bn.running_mean, bn.running_var, bn.weight, bn.bias,
            training=False, momentum=0.0, eps=bn.eps,
        )
        return out.reshape(shape)


class LinearClassifier(nn.Module):
    """``z = W x (+ b)``; by default no bias and ``W ~ N(0, 0.001^2)`` (Bag of Tricks: the bias-free
    classifier after BNNeck). ``init_std`` and ``bias`` (zeros) serve other callers, e.g.
    :class:`reid.losses.LinearClassifierLoss` (``init_std = 1 / sqrt(dim)``)."""

    def __init__(self, dim: int, num_classes: int, init_std: float = 0.001, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=init_std)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # .to(x.dtype) is a no-op for matching dtypes and the cast autocast would make anyway;
        # it lets float64 / bfloat16 inputs meet float32 parameters outside autocast.
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class CosineClassifier(nn.Module):
    """``z_c = s * <x/||x||, w_c/||w_c||>``: logits bounded by the fixed scale ``s``.

    ``W ~ N(0, init_std^2)``; the default (1, rows of norm ~sqrt(dim)) is the same draw as
    ``torch.randn(num_classes, dim)``: a tiny initial norm would make the first steps erratic,
    since the gradient through ``W / ||W||`` scales as ``1 / ||W||``.
    """

    def __init__(self, dim: int, num_classes: int, scale: float = 16.0, init_std: float = 1.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"model.cosine_scale must be > 0, got {scale!r}")
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=init_std)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        """``cos(x, w_c)`` for every class, ``[..., D] -> [..., C]`` (before the scale)."""
        # normalise W in its own dtype, then cast: the cast autocast would make anyway (a no-op
        # for matching dtypes), and float64 / bfloat16 inputs work outside autocast.
        return F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1).to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosine(x)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, classes={self.weight.shape[0]}, scale={self.scale}"


#: name -> builder(dim, num_classes, cosine_scale) (``model.classifier``)
CLASSIFIERS: Registry = Registry("classifier")


@CLASSIFIERS.register("linear")
def _linear(dim: int, num_classes: int, cosine_scale: float) -> nn.Module:
    return LinearClassifier(dim, num_classes)


@CLASSIFIERS.register("cosine")
def _cosine(dim: int, num_classes: int, cosine_scale: float) -> nn.Module:
    return CosineClassifier(dim, num_classes, cosine_scale)


def build_classifier(name: str, dim: int, num_classes: int, cosine_scale: float = 16.0) -> nn.Module:
    builder = CLASSIFIERS.get(name, key="model.classifier")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (training identities), got {num_classes}")
    return builder(dim, num_classes, cosine_scale)


__all__ = ["BNNeck", "CLASSIFIERS", "CosineClassifier", "LinearClassifier", "build_classifier"]
