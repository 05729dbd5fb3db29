"""Losses, all weighted by the core in :mod:`reid.weighting` (the only place weights are computed).

Classification (logits): :class:`WeightedCrossEntropyLoss`, :class:`ProSelfLCLoss`, baselines
:class:`LabelSmoothingLoss`, :class:`ConfidencePenaltyLoss`, :class:`SoftBootstrappingLoss`.
Embedding-level, pytorch-metric-learning ``BaseMetricLossFunction`` subclasses:
:class:`LinearClassifierLoss`, :class:`CosineClassifierLoss`, :class:`RankedListLoss`,
:class:`InstanceCrossEntropyLoss`, :class:`BatchHardTripletLoss`, :class:`OSMCAALoss`; :class:`CrossBatchMemory`
accepts the ranking ones. Every loss sets ``last_stats`` after each forward.

Registries (:class:`reid.registry.Registry`):

* :data:`LOSSES`: every loss class by name; ``build_loss(name, **params)`` builds one.
* :data:`ID_LOSSES` (the config's ``loss.id.name``): builders with one signature,
  ``builder(num_classes, scheme, normalize, label_smoothing, **params) -> nn.Module``; every loss
  they build has ``weight_scheme``, the :class:`reid.weighting.WeightScheme` whose ``w(p)`` is its
  example weighting, or ``None`` for a loss whose logit gradient leaves CCE's direction (NCE+RCE,
  label smoothing, bootstrapping): :func:`example_weights_of` gives every loss's per-example
  ``(p_i, w_i)`` either way (so callers never special-case a loss by name).
* :data:`METRIC_LOSSES` (the config's ``loss.metric.name``): ranking losses on embeddings,
  ``METRIC_LOSSES[name](**params)``.
"""

from __future__ import annotations

import inspect

from torch import nn

from reid.losses.classifier_heads import CosineClassifierLoss, LinearClassifierLoss
from reid.losses.instance_ce import InstanceCrossEntropyLoss
from reid.losses.literature import HardBootstrappingLoss, NCERCELoss, SymmetricCrossEntropyLoss
from reid.losses.memory import CrossBatchMemory
from reid.losses.osm_caa import OSMCAALoss
from reid.losses.proselflc import ConfidencePenaltyLoss, LabelSmoothingLoss, ProSelfLCLoss, SoftBootstrappingLoss
from reid.losses.ranked_list import RankedListLoss
from reid.losses.triplet import BatchHardTripletLoss
from reid.losses.weighted_ce import WeightedCrossEntropyLoss
from reid.registry import Registry

LOSSES: Registry[type[nn.Module]] = Registry("loss")
for _name, _cls in (
    ("weighted_ce", WeightedCrossEntropyLoss),
    ("proselflc", ProSelfLCLoss),
    ("label_smoothing", LabelSmoothingLoss),
    ("confidence_penalty", ConfidencePenaltyLoss),
    ("soft_bootstrapping", SoftBootstrappingLoss),
    ("hard_bootstrapping", HardBootstrappingLoss),
    ("sce", SymmetricCrossEntropyLoss),
    ("nce_rce", NCERCELoss),
    ("linear_classifier", LinearClassifierLoss),
    ("cosine_classifier", CosineClassifierLoss),
    ("ranked_list", RankedListLoss),
    ("instance_ce", InstanceCrossEntropyLoss),
    ("batch_hard_triplet", BatchHardTripletLoss),
    ("osm_caa", OSMCAALoss),
):
    LOSSES.register(_name, _cls)
del _name, _cls


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


# --------------------------------------------------------------------------- identity losses
ID_LOSSES: Registry = Registry("identity loss")


@ID_LOSSES.register("weighted_ce")
def _weighted_ce(num_classes: int, scheme: str, normalize: str, label_smoothing: float, **params) -> nn.Module:
    """:class:`WeightedCrossEntropyLoss` under ``scheme`` (``params``: the scheme's parameters);
    ``num_classes`` is not needed."""
    return WeightedCrossEntropyLoss(scheme=scheme, normalize=normalize, label_smoothing=label_smoothing, **params)


