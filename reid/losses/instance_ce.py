"""Instance cross entropy (Wang et al., "Instance Cross Entropy for Deep Metric Learning", 2019)
with example weighting through the core (docs/methods.md §3)."""

from __future__ import annotations

import math

import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f

from reid.losses._common import make_stats, pair_masks, split_pml_kwargs
from reid.weighting import NORMALIZATIONS, get_scheme, weighted_cross_entropy


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

    Reducers: per-pair losses (``"pos_pair"``) are scaled by the number of pairs so that the
    default ``MeanReducer`` returns the core's normalised sum. ``indices_tuple`` from a miner
    selects the positive and negative pairs; ``ref_emb`` / ``ref_labels`` supported; works inside
    :class:`reid.losses.CrossBatchMemory`. ``last_stats``: ``p``, ``w`` per positive pair.
    """

    def __init__(self, temperature: float = 0.07, scheme="cce", normalize: str = "sum", **params) -> None:
        pml_kwargs, scheme_params = split_pml_kwargs(params)
        super().__init__(**pml_kwargs)
        if temperature <= 0:
            raise ValueError(f"InstanceCrossEntropyLoss: temperature={temperature} must be > 0")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"InstanceCrossEntropyLoss: normalize={normalize!r}; valid: 'sum', 'n'")
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
        out = weighted_cross_entropy(rows, p_idx, self.scheme, self.normalize, reduction="none", valid=has_neg)
        self.last_stats = make_stats(out.weights.p[has_neg], out.weights.w[has_neg],
                                     loss=float(out.loss.detach().sum()))
        return {"loss": {"losses": out.loss * len(p_idx), "indices": (a_idx, p_idx),
                         "reduction_type": "pos_pair"}}
