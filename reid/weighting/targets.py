"""Target-revised cross entropy: the core of the label-correction family (docs/weighting.md §3).

ProSelfLC, label smoothing, confidence penalty and soft bootstrapping are all the cross entropy
``H(t_i, p_i) = -sum_j t_ij log p_ij`` against a revised target

    t_i = a_i q_i + b_i p_i + c_i u + d_i h_i,
    q_i one-hot, u = 1/C uniform, h_i = onehot(argmax_j p_ij) (detached), a_i, b_i, c_i, d_i detached,

and differ only in ``(a, b, c)`` and in whether gradient flows through the ``p`` inside the
target (``through_p``):

* ``through_p=False`` (target a constant): logit gradient ``(a + b + c + d) p - t``, i.e. ``p - t``
  when the coefficients sum to 1;
* ``through_p=True``: ``H(t, p) = a CE + b H(p) + c CE_u + d CE_h``, gradient
  ``a (p - q) - b p * (log p + H(p)) + c (p - u) + d (p - h)`` (``h`` is piecewise constant).

Either way the example's weight (docs/methods.md §1) is the L1 norm of that gradient, which
:func:`revised_target_cross_entropy` returns in closed form with ``p_i`` of the labelled class,
so these losses' emphasis density ``w(p)`` is logged and plotted exactly like a scheme's.

===================  ===========================  ============  ============  ===========
loss                 a                            b             c             through_p
===================  ===========================  ============  ============  ===========
ProSelfLC            ``1 - eps_i``                ``eps_i``     0             either
label smoothing      ``1 - eps``                  0             ``eps``       no
confidence penalty   1                            ``-beta``     0             yes
soft bootstrapping   ``beta``                     ``1 - beta``  0             either
===================  ===========================  ============  ============  ===========

Hard bootstrapping (Reed et al. 2015, beta = 0.8) is ``a = beta, d = 1 - beta``: the target mixes
the label with the one-hot of the predicted class.

ProSelfLC's ``eps_i = g(t) l(p_i)`` is always computed without gradient (both released
implementations do), also in the non-detached ("relative entropy") mode: there the gradient
flows through ``p`` inside the target only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reid.weighting.log_probs import check_logits_labels, compute_dtype


@dataclass
class RevisedTargetCE:
    """Result of :func:`revised_target_cross_entropy`: ``loss`` (per example, differentiable),
    ``p`` (labelled-class probability), ``w`` (L1 norm of each example's logit gradient),
    ``entropy`` (``H(p_i)``); all but ``loss`` detached."""

    loss: torch.Tensor
    p: torch.Tensor
    w: torch.Tensor
    entropy: torch.Tensor


def _per_example(x, n: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=like.dtype, device=like.device).detach()
    return x.expand(n) if x.ndim == 0 else x


def revised_target_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, a=1.0, b=0.0, c=0.0,
                                 through_p: bool = False, d=0.0) -> RevisedTargetCE:
    """``H(a q + b p + c u + d h, p)`` per example (see the module docstring), in float32 (float64
    kept) even under autocast. ``a``, ``b``, ``c``, ``d``: floats or ``[N]`` tensors, detached."""
    check_logits_labels(logits, labels)
    n, n_classes = logits.shape
    z = logits.to(compute_dtype(logits))
    with torch.autocast(device_type=z.device.type, enabled=False):
        log_probs = F.log_softmax(z, dim=1)
        probs = log_probs.exp()
        a_, b_, c_, d_ = (_per_example(v, n, z) for v in (a, b, c, d))
        ce = F.nll_loss(log_probs, labels, reduction="none")
        hard = log_probs.detach().argmax(dim=1)  # the predicted class (h_i), used when d != 0
        ce_uniform = -log_probs.mean(dim=1)
        entropy = -(probs * log_probs).sum(dim=1)
        if through_p:
            loss = a_ * ce + b_ * entropy + c_ * ce_uniform
        else:
            loss = a_ * ce - b_ * (probs.detach() * log_probs).sum(dim=1) + c_ * ce_uniform
        if torch.is_tensor(d) or float(d) != 0.0:
            loss = loss + d_ * F.nll_loss(log_probs, hard, reduction="none")
        with torch.no_grad():
            q = F.one_hot(labels, n_classes).to(z.dtype)
            h = F.one_hot(hard, n_classes).to(z.dtype)
            if through_p:
                grad = a_[:, None] * (probs - q) - b_[:, None] * probs * (log_probs + entropy[:, None]) \
                    + c_[:, None] * (probs - 1.0 / n_classes) + d_[:, None] * (probs - h)
            else:
                target = a_[:, None] * q + b_[:, None] * probs + c_[:, None] / n_classes + d_[:, None] * h
                grad = (a_ + b_ + c_ + d_)[:, None] * probs - target
            w = grad.abs().sum(dim=1)
            p_true = probs.gather(1, labels[:, None]).squeeze(1)
    return RevisedTargetCE(loss, p_true, w, entropy.detach())


__all__ = ["RevisedTargetCE", "revised_target_cross_entropy"]
