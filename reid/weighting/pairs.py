"""Pair weights for ranking losses (docs/weighting.md §2): the per-pair probability a scheme acts
on, and weights normalised within each query's active pairs. All detached.

A weighting scheme ``w(p)`` needs a probability-like ``p_ij in [0, 1]`` per pair, 1 when the pair
is satisfied and 0 when it is maximally violated; the losses define it as follows.

* Ranked List Loss (Wang et al., CVPR 2019), boundary ``b = alpha - m``, L2-normalised
  embeddings so ``d in [0, 2]``:

  - active negative (``d < alpha``): ``p_ij = d_ij / alpha``, so ``1 - p = (alpha - d) / alpha``;
  - active positive (``d > b``): ``p_ij = 1 - (d_ij - b) / (2 - b)`` (clamped to [0, 1] if an
    un-normalised distance exceeds 2), so ``1 - p = (d - b) / (2 - b)``.

  The paper's weights are the ``exponential`` scheme ``w = exp(beta (1 - p))`` of these ``p``:
  ``beta = Tn alpha`` gives ``exp(Tn (alpha - d))`` and ``beta = Tp (2 - b)`` gives
  ``exp(Tp (d - b))``, normalised over the query's active pairs (:func:`rll_default_log_w`
  computes exactly these, the default); any other scheme replaces them.
* Triplet (batch hard): ``p_i = sigmoid(d_an - d_ap)``, the probability that the anchor matches
  its hardest positive rather than its hardest negative (:func:`triplet_log_probs`).
* OSM + CAA: :func:`osm_caa_weights` (mining score times class-aware attention, a probability
  already; normalised over the batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reid.weighting.schemes import WeightScheme


def row_normalized(log_w: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``w_ij / sum_{k active} w_ik`` over each row's active entries (0 elsewhere, rows without
    an active entry all 0) and ``log sum_{k active} w_ik`` per row (``-inf`` for those rows); from
    ``log w``, as a masked softmax so no weight overflows. Detached."""
    with torch.no_grad():
        masked = log_w.detach().masked_fill(~active, -math.inf)
        log_total = torch.logsumexp(masked, dim=-1)
        finite = torch.isfinite(log_total)
        shift = torch.where(finite, log_total, torch.zeros_like(log_total))
        weights = torch.exp(masked - shift[..., None]).masked_fill(~active, 0.0)
        weights = torch.where(finite[..., None], weights, torch.zeros_like(weights))
        return weights, log_total


def scheme_pair_log_w(scheme: WeightScheme, p: torch.Tensor) -> torch.Tensor:
    """``log w(p_ij)`` of a scheme for a matrix of pair probabilities (detached, clamped to [0, 1])."""
    with torch.no_grad():
        p = p.detach().clamp(0.0, 1.0)
        return scheme.log_w(torch.log(p), torch.log1p(-p))


def rll_pair_probs(dist: torch.Tensor, alpha: float, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """RLL's pair probabilities ``(p_pos, p_neg)`` (module docstring), detached, in [0, 1]."""
    with torch.no_grad():
        d = dist.detach()
        boundary = alpha - margin
        p_neg = (d / alpha).clamp(0.0, 1.0)
        p_pos = (1.0 - (d - boundary) / (2.0 - boundary)).clamp(0.0, 1.0)
        return p_pos, p_neg


def rll_default_log_w(dist: torch.Tensor, alpha: float, margin: float, Tn: float, Tp: float):
    """The paper's ``log w``: ``Tp (d - (alpha - m))`` for positives, ``Tn (alpha - d)`` for
    negatives (= the ``exponential`` scheme of :func:`rll_pair_probs`, without the roundoff of
    going through ``p``). Detached."""
    with torch.no_grad():
        d = dist.detach()
        return Tp * (d - (alpha - margin)), Tn * (alpha - d)


def triplet_log_probs(gap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p`` and ``log(1 - p)`` of ``p = sigmoid(-gap)``, ``gap = d_ap - d_an`` (stable, detached)."""
    with torch.no_grad():
        g = gap.detach()
        return -F.softplus(g), -F.softplus(-g)


def anchor_shares(log_row_total: torch.Tensor) -> torch.Tensor:
    """Each anchor's share of the batch's total active-pair weight,
    ``W_i / sum_k W_k`` with ``log W_i`` per anchor (``-inf``: no active pair, share 0). Detached."""
    with torch.no_grad():
        if not torch.isfinite(log_row_total).any():
            return torch.zeros_like(log_row_total)
        return torch.softmax(log_row_total, dim=0)


__all__ = ["anchor_shares", "osm_caa_weights", "rll_default_log_w", "rll_pair_probs", "row_normalized", "scheme_pair_log_w",
           "triplet_log_probs"]


def osm_caa_weights(dist: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, attention: torch.Tensor,
                    ref_attention: torch.Tensor, alpha: float, sigma: float):
    """OSM + CAA pair weights (Wang et al., AAAI 2019; docs/weighting.md §2), detached:
    online soft mining scores ``exp(-d^2 / sigma^2)`` (positives) and ``[alpha - d]_+``
    (negatives), times the class-aware pair attention ``min(a_i, a_j)``, each kind normalised to
    sum 1 over all its pairs of the batch. Returns ``(w_pos, w_neg)`` ``[N, M]``."""
    with torch.no_grad():
        d = dist.detach()
        pair_attention = torch.minimum(attention.detach()[:, None], ref_attention.detach()[None, :])
        s_pos = torch.exp(-(d * d) / (sigma * sigma)) * pair_attention * pos
        s_neg = (alpha - d).clamp_min(0) * pair_attention * neg
        tiny = torch.finfo(d.dtype).tiny
        w_pos = s_pos / s_pos.sum().clamp(min=tiny)
        w_neg = s_neg / s_neg.sum().clamp(min=tiny)
        return w_pos, w_neg
