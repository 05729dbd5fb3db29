"""Online soft mining + class-aware attention (Wang et al., "Deep Metric Learning by Online Soft
Mining and Class-Aware Attention", AAAI 2019; docs/methods.md §3), weights from the core
(:func:`reid.weighting.pairs.osm_caa_weights`)."""

from __future__ import annotations

from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f

from reid.errors import UserError
from reid.losses._common import make_stats, pair_masks
from reid.weighting.log_probs import stable_log_probs
from reid.weighting.pairs import osm_caa_weights


class OSMCAAError(UserError, ValueError):
    """A bad OSMCAALoss argument or call."""


class OSMCAALoss(BaseMetricLossFunction):
    """OSM + CAA: contrastive loss with soft-mined, attention-weighted pairs.

    ``L = (1 - balance) sum_{ij pos} w+_ij d_ij^2 / 2 + balance sum_{ij neg} w-_ij [alpha - d_ij]_+^2 / 2``
    with detached weights ``w+ ~ exp(-d^2 / sigma^2) min(a_i, a_j)``, ``w- ~ [alpha - d]_+ min(a_i, a_j)``,
    each normalised over the batch's pairs of its kind; ``a_i`` is the class-aware attention, the
    identity classifier's probability of example i's labelled class (detached), so a pair
    containing a likely mislabelled example (low ``a``) gets proportionally less gradient.
    Defaults ``alpha=1.2``, ``sigma=0.8``, ``balance=0.5``; Euclidean distance on L2-normalised
    embeddings.

    Call ``loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None, *,
    logits=None, attention=None)``: the attention comes from ``attention`` ([N], in [0, 1]) or is
    computed from the identity ``logits`` [N, C] (``softmax(logits)[i, y_i]``, stably); one of the
    two is required (``needs_logits`` tells a training loop to pass them), unless the loss was
    built with ``attention="none"`` (plain OSM, ``a = 1``). With ``ref_emb`` the references'
    attention is ``ref_attention`` (default 1). The per-anchor terms (``"element"``) are scaled by
    ``N`` so PML's default ``MeanReducer`` returns ``L``.
    """

    needs_logits = True

    def __init__(self, alpha: float = 1.2, sigma: float = 0.8, balance: float = 0.5, attention: str = "classifier",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if alpha <= 0 or sigma <= 0 or not 0.0 <= balance <= 1.0:
            raise OSMCAAError(f"OSMCAALoss: need alpha > 0, sigma > 0, 0 <= balance <= 1; got alpha={alpha}, "
                              f"sigma={sigma}, balance={balance}")
        if attention not in ("classifier", "none"):
            raise OSMCAAError(f"OSMCAALoss: attention={attention!r}; valid: 'classifier' (CAA), 'none' (plain OSM)")
        self.alpha, self.sigma, self.balance = float(alpha), float(sigma), float(balance)
        self.attention_mode = attention
        self.needs_logits = attention == "classifier"
        self._attention = self._ref_attention = None
        self.add_to_recordable_attributes(list_of_names=["alpha", "sigma", "balance"], is_stat=False)
        self.last_stats: dict = {}

    def get_default_distance(self):
        return LpDistance()

    def forward(self, embeddings, labels=None, indices_tuple=None, ref_emb=None, ref_labels=None, *,
                logits=None, attention=None, ref_attention=None):
        if attention is None and logits is not None:
            attention = stable_log_probs(logits, labels).log_p.exp()
        if attention is None:
            if self.attention_mode == "classifier":
                raise OSMCAAError("OSMCAALoss needs the identity logits (logits=[N, C]) or attention=[N] for its "
                                  "class-aware attention; build it with attention='none' for plain OSM")
            attention = embeddings.new_ones(embeddings.shape[0])
        self._attention, self._ref_attention = attention.detach(), ref_attention
        try:
            return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        finally:
            self._attention = self._ref_attention = None

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        if self.distance.is_inverted:
            raise OSMCAAError("OSMCAALoss needs a distance (not a similarity); use LpDistance")
        a = self._attention.to(embeddings.dtype)
        same = ref_emb is embeddings
        ref_a = a if same else (self._ref_attention if self._ref_attention is not None
                                else embeddings.new_ones(ref_emb.shape[0]))
        dist = self.distance(embeddings, ref_emb)
        pos, neg = pair_masks(indices_tuple, labels, ref_labels, same_ref=same)
        w_pos, w_neg = osm_caa_weights(dist, pos, neg, a, ref_a.to(embeddings.dtype), self.alpha, self.sigma)
        per_anchor = (1 - self.balance) * (w_pos * dist.pow(2)).sum(1) / 2 \
            + self.balance * (w_neg * (self.alpha - dist).clamp_min(0).pow(2)).sum(1) / 2
        losses = per_anchor * embeddings.shape[0]
        self.last_stats = make_stats(a, None, loss=float(per_anchor.detach().sum()),
                                     w_pos_max=float(w_pos.max()) if w_pos.numel() else 0.0)
        return {"loss": {"losses": losses, "indices": c_f.torch_arange_from_size(losses),
                         "reduction_type": "element"}}
