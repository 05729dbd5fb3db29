"""Instance cross entropy (Wang et al., "Instance Cross Entropy for Deep Metric Learning", 2019)
with example weighting through the core (docs/methods.md §3)."""

from __future__ import annotations

import math

import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f

from reid.losses._common import make_stats, pair_masks, split_pml_kwargs
from reid.weighting import NORMALIZATIONS, example_weights, get_scheme, stable_log_probs, weighted_cross_entropy


def _per_query_factor(rows, p_idx, a_idx, valid, scheme) -> torch.Tensor:
    """Factor ``f_k = N_valid / (Q W_a(k))`` that turns the core's ``w_k / N_valid``
    (``normalize="n"``) into ``w_k / (Q W_a)``: weights normalised within each anchor ``a``'s
    positive pairs (``W_a`` their sum), anchors averaged (``Q`` anchors with a valid pair)."""
    with torch.no_grad():
        lp = stable_log_probs(rows.detach(), p_idx)
        ew = example_weights(None, scheme, "n", log_p=lp.log_p, log1m_p=lp.log1m_p, valid=valid)
        w = ew.w
        per_anchor = torch.zeros(int(a_idx.max()) + 1, dtype=w.dtype, device=w.device).index_add_(0, a_idx, w)
        anchors = torch.unique(a_idx[valid])
        n_valid, n_anchors = int(valid.sum()), max(len(anchors), 1)
        total = per_anchor[a_idx]
        return torch.where(total > 0, n_valid / (n_anchors * total.clamp(min=torch.finfo(w.dtype).tiny)),
                           torch.zeros_like(total))


class InstanceCrossEntropyLoss(BaseMetricLossFunction):
    """Instance cross entropy (ICE): cross entropy between the instance matching distribution
    and the ground-truth matching distribution, reweighted by gradient rescaling.

    Matching distribution of anchor ``i``: ``softmax_j(s_ij / temperature)`` over the other
    instances ``j`` (self excluded; ``s`` cosine similarity by default). **Several positives**:
    each (anchor, positive) pair is one example whose matching distribution is the softmax over
    that positive and the anchor's negatives (the other positives are left out of its
    denominator), so ``p_k = exp(s_ap/t) / (exp(s_ap/t) + sum_n exp(s_an/t))`` and its loss is
    ``-log p_k``. (The alternative, the summed mass of all positives, would let one easy
    positive hide a hard one; per-pair examples give each positive its own weight.) With
    ``scheme="cce", normalize="n"`` this is exactly NT-Xent / PML ``NTXentLoss`` (mean over
    positive pairs); other schemes apply the weights ``w(p_k)`` of docs/methods.md §1 unchanged via
    :func:`reid.weighting.weighted_cross_entropy`. Anchors without negatives are not examples.

    Normalisation of the weights (``normalize_over``): ``"batch"`` (default) divides by ``Z`` over
    all positive pairs of the batch (``normalize="sum"``: the batch sum of weights, as the DM
    code's derivative normalisation); ``"query"`` normalises within each anchor's positive pairs,
    ``w_k / sum_{k' in pos(a)} w_k'``, then averages over anchors, so an anchor with many
    positives gets no more total push than one with a single positive (``normalize`` unused).
    The ICE paper normalises over the mini-batch (the batch-level derivative normalisation it
    shares with DM/IMAE); per-query is offered for comparison (docs/weighting.md §2).

    Reducers: per-pair losses (``"pos_pair"``) are scaled by the number of pairs so that the
    default ``MeanReducer`` returns the core's normalised sum. ``indices_tuple`` from a miner
    selects the positive and negative pairs; ``ref_emb`` / ``ref_labels`` supported; works inside
    :class:`reid.losses.CrossBatchMemory`. ``last_stats``: ``p``, ``w`` per positive pair.
    """

    def __init__(self, temperature: float = 0.07, scheme="cce", normalize: str = "sum", normalize_over: str = "batch",
                 **params) -> None:
        pml_kwargs, scheme_params = split_pml_kwargs(params)
        super().__init__(**pml_kwargs)
        if temperature <= 0:
            raise ValueError(f"InstanceCrossEntropyLoss: temperature={temperature} must be > 0")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"InstanceCrossEntropyLoss: normalize={normalize!r}; valid: 'sum', 'n'")
        if normalize_over not in ("batch", "query"):
            raise ValueError(f"InstanceCrossEntropyLoss: normalize_over={normalize_over!r}; valid: 'batch', 'query'")
        self.normalize_over = normalize_over
        self.temperature = float(temperature)
        self.scheme = get_scheme(scheme, **scheme_params)
        self.normalize = normalize
        self.add_to_recordable_attributes(list_of_names=["temperature"], is_stat=False)
        self.last_stats: dict = {}

    def get_default_distance(self):
        return CosineSimilarity()

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        mat = self.distance(embeddings, ref_emb)
        sim = mat if self.distance.is_inverted else -mat
        pos, neg = pair_masks(indices_tuple, labels, ref_labels, same_ref=ref_emb is embeddings)
        a_idx, p_idx = torch.where(pos)
        if a_idx.numel() == 0:
            self.last_stats = make_stats(sim.new_zeros(0), sim.new_zeros(0), loss=0.0)
            return self.zero_losses()
        rows = (sim / self.temperature)[a_idx]
        keep = neg[a_idx]
        keep[torch.arange(len(p_idx), device=keep.device), p_idx] = True
        rows = rows.masked_fill(~keep, -math.inf)
        has_neg = neg[a_idx].any(dim=1)
        factor, normalize = None, self.normalize
        if self.normalize_over == "query":
            factor, normalize = _per_query_factor(rows, p_idx, a_idx, has_neg, self.scheme), "n"
        out = weighted_cross_entropy(rows, p_idx, self.scheme, normalize, reduction="none", valid=has_neg,
                                     example_factor=factor)
        self.last_stats = make_stats(out.weights.p[has_neg], out.weights.w[has_neg],
                                     loss=float(out.loss.detach().sum()))
        return {"loss": {"losses": out.loss * len(p_idx), "indices": (a_idx, p_idx),
                         "reduction_type": "pos_pair"}}
