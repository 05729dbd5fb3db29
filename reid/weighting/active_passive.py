"""The active-passive loss NCE + RCE (Ma et al., "Normalized loss functions for deep learning
with noisy labels", ICML 2020; docs/methods.md §6) with its per-example weight.

With ``p = softmax(z)``, ``L_k = -log p_k`` and ``S = sum_k L_k``:

* normalised cross entropy ``NCE = L_y / S`` (the "active" part), logit gradient
  ``((p - e_y) S - L_y (C p - 1)) / S^2``: *not* along cross entropy's direction ``p - e_y``;
* reverse cross entropy ``RCE = -A (1 - p_y)`` (``log 0 := A = -4``; the "passive" part),
  gradient ``-A p_y (p - e_y)``;
* ``L = a NCE + b RCE``; the paper's CIFAR-10 setting ``a = b = 1`` (CIFAR-100: ``a = 10, b = 0.1``).

Because NCE's gradient leaves CCE's direction, the loss has no emphasis density ``w(p)`` of
``p_y`` alone; its example weight (docs/methods.md §1) is the L1 norm of the logit gradient, which
:func:`nce_rce` returns per example in closed form, so studies log and plot it like a scheme's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reid.weighting.log_probs import check_logits_labels, compute_dtype
from reid.weighting.targets import RevisedTargetCE


def nce_rce(logits: torch.Tensor, labels: torch.Tensor, a: float = 1.0, b: float = 1.0,
            A: float = -4.0) -> RevisedTargetCE:
    """Per-example ``a NCE + b RCE`` (differentiable ``loss``), ``p`` of the labelled class,
    ``w`` = L1 norm of each example's logit gradient, ``entropy`` ``H(p_i)``; float32 (float64
    kept) even under autocast."""
    check_logits_labels(logits, labels)
    n_classes = logits.shape[1]
    z = logits.to(compute_dtype(logits))
    with torch.autocast(device_type=z.device.type, enabled=False):
        log_probs = F.log_softmax(z, dim=1)
        probs = log_probs.exp()
        ce = F.nll_loss(log_probs, labels, reduction="none")  # L_y
        total = -log_probs.sum(dim=1)  # S >= C log C > 0
        p_true = probs.gather(1, labels[:, None]).squeeze(1)
        loss = a * ce / total - b * A * (1.0 - p_true)
        with torch.no_grad():
            q = F.one_hot(labels, n_classes).to(z.dtype)
            diff = probs - q
            g_nce = (diff * total[:, None] - ce[:, None] * (n_classes * probs - 1.0)) / (total ** 2)[:, None]
            grad = a * g_nce - b * A * p_true[:, None] * diff
            w = grad.abs().sum(dim=1)
            entropy = -(probs * log_probs).sum(dim=1)
    return RevisedTargetCE(loss, p_true.detach(), w, entropy)


__all__ = ["nce_rce"]
