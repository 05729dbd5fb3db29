"""Cross entropy with example weighting by gradient rescaling (IMAE / Derivative Manipulation)."""

from __future__ import annotations

import torch
from torch import nn

from reid.errors import UserError
from reid.losses._common import weighted_ce_stats
from reid.weighting import NORMALIZATIONS, WeightScheme, get_scheme, weighted_cross_entropy


class WeightedLossArgumentError(UserError, ValueError):
    """A bad argument to a weighted classification loss."""


class WeightedCrossEntropyLoss(nn.Module):
    """Cross entropy whose per-example gradient magnitude is set by a weighting scheme.

    Logit gradient of example i (docs/methods.md §1; Wang et al., IMAE and DM):
    ``w(p_i) / (2 (1 - p_i)) * (p_i - q_i) / Z`` with ``w`` detached and ``Z = sum_j w(p_j)``
    (``normalize="sum"``, as in the released DM code) or ``Z = N`` (``normalize="n"``). With
    ``scheme="cce", normalize="n"`` the gradient is exactly ``F.cross_entropy``'s.

    Args:
        scheme: weighting scheme name (``cce, mae, mse, gce, imae, dm, exponential, normal, beta``)
            or a :class:`reid.weighting.WeightScheme`.
        normalize: ``"sum"`` or ``"n"``.
        label_smoothing: ``eps``; weights come from ``p_i`` of the labelled class, the direction
            goes toward the smoothed target ``(1 - eps) q + eps / C`` (see
            :func:`reid.weighting.weighted_cross_entropy` for the cap that keeps it finite).
        reduction: ``"sum"`` (default: the normalised sum, a scalar - the DM loss) or ``"none"``
            (per-example terms summing to that scalar, each carrying its own gradient).
        reducer: a PML reducer (``pytorch_metric_learning.reducers``); default ``None``: the
            core's normalised sum above. With a reducer the loss follows PML's contract: the
            reducer sees each example's own loss, the (smoothed) cross entropy ``CE_i``, as an
            ``"element"`` loss, so thresholds and non-zero counts mean what they mean in PML;
            each ``CE_i`` carries the DM gradient ``N c_i grad CE_i`` (``N`` the batch size).
            ``MeanReducer`` / ``AvgNonZeroReducer``: the core's gradient exactly, value the mean
            CE; ``ThresholdReducer(low, high)``: only the examples whose ``CE_i`` passes, each with
            ``N / k`` times its DM gradient (``k`` kept), ``Z`` still over the whole batch.
        **scheme_params: the scheme's parameters, e.g. ``T=8.0`` for imae, ``lam=0.5, beta=8.0``
            for dm. ``distance=`` / ``embedding_regularizer=`` are rejected (a classification loss
            on logits has neither).

    Called as ``loss(logits, labels)``, or with PML's ``loss(embeddings, labels, indices_tuple,
    ref_emb, ref_labels)``, so it runs inside ``pytorch_metric_learning.losses.MultipleLosses``
    with miners: ``indices_tuple`` is ignored (every labelled example is used and the weighting
    core, not a miner, sets each one's influence); ``ref_emb`` raises.

    Forward value: ``sum_i c_i CE_i`` with ``c_i = w_i / (2 (1 - p_i) Z)`` treated as constants
    (for cce/normalize="n": the mean cross entropy). Computed in float32 even under autocast and
    finite for any finite logits. After each call ``last_stats`` holds ``p``, ``w`` (per example,
    detached), ``coefficients`` (``c_i``), ``normalized_w`` (``w_i / Z``) and float summaries
    (``p_mean``, ``p_std``, ``p_var``, ``p_min``, ``p_max``, the same for ``w``, and ``loss``),
    computed on first read; quantiles and noisy/clean splits: :func:`reid.weighting.batch_summary`.

    Example::

        loss_fn = WeightedCrossEntropyLoss(scheme="dm", lam=0.5, beta=8.0)
        loss = loss_fn(logits, labels); loss.backward()
    """

    def __init__(self, scheme="imae", normalize: str = "sum", label_smoothing: float = 0.0,
                 reduction: str = "sum", reducer=None, **scheme_params: float) -> None:
        super().__init__()
        for key in ("distance", "embedding_regularizer", "embedding_reg_weight"):
            if key in scheme_params:
                raise WeightedLossArgumentError(
                    f"WeightedCrossEntropyLoss: {key}= is not meaningful for a loss on logits (no distance, "
                    "no embeddings); remove it (use CosineClassifierLoss for a loss on embeddings)")
        self.scheme = get_scheme(scheme, **scheme_params)
        if reducer is not None and reduction != "sum":
            raise WeightedLossArgumentError("WeightedCrossEntropyLoss: reducer= needs reduction='sum' "
                                            "(the reducer does the reduction)")
        self.reducer = reducer
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"WeightedCrossEntropyLoss: normalize={normalize!r}; valid: 'sum', 'n'")
        if reduction not in ("sum", "none"):
            raise ValueError(f"WeightedCrossEntropyLoss: reduction={reduction!r}; valid: 'sum', 'none'")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"WeightedCrossEntropyLoss: label_smoothing={label_smoothing} must be in [0, 1)")
        self.normalize = normalize
        self.label_smoothing = float(label_smoothing)
        self.reduction = reduction
        self.last_stats: dict = {}

    @property
    def weight_scheme(self) -> WeightScheme:
        """The scheme whose ``w(p)`` is each example's weight (every identity loss has one)."""
        return self.scheme

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, indices_tuple=None, ref_emb=None, ref_labels=None,
                example_factor: torch.Tensor | None = None):
        if ref_emb is not None or ref_labels is not None:
            raise WeightedLossArgumentError("WeightedCrossEntropyLoss: ref_emb/ref_labels are not supported "
                                            "(a classification loss has no reference set)")
        reduction = "none" if self.reducer is not None else self.reduction
        out = weighted_cross_entropy(logits, labels, self.scheme, self.normalize, self.label_smoothing,
                                     reduction=reduction, example_factor=example_factor)
        # p, w, coefficients and the float summaries (p_mean, w_var, loss, ...) are computed when
        # first read: most steps never read them, and they cost a third of this loss's time. Built
        # directly (the weights are detached already) and stored past nn.Module.__setattr__ (a
        # plain dict is never a parameter, buffer or submodule): ~10 us a step (issue 14, goal 4).
        weights = out.weights
        object.__setattr__(self, "last_stats", weighted_ce_stats(weights, out.coefficients_getter(), out.loss.detach()))
        if self.reducer is not None:
            return self._reduce(out, logits, labels)
        return out.loss

    def _reduce(self, out, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """PML reduction (see the class docstring): value ``CE_i``, gradient ``N c_i grad CE_i``."""
        lp = out.log_probs
        with torch.no_grad():
            ce = -lp.log_p
            if self.label_smoothing > 0:
                ce = (1 - self.label_smoothing) * ce + self.label_smoothing * (lp.lse - lp.logits.mean(dim=1))
        scaled = out.loss * logits.shape[0]
        per_example = ce.to(scaled.dtype) + (scaled - scaled.detach())
        loss_dict = {"loss": {"losses": per_example, "indices": torch.arange(len(per_example), device=logits.device),
                              "reduction_type": "element"}}
        return self.reducer(loss_dict, logits, labels)

    @torch.no_grad()
    def coefficients(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-example ``p``, ``w``, ``normalized_w`` (``w_i / Z``) and ``coefficients`` (``c_i``)
        for a batch without building a graph, so other code never recomputes weights."""
        out = weighted_cross_entropy(logits.detach(), labels, self.scheme, self.normalize,
                                     self.label_smoothing, reduction="none")
        return {"p": out.weights.p, "w": out.weights.w, "normalized_w": out.weights.normalized,
                "coefficients": out.coefficients}

    def extra_repr(self) -> str:
        return f"scheme={self.scheme!r}, normalize={self.normalize!r}, label_smoothing={self.label_smoothing}"
