"""Baselines of the noisy-label literature (docs/methods.md §6) as identity losses on logits, all
through the weighting core:

* :class:`SymmetricCrossEntropyLoss` - SCE ``a CE + b RCE`` (Wang et al., ICCV 2019): CCE's
  direction, so it *is* a scheme (``reid.weighting.SCHEMES["sce"]``, ``w = 2 (1 - p)(a - A b p)``)
  and runs through :func:`reid.weighting.weighted_cross_entropy`; the forward value is SCE's own.
* :class:`NCERCELoss` - the active-passive loss NCE + RCE (Ma et al., ICML 2020):
  :func:`reid.weighting.nce_rce`; not along CCE's direction (``weight_scheme`` is None).
* :class:`HardBootstrappingLoss` - hard bootstrapping (Reed et al. 2015): target
  ``beta q + (1 - beta) onehot(argmax p)``, :func:`reid.weighting.revised_target_cross_entropy`.

Every loss here returns the batch mean, sets ``last_stats`` (``p``, ``w`` per example: ``w`` the L1
norm of the example's logit gradient) and has ``example_weights(logits, labels) -> (p, w)``.
"""

from __future__ import annotations

import torch
from torch import nn

from reid.losses._common import make_stats
from reid.losses.weighted_ce import WeightedCrossEntropyLoss
from reid.weighting import get_scheme, nce_rce, revised_target_cross_entropy
from reid.weighting.log_probs import check_logits_labels


class SymmetricCrossEntropyLoss(WeightedCrossEntropyLoss):
    """SCE: ``L = a CE + b RCE = a (-log p_y) - A b (1 - p_y)`` (defaults a = 0.1, b = 1, A = -4:
    the paper's CIFAR-10 setting).

    The gradient is the weighting core's for scheme ``sce``: with ``normalize="n"`` (default)
    exactly the gradient of the batch mean of ``L``; ``normalize="sum"`` divides by the batch sum
    of the weights instead (SCE-DN). The forward value is the batch mean of ``L`` in both cases
    (``reduction="none"``: ``L_i / N`` per example)."""

    def __init__(self, a: float = 0.1, b: float = 1.0, A: float = -4.0, normalize: str = "n",
                 reduction: str = "sum") -> None:
        super().__init__(scheme=get_scheme("sce", a=a, b=b, A=A), normalize=normalize, reduction=reduction)
        self.a, self.b, self.A = float(a), float(b), float(A)

    def forward(self, logits, labels, indices_tuple=None, ref_emb=None, ref_labels=None, example_factor=None):
        core = super().forward(logits, labels, indices_tuple, ref_emb, ref_labels, example_factor=example_factor)
        with torch.no_grad():
            p = self.last_stats["p"]
            log_p = torch.log_softmax(logits.detach().to(p.dtype), dim=1).gather(1, labels[:, None]).squeeze(1)
            value = (self.a * (-log_p) - self.A * self.b * (1.0 - p)) / logits.shape[0]
            value = value if self.reduction == "none" else value.sum()
        self.last_stats["loss"] = float(value.sum())
        return core + (value.to(core.dtype) - core.detach())  # SCE's value, the core's gradient

    def example_weights(self, logits, labels):
        out = self.coefficients(logits, labels)
        return out["p"], out["w"]


class NCERCELoss(nn.Module):
    """Active-passive loss ``a NCE + b RCE`` (Ma et al. 2020), batch mean; defaults a = b = 1,
    A = -4 (CIFAR-10). No emphasis density of ``p`` alone (``weight_scheme = None``): ``w_i`` is
    the L1 norm of the example's logit gradient (:func:`reid.weighting.nce_rce`)."""

    weight_scheme = None

    def __init__(self, a: float = 1.0, b: float = 1.0, A: float = -4.0) -> None:
        super().__init__()
        if a < 0 or b < 0 or a + b == 0:
            raise ValueError(f"NCERCELoss: a={a}, b={b} must be >= 0 and not both 0")
        if A >= 0:
            raise ValueError(f"NCERCELoss: A={A} must be < 0 (it stands for log 0)")
        self.a, self.b, self.A = float(a), float(b), float(A)
        self.last_stats: dict = {}

    def forward(self, logits, labels):
        out = nce_rce(logits, labels, self.a, self.b, self.A)
        loss = out.loss.mean()
        self.last_stats = make_stats(out.p, out.w, loss=float(loss.detach()))
        return loss

    @torch.no_grad()
    def example_weights(self, logits, labels):
        out = nce_rce(logits.detach(), labels, self.a, self.b, self.A)
        return out.p, out.w

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}, A={self.A}"


class HardBootstrappingLoss(nn.Module):
    """Hard bootstrapping (Reed et al. 2015): ``H(beta q + (1 - beta) h, p)`` with ``h`` the one-hot
    of the predicted class (constant), batch mean; logit gradient ``p - beta q - (1 - beta) h``.
    Default ``beta = 0.8`` (the paper's). ``weight_scheme = None`` (not CCE's direction)."""

    weight_scheme = None

    def __init__(self, beta: float = 0.8) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"HardBootstrappingLoss: beta={beta} must be in [0, 1]")
        self.beta = float(beta)
        self.last_stats: dict = {}

    def forward(self, logits, labels):
        check_logits_labels(logits, labels)
        out = revised_target_cross_entropy(logits, labels, a=self.beta, d=1.0 - self.beta)
        loss = out.loss.mean()
        self.last_stats = make_stats(out.p, out.w, loss=float(loss.detach()))
        return loss

    @torch.no_grad()
    def example_weights(self, logits, labels):
        out = revised_target_cross_entropy(logits.detach(), labels, a=self.beta, d=1.0 - self.beta)
        return out.p, out.w

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


__all__ = ["SymmetricCrossEntropyLoss", "NCERCELoss", "HardBootstrappingLoss"]
