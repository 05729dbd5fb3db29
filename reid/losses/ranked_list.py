"""Ranked List Loss (Wang et al., "Ranked List Loss for Deep Metric Learning", CVPR 2019 /
TPAMI 2021), with the authors' semantics (docs/methods.md §3) and its pair weights from the core
(:mod:`reid.weighting.pairs`, docs/weighting.md §2)."""

from __future__ import annotations

import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f

from reid.errors import UserError
from reid.losses._common import make_stats, pair_masks, split_pml_kwargs
from reid.weighting import get_scheme
from reid.weighting.pairs import anchor_shares, rll_default_log_w, rll_pair_probs, row_normalized, scheme_pair_log_w

ANCHOR_WEIGHTINGS = ("uniform", "released")


class RankedListLossError(UserError, ValueError):
    """A bad RankedListLoss argument."""


def ranked_list_terms(dist: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, alpha: float, margin: float,
                      Tn: float, Tp: float, balance: float, weight_dist: torch.Tensor | None = None,
                      scheme=None, anchor_weighting: str = "uniform"):
    """Per-anchor RLL losses from a distance matrix ``dist [N, M]`` and pair masks.

    ``L_P(i) = sum_j wp_ij [d_ij - (alpha - m)]_+`` over active positives (``d > alpha - m``),
    ``L_N(i) = sum_j wn_ij [alpha - d_ij]_+`` over active negatives (``d < alpha``), weights
    normalised over the anchor's active pairs and computed from ``weight_dist`` (default
    ``dist``) *detached*: ``wn ~ exp(Tn (alpha - d))``, ``wp ~ exp(Tp (d - (alpha - m)))``
    (``scheme=None``), or ``w(p_ij)`` of a scheme with the pair probabilities of
    :func:`reid.weighting.pairs.rll_pair_probs`.

    Anchor combination: ``"uniform"`` (the paper's formula) ``loss_i = (1 - balance) L_P(i) +
    balance L_N(i)``, averaged over anchors by the reducer; ``"released"`` (the authors' code)
    weights each anchor by its share of the batch's total active-pair weight, separately for
    positives and negatives, ``sum_i (Wp_i / sum_k Wp_k) L_P(i)`` (``Wp_i`` the unnormalised sum
    of the anchor's active positive weights) - i.e. ``sum_ij w_ij h_ij / sum_ij w_ij`` - returned
    as per-anchor terms scaled by ``N`` so that a mean gives it.
    Returns ``(loss [N], wp, wn, active_pos, active_neg)``.
    """
    wd = dist.detach() if weight_dist is None else weight_dist.detach()
    boundary = alpha - margin
    active_pos = pos & (wd > boundary)
    active_neg = neg & (wd < alpha)
    if scheme is None:
        log_wp, log_wn = rll_default_log_w(wd, alpha, margin, Tn, Tp)
    else:
        p_pos, p_neg = rll_pair_probs(wd, alpha, margin)
        log_wp, log_wn = scheme_pair_log_w(scheme, p_pos), scheme_pair_log_w(scheme, p_neg)
    wp, log_total_p = row_normalized(log_wp, active_pos)
    wn, log_total_n = row_normalized(log_wn, active_neg)
    loss_p = (wp * (dist - boundary).clamp_min(0)).sum(dim=1)
    loss_n = (wn * (alpha - dist).clamp_min(0)).sum(dim=1)
    if anchor_weighting == "released":
        n = dist.shape[0]
        loss_p = loss_p * (anchor_shares(log_total_p) * n)
        loss_n = loss_n * (anchor_shares(log_total_n) * n)
    return (1 - balance) * loss_p + balance * loss_n, wp, wn, active_pos, active_neg


