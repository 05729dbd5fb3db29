"""Set-based temporal aggregation: the frame features of a clip pooled to one tracklet vector.

Every aggregator is called as ``agg(frame_feats [B, T, D], mask [B, T] bool, frame_logits=None,
labels=None) -> (pooled [B, D], frame_weights [B, T])``. ``mask[b, t]`` is True for a real frame
and False for padding; padded frames never contribute (their weight is exactly 0 and their
values are never read into the result). ``frame_weights`` sum to 1 over the valid frames of each
clip: the share of each frame in the pooled vector, logged for inspection.

Aggregators (``model.aggregation``):

* ``mean``: ``f = 1/|V| sum_{t in V} f_t`` (V = valid frames).
* ``max``: ``f_d = max_{t in V} f_{t,d}``; ``frame_weights[t]`` = fraction of the D channels
  whose max comes from frame t.
* ``quality``: learned quality score ``s_t = MLP(f_t)``, ``a = softmax_{t in V}(s)``,
  ``f = sum_t a_t f_t`` (quality-aware set pooling; Liu et al., "Quality Aware Network for Set to
  Set Recognition", CVPR 2017). Trained end-to-end through the pooled feature.
* ``id_quality``: ID-aware quality (docs/methods.md §4, the IAQ/OSM pipeline of Wang et al.):
  frame weights are example weights at frame level, computed by the weighting core
  (:func:`reid.weighting.frames.frame_weights`, docs/weighting.md §4): the identity classifier is
  run on each frame's BN feature, ``q_t = p(y | frame t)`` with ``y`` the tracklet's training label,
  detached (no gradient through the weights), normalised over the valid frames,
  ``a_t = q_t / sum_{s in V} q_s``, ``f = sum_t a_t f_t``. Frames the classifier does not recognise
  as the tracklet's identity (blur, occlusion, truncation, another person) are down-weighted. At
  test time identities are unseen: ``y`` is replaced by the tracklet's consensus identity
  ``y^ = argmax_c mean_{s in V} p(c | frame s)`` (``test_identity="consensus"``, default), so a
  frame that disagrees with the rest of the tracklet is down-weighted however confidently it is
  classified; ``test_identity="confidence"`` (``q_t = max_c p(c | frame t)``) is the earlier proxy,
  which gives a confidently misclassified outlier the *largest* weight. The last call's per-frame
  ``p`` and unnormalised ``w`` are kept in ``last_stats`` for logging (clean vs outlier frames).
* ``attention``: temporal self-attention then attention pooling. Per head h (H heads, the D
  channels split in H groups), ``A_h = softmax_{s in V}(<W_q^h LN(f_t), W_k^h LN(f_s)> / sqrt(d_k))``
  and the refined frame feature is ``g_t^h = sum_s A_h[t, s] f_s^h`` (identity values: every
  ``g_t`` is a convex combination of real frame features, so it stays in the backbone's feature
  space for BNNeck and the metric loss); then ``a = softmax_{t in V}(w^T g_t)``, ``f = sum_t a_t g_t``.
  Padded frames are masked out as keys; ``frame_weights`` reports the pooling weights ``a``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reid.registry import Registry
from reid.weighting.frames import frame_weights


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask`` (padded positions get exactly 0)."""
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1).masked_fill(~mask, 0.0)


