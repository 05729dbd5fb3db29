"""The classification study's network, identical for every scheme.

Three conv blocks ``conv3x3 - BN - ReLU - maxpool``, a fully connected ``FC - BN - ReLU``
embedding (128-d), and a **cosine classifier** with a fixed scale ``s`` (logits
``s * cos(f, W_c)``, :class:`reid.models.heads.CosineClassifier`). docs/methods.md §1 measured
that with IMAE/DM and batch-sum normalisation an unbounded linear head lets the logits grow
without bound (the weight never vanishes at ``p = 1``); the cosine head bounds ``|z| <= s`` for
every scheme, so the comparison is not confounded by one scheme diverging. ``head="linear"``
(``nn.Linear`` with bias, PyTorch's default init) is available for comparison.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from reid.models.heads import CosineClassifier


class SmallCNN(nn.Module):
    """3 x (conv3x3-BN-ReLU-maxpool2) (28 -> 14 -> 7 -> 3), flatten, FC-BN-ReLU embedding, head.

    Flatten + FC rather than global average pooling: with GAP this net learned Fashion-MNIST
    far more slowly (~66 % test after two epochs on 5k clean images vs ~83 % with the FC), and
    the FC gives the network the capacity to memorise noisy labels, which is what the study
    measures.

    The cosine head's rows start as ``torch.randn(num_classes, dim)`` (norm ~sqrt(dim)): with a
    tiny initial norm the gradient through ``W / |W|`` (which scales as ``1/|W|``) makes the first
    epochs erratic."""

    def __init__(self, num_classes: int, widths=(16, 32, 64), head: str = "cosine", scale: float = 16.0,
                 in_ch: int = 1, embed_dim: int = 128, image_size: int = 28):
        super().__init__()
        layers, c, side = [], in_ch, image_size
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c, side = w, side // 2
        self.features = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, embed_dim, bias=False),
                                   nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True))
        # built last: the head's random draw follows the conv/FC initialisation (same weights as before)
        if head == "cosine":
            self.head = CosineClassifier(embed_dim, num_classes, scale, init_std=1.0)
        else:
            self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(self.features(x)))


class BNMLP(nn.Module):
    """Flatten, ``len(widths)`` x (FC-BN-ReLU), the same head as :class:`SmallCNN`: the network of
    the independent 5-seed review (docs/robustness.md), ~20x cheaper per image than the CNN on a
    CPU, and able to memorise a few thousand noisy labels in tens of epochs."""

    def __init__(self, num_classes: int, widths=(512, 512), head: str = "cosine", scale: float = 16.0,
                 in_features: int = 28 * 28):
        super().__init__()
        layers, d = [nn.Flatten()], in_features
        for w in widths:
            layers += [nn.Linear(d, w, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            d = w
        self.embed = nn.Sequential(*layers)
        self.head = CosineClassifier(d, num_classes, scale, init_std=1.0) if head == "cosine" else nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def build_classification_model(cfg, num_classes: int) -> nn.Module:
    """The study network of a :class:`~reid.studies.classification_config.ClassificationConfig`:
    ``arch: cnn`` (:class:`SmallCNN` with ``widths``) or ``arch: mlp`` (:class:`BNMLP` with
    ``mlp_widths``)."""
    if cfg.arch == "mlp":
        return BNMLP(num_classes, cfg.mlp_widths, cfg.head, cfg.cosine_scale)
    return SmallCNN(num_classes, cfg.widths, cfg.head, cfg.cosine_scale)


__all__ = ["SmallCNN", "BNMLP", "build_classification_model"]
