"""Frame weights within a tracklet: example weights at frame level (docs/weighting.md §4).

A frame's probability ``p_t`` is what the identity classifier gives to the tracklet's identity;
its weight is a scheme's ``w(p_t)`` normalised over the tracklet's valid frames,
``a_t = w(p_t) / sum_{s in V} w(p_s)``. The ID-aware quality of the IAQ/OSM pipeline is the
scheme ``beta(alpha=2, eta=1)``, ``w(p) = p`` (:data:`ID_QUALITY_SCHEME`).

Which identity (``identity=``):

* ``"label"`` (training): the tracklet's training label ``y``, ``p_t = p(y | frame t)``;
* ``"consensus"`` (test time, identities unseen): the tracklet's consensus identity
  ``y^ = argmax_c mean_{s in V} p(c | frame s)``, ``p_t = p(y^ | frame t)``. A frame that disagrees
  with the rest of the tracklet (another person, an occluder) gets a low ``p_t`` however
  confidently it is classified: three frames at ``p(A) = 0.65`` and one outlier at
  ``p(B) = 0.99`` give the outlier the smallest weight (with the classifier's confidence
  ``max_c p(c | frame t)`` as quality it would get the largest);
* ``"confidence"``: ``p_t = max_c p(c | frame t)``, the earlier test-time proxy, for comparison.
"""

from __future__ import annotations

import torch

from reid.weighting.log_probs import stable_log_probs
from reid.weighting.pairs import row_normalized
from reid.weighting.schemes import WeightScheme, get_scheme

ID_QUALITY_SCHEME = get_scheme("beta", alpha=2.0, eta=1.0)  # w(p) = p
IDENTITIES = ("label", "consensus", "confidence")


def frame_identity(log_probs: torch.Tensor, mask: torch.Tensor, identity: str,
                   labels: torch.Tensor | None = None) -> torch.Tensor:
    """The class index ``[B, T]`` each frame's ``p_t`` is read at (module docstring);
    ``log_probs [B, T, C]`` (log-softmax of the frame logits), ``mask [B, T]``."""
    if identity == "label":
        if labels is None:
            raise ValueError("frame_identity: identity='label' needs the tracklets' labels")
        return labels[:, None].expand(mask.shape)
    if identity == "consensus":
        probs = log_probs.exp() * mask[..., None].to(log_probs.dtype)
        return probs.sum(dim=1).argmax(dim=-1)[:, None].expand(mask.shape)
    if identity == "confidence":
        return log_probs.argmax(dim=-1)
    raise ValueError(f"frame_identity: identity={identity!r}; valid: {', '.join(IDENTITIES)}")


def frame_weights(frame_logits: torch.Tensor, mask: torch.Tensor, identity: str = "label",
                  labels: torch.Tensor | None = None, scheme: WeightScheme | None = None):
    """Per-frame ``(p [B, T], w [B, T], a [B, T])``: probability of the chosen identity, the
    scheme's weight (0 on padding) and the weights normalised over each tracklet's valid frames
    (``a``, exactly 0 on padding). Detached; computed in float32 (float64 kept), from stable
    ``log p`` / ``log(1 - p)`` so tiny probabilities never underflow to 0/0."""
    scheme = ID_QUALITY_SCHEME if scheme is None else scheme
    with torch.no_grad():
        z = frame_logits.detach()
        z = z if z.dtype == torch.float64 else z.float()
        b, t, c = z.shape
        log_probs = torch.log_softmax(z, dim=-1)
        idx = frame_identity(log_probs, mask, identity, labels)
        lp = stable_log_probs(z.reshape(b * t, c), idx.reshape(b * t))
        log_w = scheme.log_w(lp.log_p, lp.log1m_p).reshape(b, t)
        a, _ = row_normalized(log_w, mask)
        p = lp.log_p.exp().reshape(b, t)
        w = log_w.exp().masked_fill(~mask, 0.0)
        return p, w, a


__all__ = ["ID_QUALITY_SCHEME", "IDENTITIES", "frame_identity", "frame_weights"]