class RankedListLoss(BaseMetricLossFunction):
    """Ranked List Loss (RLL) with detached, per-query normalised pair weights.

    Signature: PML's ``RankedListLoss(margin, Tn, imbalance=0.5, alpha=None, Tp=0)`` (same names,
    order and ``alpha=None -> 1 + margin / 2``), so ``pml.losses.RankedListLoss(...)`` ->
    ``reid.losses.RankedListLoss(...)`` is a drop-in; the defaults are the paper's
    (``margin=0.4, Tn=10, alpha=1.2, Tp=0, imbalance=0.5``). ``balance=`` is accepted for
    ``imbalance=``.

    Distances: Euclidean on L2-normalised embeddings (PML ``LpDistance()``, the default
    ``distance``). For each anchor ``i``: positives are active when ``d_ij > alpha - margin``,
    negatives when ``d_ij < alpha``; pair losses ``[d - (alpha - margin)]_+`` and
    ``[alpha - d]_+``; weights normalised within the anchor's active pairs and detached:
    negatives ``exp(Tn (alpha - d))``, positives ``exp(Tp (d - (alpha - margin)))`` by default,
    or ``scheme`` (any :mod:`reid.weighting` scheme, name or instance, parameters in
    ``scheme_params``) on the pair probabilities of docs/weighting.md §2 (``Tn``/``Tp`` then
    unused). Anchors: ``anchor_weighting="uniform"`` (default, the paper's mean over anchors) or
    ``"released"`` (each anchor by its share of the batch's active-pair weight, the authors'
    code); see :func:`ranked_list_terms`.

    Difference from PML: the forward value is the same (up to PML's ``1e-5`` per entry in the
    normaliser), but PML does not detach the weights, so its gradient contains ``d w / d d``
    terms: for ``Tn > 0`` it pushes the hardest negatives with *less* than their weight, whereas
    here (as in the authors' code) each active pair's gradient is its weight times the hinge's
    slope. Unlike PML, ``indices_tuple`` (pairs or triplets from a miner) and ``ref_emb`` /
    ``ref_labels`` are supported; works inside :class:`reid.losses.CrossBatchMemory`.
    ``last_stats``: floats ``active_pos_mean``, ``active_neg_mean`` (active pairs per anchor),
    ``wn_max_mean``.
    """

    def __init__(self, margin: float = 0.4, Tn: float = 10.0, imbalance: float | None = None,
                 alpha: float | None = None, Tp: float = 0.0, scheme=None, anchor_weighting: str = "uniform",
                 balance: float | None = None, **params) -> None:
        pml_kwargs, scheme_params = split_pml_kwargs(params)
        super().__init__(**pml_kwargs)
        if imbalance is not None and balance is not None:
            raise RankedListLossError("RankedListLoss: give imbalance= (PML's name) or balance=, not both")
        balance = 0.5 if imbalance is None and balance is None else (imbalance if imbalance is not None else balance)
        alpha = 1.0 + margin / 2.0 if alpha is None else alpha
        if not 0 < margin < alpha:
            raise RankedListLossError(f"RankedListLoss: need 0 < margin < alpha; got margin={margin}, alpha={alpha}")
        if not 0.0 <= balance <= 1.0:
            raise RankedListLossError(f"RankedListLoss: imbalance={balance} must be in [0, 1]")
        if anchor_weighting not in ANCHOR_WEIGHTINGS:
            raise RankedListLossError(f"RankedListLoss: anchor_weighting={anchor_weighting!r}; valid: "
                                      f"{', '.join(ANCHOR_WEIGHTINGS)} (uniform: the paper's formula)")
        if scheme is None and scheme_params:
            raise RankedListLossError(f"RankedListLoss: unknown argument(s) {sorted(scheme_params)} "
                                      "(scheme parameters need scheme=...)")
        self.alpha, self.margin, self.Tn, self.Tp = float(alpha), float(margin), float(Tn), float(Tp)
        self.balance = float(balance)
        self.scheme = None if scheme is None else get_scheme(scheme, **scheme_params)
        self.anchor_weighting = anchor_weighting
        self.add_to_recordable_attributes(list_of_names=["alpha", "margin", "Tn", "Tp", "balance"], is_stat=False)
        self.last_stats: dict = {}

    @property
    def imbalance(self) -> float:
        """PML's name for ``balance`` (the negatives' share of the per-anchor loss)."""
        return self.balance

    def get_default_distance(self):
        return LpDistance()

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        if self.distance.is_inverted:
            raise RankedListLossError("RankedListLoss needs a distance (not a similarity); use LpDistance")
        dist = self.distance(embeddings, ref_emb)
        pos, neg = pair_masks(indices_tuple, labels, ref_labels, same_ref=ref_emb is embeddings)
        loss, wp, wn, ap, an = ranked_list_terms(dist, pos, neg, self.alpha, self.margin, self.Tn, self.Tp,
                                                 self.balance, scheme=self.scheme,
                                                 anchor_weighting=self.anchor_weighting)
        self.last_stats = make_stats(None, None, loss=float(loss.detach().mean()) if loss.numel() else 0.0,
                                     active_pos_mean=float(ap.sum(1).double().mean()),
                                     active_neg_mean=float(an.sum(1).double().mean()),
                                     wn_max_mean=float(wn.max(1).values.double().mean()) if wn.numel() else 0.0)
        return {"loss": {"losses": loss, "indices": c_f.torch_arange_from_size(loss),
                         "reduction_type": "element"}}
