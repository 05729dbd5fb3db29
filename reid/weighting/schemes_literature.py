"""Emphasis densities of the noisy-label literature's losses whose logit gradient lies along cross
entropy's direction (docs/methods.md §6), registered in :data:`reid.weighting.SCHEMES` beside the
schemes of :mod:`reid.weighting.schemes`. GCE (``gce``) and MAE (``mae``) live there already.

SCE (symmetric cross entropy, Wang et al., ICCV 2019): ``L = a CE + b RCE`` with the reverse cross
entropy ``RCE = -sum_k p_k log q_k`` and ``log 0 := A``, so ``RCE = -A (1 - p_y)``, an MAE term. Its
logit gradient is ``(a - A b p) (p - q)``: CCE's direction with ``s(p) = a - A b p``, hence

    w(p) = 2 (1 - p) (a - A b p),        mode (for -A b > a) (-A b - a) / (-2 A b).

Defaults are the paper's CIFAR-10 setting ``a = 0.1, b = 1.0, A = -4`` (CIFAR-100: ``a = 6, b = 0.1``).
The released code clamps the one-hot label at 1e-4 instead (``A = log 1e-4 = -9.21``); we follow
the paper's ``A = -4`` (METHODS.md §6) and expose ``A``.
"""

from __future__ import annotations

import torch

from reid.weighting.schemes import LOG2, SCHEMES, WeightScheme


@SCHEMES.register("sce")
class SCE(WeightScheme):
    """Symmetric cross entropy ``a CE + b RCE`` (Wang et al. 2019): ``w(p) = 2 (1 - p)(a - A b p)``,
    ``s(p) = a - A b p``; defaults ``a = 0.1, b = 1, A = -4``."""

    name = "sce"
    param_defaults = {"a": 0.1, "b": 1.0, "A": -4.0}
    bounded_scale = True

    def _validate(self):
        if self.a < 0 or self.b < 0 or self.a + self.b == 0:
            raise ValueError(f"weighting scheme 'sce': a={self.a}, b={self.b} must be >= 0 and not both 0")
        if self.A >= 0:
            raise ValueError(f"weighting scheme 'sce': A={self.A} must be < 0 (it stands for log 0)")

    def log_grad_scale(self, log_p, log1m_p, log_w=None):
        # s(p) = a + |A| b p >= a >= 0; log(0) = -inf only when a = 0 and p = 0 (then w = 0 too)
        return torch.log(torch.exp(log_p).mul(-self.A * self.b).add_(self.a))

    def log_w(self, log_p, log1m_p):
        return self.log_grad_scale(log_p, log1m_p) + log1m_p + LOG2

    def mode(self) -> float:
        c = -self.A * self.b
        return 0.0 if c <= self.a else (c - self.a) / (2.0 * c)


__all__ = ["SCE"]
