"""Losses, all weighted by the core in :mod:`reid.weighting` (the only place weights are computed).

Classification (logits): :class:`WeightedCrossEntropyLoss`, :class:`ProSelfLCLoss`, baselines
:class:`LabelSmoothingLoss`, :class:`ConfidencePenaltyLoss`, :class:`SoftBootstrappingLoss`.
Embedding-level, pytorch-metric-learning ``BaseMetricLossFunction`` subclasses:
:class:`LinearClassifierLoss`, :class:`CosineClassifierLoss`, :class:`RankedListLoss`,
:class:`InstanceCrossEntropyLoss`, :class:`BatchHardTripletLoss`; :class:`CrossBatchMemory`
accepts the ranking ones. Every loss sets ``last_stats`` after each forward.

``build_loss(name, **params)`` builds one by registry name (see :data:`LOSSES`).
"""

from __future__ import annotations

import inspect

from reid.losses.classifier_heads import CosineClassifierLoss, LinearClassifierLoss
from reid.losses.instance_ce import InstanceCrossEntropyLoss
from reid.losses.memory import CrossBatchMemory
from reid.losses.proselflc import ConfidencePenaltyLoss, LabelSmoothingLoss, ProSelfLCLoss, SoftBootstrappingLoss
from reid.losses.ranked_list import RankedListLoss
from reid.losses.triplet import BatchHardTripletLoss
from reid.losses.weighted_ce import WeightedCrossEntropyLoss

LOSSES = {
    "weighted_ce": WeightedCrossEntropyLoss,
    "proselflc": ProSelfLCLoss,
    "label_smoothing": LabelSmoothingLoss,
    "confidence_penalty": ConfidencePenaltyLoss,
    "soft_bootstrapping": SoftBootstrappingLoss,
    "linear_classifier": LinearClassifierLoss,
    "cosine_classifier": CosineClassifierLoss,
    "ranked_list": RankedListLoss,
    "instance_ce": InstanceCrossEntropyLoss,
    "batch_hard_triplet": BatchHardTripletLoss,
}


def build_loss(name: str, **params):
    """Build a loss by registry name, e.g. ``build_loss("weighted_ce", scheme="dm", lam=0.5,
    beta=8.0)`` or ``build_loss("ranked_list", Tn=10.0)``. Unknown names raise ``ValueError``
    listing the valid ones with their constructor parameters; bad parameters raise with the
    loss's name."""
    if name not in LOSSES:
        listing = "; ".join(f"{k}{inspect.signature(v.__init__)}".replace("(self, ", "(") for k, v in LOSSES.items())
        raise ValueError(f"unknown loss {name!r}; valid losses: {listing}")
    cls = LOSSES[name]
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"loss {name!r} ({cls.__name__}{inspect.signature(cls.__init__)}): {exc}") from exc


__all__ = ["LOSSES", "build_loss", "WeightedCrossEntropyLoss", "ProSelfLCLoss", "LabelSmoothingLoss",
           "ConfidencePenaltyLoss", "SoftBootstrappingLoss", "LinearClassifierLoss", "CosineClassifierLoss",
           "RankedListLoss", "InstanceCrossEntropyLoss", "BatchHardTripletLoss", "CrossBatchMemory"]