def weighted_sum(frame_feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_t weights[b, t] * frame_feats[b, t]`` -> ``[B, D]``."""
    return torch.einsum("bt,btd->bd", weights, frame_feats)


class Aggregator(nn.Module):
    """Base class. ``needs_frame_logits`` tells the model to run the classifier on every frame."""

    needs_frame_logits = False

    def forward(
        self,
        frame_feats: torch.Tensor,
        mask: torch.Tensor,
        frame_logits: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class MeanAggregator(Aggregator):
    def forward(self, frame_feats, mask, frame_logits=None, labels=None):
        weights = mask.to(frame_feats.dtype)
        weights = weights / weights.sum(dim=1, keepdim=True)
        return weighted_sum(frame_feats, weights), weights


class MaxAggregator(Aggregator):
    def forward(self, frame_feats, mask, frame_logits=None, labels=None):
        masked = frame_feats.masked_fill(~mask[..., None], float("-inf"))
        pooled, argmax = masked.max(dim=1)  # [B, D], [B, D]
        counts = torch.zeros(mask.shape, dtype=frame_feats.dtype, device=frame_feats.device)
        counts.scatter_add_(1, argmax, torch.ones_like(pooled))
        return pooled, counts / frame_feats.shape[-1]


class QualityAggregator(Aggregator):
    """Learned per-frame quality score ``s_t = w2^T ReLU(W1 f_t + b1) + b2``."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(dim // 8, 16)
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        # small last layer: training starts close to mean pooling, not from random preferences
        nn.init.normal_(self.score[2].weight, std=0.01)
        nn.init.zeros_(self.score[2].bias)

    def forward(self, frame_feats, mask, frame_logits=None, labels=None):
        weights = masked_softmax(self.score(frame_feats).squeeze(-1), mask)
        return weighted_sum(frame_feats, weights), weights


class IDQualityAggregator(Aggregator):
    """ID-aware quality: frame weights from the core, on the classifier's (detached) frame-level
    probabilities of the tracklet's label (training) or consensus identity (test time)."""

    needs_frame_logits = True

    def __init__(self, test_identity: str = "consensus") -> None:
        super().__init__()
        if test_identity not in ("consensus", "confidence"):
            raise ValueError(f"id_quality: test_identity={test_identity!r}; valid: 'consensus', 'confidence'")
        self.test_identity = test_identity
        self.last_stats: dict = {}

    def forward(self, frame_feats, mask, frame_logits=None, labels=None):
        if frame_logits is None:
            raise ValueError("id_quality aggregation needs frame_logits [B, T, C] (the model computes them)")
        n_classes = frame_logits.shape[-1]
        if labels is not None:
            labels = torch.as_tensor(labels, device=frame_logits.device).long()
            if labels.shape != (frame_logits.shape[0],):
                raise ValueError(f"labels must have shape [B]={frame_logits.shape[0]}, got {tuple(labels.shape)}")
            if labels.min() < 0 or labels.max() >= n_classes:
                raise ValueError(
                    f"labels must be training labels in [0, {n_classes}); got range "
                    f"[{int(labels.min())}, {int(labels.max())}] (query/gallery tracklets have label -1: "
                    "call without labels at test time)"
                )
        identity = "label" if labels is not None else self.test_identity
        p, w, weights = frame_weights(frame_logits, mask, identity, labels)
        self.last_stats = {"p": p, "w": w, "identity": identity}
        weights = weights.to(frame_feats.dtype)
        return weighted_sum(frame_feats, weights), weights


class TemporalAttentionAggregator(Aggregator):
    """Masked multi-head temporal self-attention with identity values, then attention pooling."""

    def __init__(self, dim: int, heads: int = 4, attn_dim: int = 256) -> None:
        super().__init__()
        if dim % heads:
            heads = math.gcd(dim, heads)  # e.g. an odd embedding_dim: fall back to fewer heads
        attn_dim = min(attn_dim, dim) // heads * heads
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, attn_dim)
        self.key = nn.Linear(dim, attn_dim)
        self.pool_score = nn.Linear(dim, 1)
        nn.init.normal_(self.pool_score.weight, std=0.01)
        nn.init.zeros_(self.pool_score.bias)

    def forward(self, frame_feats, mask, frame_logits=None, labels=None):
        b, t, d = frame_feats.shape
        h = self.heads
        normed = self.norm(frame_feats)
        q = self.query(normed).reshape(b, t, h, -1).transpose(1, 2)  # [B, H, T, dk]
        k = self.key(normed).reshape(b, t, h, -1).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, H, T(query), T(key)]
        attn = masked_softmax(scores, mask[:, None, None, :])
        values = frame_feats.reshape(b, t, h, d // h).transpose(1, 2)  # [B, H, T, D/H]
        refined = (attn @ values).transpose(1, 2).reshape(b, t, d)
        weights = masked_softmax(self.pool_score(refined).squeeze(-1), mask)
        return weighted_sum(refined, weights), weights


#: name -> builder(dim) -> Aggregator (``model.aggregation``)
AGGREGATORS: Registry = Registry("aggregation")


@AGGREGATORS.register("mean")
def _mean(dim: int) -> Aggregator:
    return MeanAggregator()


@AGGREGATORS.register("max")
def _max(dim: int) -> Aggregator:
    return MaxAggregator()


@AGGREGATORS.register("quality")
def _quality(dim: int) -> Aggregator:
    return QualityAggregator(dim)


@AGGREGATORS.register("id_quality")
def _id_quality(dim: int) -> Aggregator:
    return IDQualityAggregator()


@AGGREGATORS.register("attention")
def _attention(dim: int) -> Aggregator:
    return TemporalAttentionAggregator(dim)


def build_aggregator(name: str, dim: int) -> Aggregator:
    return AGGREGATORS.get(name, key="model.aggregation")(dim)


__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "IDQualityAggregator",
    "MaxAggregator",
    "MeanAggregator",
    "QualityAggregator",
    "TemporalAttentionAggregator",
    "build_aggregator",
    "masked_softmax",
    "weighted_sum",
]