@ID_LOSSES.register("proselflc")
def _proselflc(num_classes: int, scheme: str, normalize: str, label_smoothing: float, **params) -> nn.Module:
    """:class:`ProSelfLCLoss` (``params``: ``B``, ``transit``, ``detach_target`` and the scheme's
    parameters).

    ``scheme="cce"`` (the default) is ProSelfLC itself: ``H(q~, p)`` averaged over the batch, whose
    gradient is CCE's scaled by ``1 - eps_i``; ``normalize`` is not used. Any other scheme composes
    with the weighting core: gradient ``(1 - eps_i) w(p_i) / (2 (1 - p_i)) (p_i - q_i) / Z`` with
    ``Z`` from ``normalize``. ``label_smoothing`` must be 0: ProSelfLC corrects the target itself.
    """
    if label_smoothing:
        raise ValueError(f"proselflc: label_smoothing={label_smoothing} must be 0 (ProSelfLC corrects the "
                         "target itself; label smoothing applies to weighted_ce)")
    composed = None if isinstance(scheme, str) and scheme == "cce" else scheme
    return ProSelfLCLoss(num_classes=num_classes, scheme=composed, normalize=normalize, **params)


def _target_loss(cls, defaults: dict):
    """An ID_LOSSES builder for a loss that fixes its own target and weighting: ``scheme`` must
    stay ``cce`` (the config default) and ``label_smoothing`` 0; ``params`` go to ``cls``."""
    def build(num_classes: int, scheme: str, normalize: str, label_smoothing: float, **params) -> nn.Module:
        if not (isinstance(scheme, str) and scheme == "cce"):
            raise ValueError(f"{cls.__name__} sets its own example weighting; leave loss.id.scheme at cce "
                             f"(got {scheme!r})")
        if label_smoothing:
            raise ValueError(f"{cls.__name__}: label_smoothing={label_smoothing} must be 0 (it sets its own target)")
        return cls(**{**defaults, **params})
    build.__doc__ = f":class:`{cls.__name__}` with defaults {defaults or 'of the class'}."
    return build


# active-passive and target-revising baselines of the noisy-label literature (docs/methods.md §6);
# SCE is a weighting scheme (``loss.id.scheme=sce`` under weighted_ce) and also a loss class here.
ID_LOSSES.register("nce_rce", _target_loss(NCERCELoss, {}))
ID_LOSSES.register("label_smoothing", _target_loss(LabelSmoothingLoss, {}))
# METHODS.md §6: soft bootstrapping with the prediction detached in the target (beta = 0.95)
ID_LOSSES.register("soft_bootstrapping", _target_loss(SoftBootstrappingLoss, {"detach_target": True}))
ID_LOSSES.register("hard_bootstrapping", _target_loss(HardBootstrappingLoss, {}))


def example_weights_of(loss: nn.Module, logits, labels):
    """Per-example ``(p_i, w_i)`` of an identity loss for ``logits`` / ``labels``, without a graph:
    the loss's own ``example_weights`` when it has one (the L1 norm of each example's logit
    gradient, in closed form), else ``p_i`` from the logits and ``w_i = w(p_i)`` of its
    ``weight_scheme`` (exact for every loss along CCE's direction)."""
    import torch

    if hasattr(loss, "example_weights"):
        return loss.example_weights(logits, labels)
    with torch.no_grad():
        p = torch.softmax(logits.detach().double(), dim=1).gather(1, labels.long()[:, None]).squeeze(1)
        return p, loss.weight_scheme.w(p.clamp(0, 1))


# --------------------------------------------------------------------------- ranking losses
METRIC_LOSSES: Registry[type[nn.Module]] = Registry("ranking loss")
METRIC_LOSSES.register("triplet", BatchHardTripletLoss)
METRIC_LOSSES.register("rll", RankedListLoss)
METRIC_LOSSES.register("ice", InstanceCrossEntropyLoss)
# needs the identity logits (``needs_logits``): the training loop passes ``logits=`` to such a loss.
METRIC_LOSSES.register("osm_caa", OSMCAALoss)


__all__ = ["LOSSES", "ID_LOSSES", "METRIC_LOSSES", "build_loss", "example_weights_of",
           "SymmetricCrossEntropyLoss", "NCERCELoss", "HardBootstrappingLoss", "WeightedCrossEntropyLoss", "ProSelfLCLoss",
           "LabelSmoothingLoss", "ConfidencePenaltyLoss", "SoftBootstrappingLoss", "LinearClassifierLoss",
           "CosineClassifierLoss", "RankedListLoss", "InstanceCrossEntropyLoss", "BatchHardTripletLoss",
           "CrossBatchMemory", "OSMCAALoss"]
