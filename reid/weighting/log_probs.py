"""Per-example log-probabilities of a labelled classification batch, without cancellation
(docs/methods.md §1): ``log p_i = z_y - logsumexp(z)`` and ``log(1 - p_i) = logsumexp(z_{-y}) -
logsumexp(z)`` (logsumexp over the non-target logits), both finite for any finite logits. Every
weight in :mod:`reid.weighting` is computed from these two vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    # float64 stays float64 (tests, gradcheck); everything else (fp16, bf16, fp32) runs in fp32.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@dataclass
class StableLogProbs:
    """Per-example log-probabilities of one labelled classification batch.

    ``log_p = log p_i``, ``log1m_p = log(1 - p_i)`` (both finite for finite logits; ``-inf`` only
    when a row has no finite competitor), ``logits`` (detached, compute dtype), ``lse`` the row
    logsumexp, ``other`` = ``r_i``, the softmax over the non-target classes (0 at the target;
    all 0 when the row has no competitor).
    """

    log_p: torch.Tensor
    log1m_p: torch.Tensor
    logits: torch.Tensor
    lse: torch.Tensor
    other: torch.Tensor
    has_competitor: torch.Tensor

    @property
    def log_probs(self) -> torch.Tensor:
        """Full ``log_softmax`` (computed on demand)."""
        return self.logits - self.lse[:, None]


def check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C]; got shape {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be [N] with N={logits.shape[0]}; got shape {tuple(labels.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"need at least 2 classes; logits have shape {tuple(logits.shape)}")
    if labels.numel() and not torch.compiler.is_exporting():  # the exporter cannot read a data-dependent range
        lo, hi = torch.aminmax(labels)  # one pass, and one host read per bound
        if int(lo) < 0 or int(hi) >= logits.shape[1]:
            bad = labels[(labels < 0) | (labels >= logits.shape[1])]
            raise ValueError(f"labels must lie in [0, {logits.shape[1]}); got e.g. {bad[:5].tolist()}")


def log_probs_kernel(z: torch.Tensor, idx: torch.Tensor):
    """The matrix work shared by :func:`stable_log_probs` and :func:`weighted_cross_entropy`:
    one copy, one max, one exp, one sum over ``[N, C]``.

    Returns ``z_y``, ``lse_other = logsumexp(z_{-y})``, ``exp_other = exp(z_{-y} - max z_{-y})``
    (target column 0) and ``total_other`` (its row sums; ``>= 1`` when the row has a finite
    competitor, 0 when it has none). ``z`` must already be in the compute dtype, ``idx`` [N, 1].
    """
    z_y = z.gather(1, idx).squeeze(1)
    exp_other = z.scatter(1, idx, -math.inf)
    # A row with no finite competitor has max -inf; shifting by the most negative finite number
    # instead keeps exp(-inf - shift) = 0 and gives lse_other = shift + log(0) = -inf, no NaN.
    shift = exp_other.amax(dim=1).clamp_(min=torch.finfo(z.dtype).min)
    exp_other.sub_(shift.unsqueeze(1)).exp_()  # target column: exp(-inf) = 0
    total_other = exp_other.sum(dim=1)
    lse_other = shift + torch.log(total_other)
    return z_y, lse_other, exp_other, total_other


def stable_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> StableLogProbs:
    """``log p_i`` and ``log(1 - p_i)`` computed from logits without cancellation:
    ``log(1 - p_i) = logsumexp(z_{-y}) - logsumexp(z)`` (docs/methods.md §1), with
    ``logsumexp(z) = logaddexp(z_y, logsumexp(z_{-y}))`` so one exp pass over the matrix gives
    both and ``r_i`` (the non-target softmax). No gradient."""
    check_logits_labels(logits, labels)
    with torch.no_grad():
        z = logits.detach().to(compute_dtype(logits))
        z_y, lse_other, exp_other, total_other = log_probs_kernel(z, labels[:, None])
        lse = torch.logaddexp(z_y, lse_other)
        log_p = z_y - lse
        log1m_p = lse_other - lse
        other = exp_other.div_(total_other.clamp(min=1.0)[:, None])
    return StableLogProbs(log_p, log1m_p, z, lse, other, total_other > 0)




__all__ = ["StableLogProbs", "check_logits_labels", "compute_dtype", "log_probs_kernel", "stable_log_probs"]
