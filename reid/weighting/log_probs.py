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


def check_logits_labels(logits: torch.Tensor, labels: torch.Tensor, check_range: bool = True) -> None:
    """Shapes always; the label range (one pass and two host reads) unless ``check_range=False``,
    for callers whose first use of the labels is a CPU ``gather``, which checks the range itself:
    they call this again when it fails, to raise the readable error (see :func:`gather_targets`)."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C]; got shape {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be [N] with N={logits.shape[0]}; got shape {tuple(labels.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"need at least 2 classes; logits have shape {tuple(logits.shape)}")
    if check_range and labels.numel() and not torch.compiler.is_exporting():  # the exporter cannot read a data-dependent range
        lo, hi = torch.aminmax(labels)  # one pass, and one host read per bound
        if int(lo) < 0 or int(hi) >= logits.shape[1]:
            bad = labels[(labels < 0) | (labels >= logits.shape[1])]
            raise ValueError(f"labels must lie in [0, {logits.shape[1]}); got e.g. {bad[:5].tolist()}")


def range_checked_by_gather(logits: torch.Tensor) -> bool:
    """True where ``gather`` itself rejects an out-of-range label with a Python error (CPU); on
    CUDA an out-of-range index is a device-side assert, so the range is checked beforehand."""
    return logits.device.type == "cpu" and not torch.compiler.is_exporting()


def gather_targets(z: torch.Tensor, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z.gather(1, idx)``; an out-of-range label raises the :func:`check_logits_labels` error."""
    try:
        return z.gather(1, idx)
    except RuntimeError:
        check_logits_labels(z, labels)  # raises the readable ValueError if the range is the cause
        raise


#: (dtype, device) -> 0-d constants of :func:`log_probs_columns` and the weighted CE. A Python
#: number operand costs a tensor wrap per op (~2 us on CPU, as much as the op on a [256] vector);
#: a cached 0-d tensor of the same dtype gives bit-identical results (the scalar is rounded to
#: the op's dtype either way).
_CONSTANTS: dict = {}


def constants(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(finfo.min, log(finfo.tiny), -1/2, 1/2, 1)`` as 0-d tensors of ``dtype`` on ``device``."""
    key = (dtype, device)
    found = _CONSTANTS.get(key)
    if found is None:
        info = torch.finfo(dtype)
        values = (info.min, math.log(info.tiny), -0.5, 0.5, 1.0)
        found = _CONSTANTS[key] = tuple(torch.tensor(v, dtype=dtype, device=device) for v in values)
    return found


def log_probs_columns(z: torch.Tensor, idx: torch.Tensor, z_y: torch.Tensor | None = None):
    """The matrix work shared by :func:`stable_log_probs` and :func:`weighted_cross_entropy`:
    one copy, one max, one exp, one sum over ``[N, C]``; per-row results as ``[N, 1]`` columns
    (they broadcast against the matrix without a reshape).

    Returns ``z_y``, ``lse_other = logsumexp(z_{-y})``, ``lse = logsumexp(z)``,
    ``exp_other = exp(z_{-y} - max z_{-y})`` (target column 0, ``[N, C]``) and ``total_other``
    (its row sums; ``>= 1`` when the row has a finite competitor, 0 when it has none). ``z`` must
    already be in the compute dtype, ``idx`` [N, 1]; ``z_y`` if the caller has gathered it.
    """
    fmin = constants(z.dtype, z.device)[0]
    if z_y is None:
        z_y = z.gather(1, idx)
    exp_other = z.scatter(1, idx, -math.inf)
    # A row with no finite competitor has max -inf; shifting by the most negative finite number
    # instead keeps exp(-inf - shift) = 0 and gives lse_other = shift + log(0) = -inf, no NaN.
    shift = exp_other.amax(dim=1, keepdim=True).clamp_min_(fmin)
    exp_other.sub_(shift).exp_()  # target column: exp(-inf) = 0
    total_other = exp_other.sum(dim=1, keepdim=True)
    lse_other = torch.log(total_other).add_(shift)
    # logsumexp(z) = logaddexp(z_y, logsumexp(z_{-y})): no second pass over the matrix.
    lse = torch.logaddexp(z_y, lse_other)
    return z_y, lse_other, lse, exp_other, total_other


def log_probs_kernel(z: torch.Tensor, idx: torch.Tensor):
    """:func:`log_probs_columns` with ``[N]`` vectors: ``z_y``, ``lse_other``, ``exp_other``,
    ``total_other``."""
    z_y, lse_other, _, exp_other, total_other = log_probs_columns(z, idx)
    return z_y.squeeze(1), lse_other.squeeze(1), exp_other, total_other.squeeze(1)


def stable_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> StableLogProbs:
    """``log p_i`` and ``log(1 - p_i)`` computed from logits without cancellation:
    ``log(1 - p_i) = logsumexp(z_{-y}) - logsumexp(z)`` (docs/methods.md §1), with
    ``logsumexp(z) = logaddexp(z_y, logsumexp(z_{-y}))`` so one exp pass over the matrix gives
    both and ``r_i`` (the non-target softmax). No gradient."""
    check_logits_labels(logits, labels)
    with torch.no_grad():
        z = logits.detach().to(compute_dtype(logits))
        z_y, lse_other, lse, exp_other, total_other = log_probs_columns(z, labels[:, None])
        log_p = (z_y - lse).squeeze(1)
        log1m_p = (lse_other - lse).squeeze(1)
        lse, total_other = lse.squeeze(1), total_other.squeeze(1)
        other = exp_other.div_(total_other.clamp(min=1.0)[:, None])
    return StableLogProbs(log_p, log1m_p, z, lse, other, total_other > 0)




__all__ = ["StableLogProbs", "check_logits_labels", "compute_dtype", "constants", "gather_targets", "log_probs_columns",
           "log_probs_kernel", "range_checked_by_gather", "stable_log_probs"]
