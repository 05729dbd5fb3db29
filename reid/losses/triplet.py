"""Batch-hard triplet loss (Hermans et al., "In Defense of the Triplet Loss", 2017) with optional
anchor weighting through the core."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f

from reid.losses._common import make_stats, pair_masks, split_pml_kwargs
from reid.weighting import example_weights, get_scheme, weighted_cross_entropy
from reid.weighting.pairs import triplet_log_probs


class BatchHardTripletLoss(BaseMetricLossFunction):
    """Batch-hard triplet loss: per anchor the farthest positive ``d_ap`` and closest negative
    ``d_an``; loss ``[d_ap - d_an + margin]_+`` or, with ``soft_margin=True``,
    ``log(1 + exp(d_ap - d_an))``. Distance: Euclidean on the raw embeddings
    (``LpDistance(normalize_embeddings=False)``, as in BoT ReID baselines with margin 0.3); pass
    ``distance=LpDistance()`` for normalised embeddings.

    Anchor weighting (``scheme`` not None): ``p_i = softmax([-d_ap, -d_an])_0
    = sigmoid(d_an - d_ap)`` (:func:`reid.weighting.pairs.triplet_log_probs`), the probability the anchor matches its hardest positive rather
    than its hardest negative. The soft-margin loss is exactly the cross entropy ``-log p_i`` of
    that two-way choice, so with ``soft_margin=True`` the scheme acts through
    :func:`reid.weighting.weighted_cross_entropy` on the logits ``[-d_ap, -d_an]`` (DM gradient
    rescaling, exact semantics of docs/methods.md §1). With a hard margin the detached normalised
    weights ``w(p_i) / Z`` multiply the hinges. ``scheme=None``: plain mean over anchors.

    ``indices_tuple``: triplets ``(a, p, n)`` from a miner are used as given (each triplet one
    example); pairs (e.g. from ``CrossBatchMemory``) restrict the batch-hard search. ``ref_emb``
    supported; works inside :class:`reid.losses.CrossBatchMemory`. Anchors without a positive or
    a negative are skipped. ``last_stats``: ``p`` (and ``w`` with a scheme) per anchor,
    ``active_fraction`` (hinge > 0).
    """

    def __init__(self, margin: float = 0.3, soft_margin: bool = False, scheme=None, normalize: str = "sum",
                 **params) -> None:
        pml_kwargs, scheme_params = split_pml_kwargs(params)
        super().__init__(**pml_kwargs)
        if margin < 0:
            raise ValueError(f"BatchHardTripletLoss: margin={margin} must be >= 0")
        self.margin = float(margin)
        self.soft_margin = bool(soft_margin)
        self.scheme = None if scheme is None else get_scheme(scheme, **scheme_params)
        if scheme is None and scheme_params:
            raise ValueError(f"BatchHardTripletLoss: scheme parameters {sorted(scheme_params)} given without scheme=")
        self.normalize = normalize
        self.add_to_recordable_attributes(list_of_names=["margin"], is_stat=False)
        self.last_stats: dict = {}

    def get_default_distance(self):
        return LpDistance(normalize_embeddings=False)

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        mat = self.distance(embeddings, ref_emb)
        dist = -mat if self.distance.is_inverted else mat
        if indices_tuple is not None and len(indices_tuple) == 3:
            a, p, n = (t.long() for t in indices_tuple)
            d_ap, d_an = dist[a, p], dist[a, n]
            anchors, rtype = (a, p, n), "triplet"
        else:
            pos, neg = pair_masks(indices_tuple, labels, ref_labels, same_ref=ref_emb is embeddings)
            ok = pos.any(1) & neg.any(1)
            d_ap = dist.masked_fill(~pos, -math.inf).max(dim=1).values[ok]
            d_an = dist.masked_fill(~neg, math.inf).min(dim=1).values[ok]
            anchors, rtype = torch.where(ok)[0], "element"
        if d_ap.numel() == 0:
            self.last_stats = make_stats(dist.new_zeros(0), None, loss=0.0)
            return self.zero_losses()
        gap = d_ap - d_an
        hinge = F.softplus(gap) if self.soft_margin else (gap + self.margin).clamp_min(0)
        gap_detached = gap.detach()

        def p():
            return torch.sigmoid(-gap_detached.double()).to(gap_detached.dtype)
        w = None
        if self.scheme is None:
            losses = hinge
        elif self.soft_margin:
            logits = torch.stack([-d_ap, -d_an], dim=1)
            out = weighted_cross_entropy(logits, torch.zeros_like(d_ap, dtype=torch.long), self.scheme,
                                         self.normalize, reduction="none")
            losses, w = out.loss * len(d_ap), out.weights.w
        else:
            log_p, log1m_p = triplet_log_probs(gap)  # the core's pair probability p = sigmoid(d_an - d_ap)
            ew = example_weights(None, self.scheme, self.normalize, log_p=log_p, log1m_p=log1m_p)
            losses, w = hinge * ew.normalized * len(d_ap), ew.w
        self.last_stats = make_stats(p, w, loss=float(losses.detach().mean()),
                                     active_fraction=float((gap.detach() + self.margin > 0).double().mean()))
        return {"loss": {"losses": losses, "indices": anchors, "reduction_type": rtype}}
