"""Ranked List Loss (Wang et al., "Ranked List Loss for Deep Metric Learning", CVPR 2019 /
TPAMI 2021), with the authors' semantics (docs/methods.md §3)."""

from __future__ import annotations

import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f

from reid.losses._common import make_stats, pair_masks
from reid.weighting import normalized_pair_weights


def ranked_list_terms(dist: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, alpha: float, margin: float,
                      Tn: float, Tp: float, balance: float, weight_dist: torch.Tensor | None = None):
    """Per-anchor RLL losses from a distance matrix ``dist [N, M]`` and pair masks.

    ``L_P(i) = sum_j wp_ij [d_ij - (alpha - m)]_+`` over active positives (``d > alpha - m``),
    ``L_N(i) = sum_j wn_ij [alpha - d_ij]_+`` over active negatives (``d < alpha``),
    ``wn_ij ~ exp(Tn (alpha - d_ij))``, ``wp_ij ~ exp(Tp (d_ij - (alpha - m)))`` normalised over
    the anchor's active pairs and computed from ``weight_dist`` (default ``dist``) *detached*.
    Returns ``(loss [N], wp, wn, active_pos, active_neg)`` with
    ``loss = (1 - balance) L_P + balance L_N``.
    """
    wd = dist.detach() if weight_dist is None else weight_dist.detach()
    boundary = alpha - margin
    active_pos = pos & (wd > boundary)
    active_neg = neg & (wd < alpha)
    wp = normalized_pair_weights(wd - boundary, active_pos, Tp)
    wn = normalized_pair_weights(alpha - wd, active_neg, Tn)
    loss_p = (wp * (dist - boundary).clamp_min(0)).sum(dim=1)
    loss_n = (wn * (alpha - dist).clamp_min(0)).sum(dim=1)
    return (1 - balance) * loss_p + balance * loss_n, wp, wn, active_pos, active_neg


class RankedListLoss(BaseMetricLossFunction):
    """Ranked List Loss (RLL) with detached, per-query normalised pair weights.

    Distances: Euclidean on L2-normalised embeddings (PML ``LpDistance()``, the default
    ``distance``). For each anchor ``i``: positives are active when ``d_ij > alpha - margin``,
    negatives when ``d_ij < alpha``; pair losses ``[d - (alpha - margin)]_+`` and
    ``[alpha - d]_+``; negatives weighted ``exp(Tn (alpha - d))``, positives
    ``exp(Tp (d - (alpha - margin)))``, normalised within the anchor's active pairs and detached
    (computed in :func:`reid.weighting.normalized_pair_weights`). Per-anchor loss
    ``(1 - balance) L_P + balance L_N``; the reducer (default mean) averages over anchors.
    Defaults ``alpha=1.2, margin=0.4, Tn=10, Tp=0, balance=0.5`` (the paper's).

    Difference from ``pytorch_metric_learning.losses.RankedListLoss(margin, Tn, imbalance, alpha,
    Tp)``: the forward value is the same (up to PML's ``1e-5`` in the normaliser) with
    ``imbalance=balance``, but PML does not detach the weights, so its gradient contains
    ``d w / d d`` terms: for ``Tn > 0`` it pushes the hardest negatives with *less* than their
    weight (the softmax-weighted mean's derivative), whereas here (as in the authors' code) each
    active pair's gradient is exactly its weight times the hinge's slope.

    ``indices_tuple`` (pairs or triplets from a miner) restricts the pairs considered;
    ``ref_emb`` / ``ref_labels`` rank against a reference set. Works inside
    :class:`reid.losses.CrossBatchMemory` (the memory is the ranked list; self pairs removed
    by the wrapper's indices). ``last_stats``: no per-example ``p``; floats
    ``active_pos_mean``, ``active_neg_mean`` (active pairs per anchor), ``wn_max_mean``.
    """

    def __init__(self, alpha: float = 1.2, margin: float = 0.4, Tn: float = 10.0, Tp: float = 0.0,
                 balance: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 < margin < alpha:
            raise ValueError(f"RankedListLoss: need 0 < margin < alpha; got margin={margin}, alpha={alpha}")
        if not 0.0 <= balance <= 1.0:
            raise ValueError(f"RankedListLoss: balance={balance} must be in [0, 1]")
        self.alpha, self.margin, self.Tn, self.Tp, self.balance = float(alpha), float(margin), float(Tn), \
            float(Tp), float(balance)
        self.add_to_recordable_attributes(list_of_names=["alpha", "margin", "Tn", "Tp", "balance"], is_stat=False)
        self.last_stats: dict = {}

    def get_default_distance(self):
        return LpDistance()

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        if self.distance.is_inverted:
            raise ValueError("RankedListLoss needs a distance (not a similarity); use LpDistance")
        dist = self.distance(embeddings, ref_emb)
        pos, neg = pair_masks(indices_tuple, labels, ref_labels, same_ref=ref_emb is embeddings)
        loss, wp, wn, ap, an = ranked_list_terms(dist, pos, neg, self.alpha, self.margin, self.Tn, self.Tp,
                                                 self.balance)
        self.last_stats = make_stats(None, None, loss=float(loss.detach().mean()) if loss.numel() else 0.0,
                                     active_pos_mean=float(ap.sum(1).double().mean()),
                                     active_neg_mean=float(an.sum(1).double().mean()),
                                     wn_max_mean=float(wn.max(1).values.double().mean()) if wn.numel() else 0.0)
        return {"loss": {"losses": loss, "indices": c_f.torch_arange_from_size(loss),
                         "reduction_type": "element"}}
