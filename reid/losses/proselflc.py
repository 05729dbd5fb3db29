"""Label correction losses: ProSelfLC and the baselines of the same family (label smoothing,
confidence penalty, soft bootstrapping). All are plain ``nn.Module``s called ``loss(logits,
labels)`` that return the batch mean and set ``last_stats``.

All four are the cross entropy against a revised target ``a q + b p + c u`` and go through the
core's :func:`reid.weighting.revised_target_cross_entropy`, which also returns ``w``, what
docs/methods.md §1 calls an example's weight: the L1 norm of its logit gradient (before the 1/N
of the mean), in closed form, so ``last_stats["p"]`` / ``["w"]`` give each loss's emphasis density.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reid.losses._common import make_stats
from reid.weighting import WeightScheme, get_scheme, revised_target_cross_entropy, weighted_cross_entropy


def _compute(logits: torch.Tensor) -> torch.Tensor:
    # float32 even under autocast (fp16/bf16 log-softmax loses the small probabilities); float64 kept.
    return logits if logits.dtype == torch.float64 else logits.float()


def _check(logits: torch.Tensor, labels: torch.Tensor, who: str) -> None:
    if logits.ndim != 2 or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"{who}: expected logits [N, C] and labels [N]; got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")


class ProSelfLCLoss(nn.Module):
    """ProSelfLC: progressive self label correction (Wang et al., CVPR 2021; docs/methods.md §2).

    Target ``q~_i = (1 - eps_i) q_i + eps_i p_i``, ``eps_i = g(t) * l(p_i)`` with
    global trust ``g(t) = 1 / (1 + exp(-B (t / Gamma - transit)))`` (``t`` the iteration,
    ``Gamma`` the total iterations; ``transit`` is the paper's ``r``: the fraction of training at
    which ``g`` reaches 1/2) and local trust ``l(p) = 1 - H(p) / log C``. Loss
    ``H(q~, p) = -sum_j q~_j log p_j``, averaged over the batch.

    ``detach_target=True`` (default, the later release's "cross entropy" mode): ``q~`` is a
    constant, so the logit gradient is ``p - q~ = (1 - eps_i) (p_i - q_i)``: CCE's direction
    with magnitude ``2 (1 - eps_i)(1 - p_i)``. ``detach_target=False`` (the "relative entropy"
    mode) lets the gradient flow through ``p`` inside the target only: ``eps_i`` is computed
    without gradient in both modes, as in both released implementations.

    ``scheme`` (optional, needs ``detach_target=True``): combine with example weighting, i.e.
    gradient ``(1 - eps_i) w(p_i) / (2 (1 - p_i)) (p_i - q_i) / Z`` through the core
    (:func:`reid.weighting.weighted_cross_entropy` with ``example_factor = 1 - eps_i``); the
    forward value is then the weighted CE of the core, not ``H(q~, p)``.

    Call :meth:`set_progress` every iteration (or epoch): without it ``t = 0`` and ProSelfLC is
    CE with a small correction ``g(0) = 1 / (1 + exp(B * transit))``.
    """

    def __init__(self, num_classes: int, B: float = 10.0, transit: float = 0.5, detach_target: bool = True,
                 scheme=None, normalize: str = "sum", **scheme_params: float) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"ProSelfLCLoss: num_classes={num_classes} must be >= 2")
        if B <= 0:
            raise ValueError(f"ProSelfLCLoss: B={B} must be > 0 (paper: 8..16; 10 on clean data)")
        if not 0.0 <= transit <= 1.0:
            raise ValueError(f"ProSelfLCLoss: transit={transit} must be in [0, 1] (paper's r = 0.5)")
        if scheme is not None and not detach_target:
            raise ValueError("ProSelfLCLoss: scheme=... needs detach_target=True (the weighting core sets the "
                             "gradient of a fixed target)")
        self.num_classes = int(num_classes)
        self.B = float(B)
        self.transit = float(transit)
        self.detach_target = bool(detach_target)
        self.scheme = None if scheme is None else get_scheme(scheme, **scheme_params)
        if scheme is None and scheme_params:
            raise ValueError(f"ProSelfLCLoss: scheme parameters {sorted(scheme_params)} given without scheme=")
        self.normalize = normalize
        self.progress = 0.0
        self.last_stats: dict = {}

    @property
    def weight_scheme(self) -> WeightScheme:
        """The scheme whose ``w(p)`` describes the example weighting: ``scheme`` when given, else
        ``cce`` (the gradient is CCE's, scaled by ``1 - eps_i``: ``w_i = (1 - eps_i) 2 (1 - p_i)``)."""
        return self.scheme if self.scheme is not None else get_scheme("cce")

    def set_progress(self, iteration: int, total_iterations: int) -> None:
        """Tell the loss where training is: ``t / Gamma = iteration / total_iterations``."""
        if total_iterations <= 0 or iteration < 0:
            raise ValueError(f"ProSelfLCLoss.set_progress: need 0 <= iteration and total_iterations > 0; "
                             f"got {iteration}, {total_iterations}")
        self.progress = min(float(iteration) / float(total_iterations), 1.0)

    def global_trust(self) -> float:
        """``g(t) = 1 / (1 + exp(-B (t/Gamma - transit)))``."""
        return 1.0 / (1.0 + math.exp(-self.B * (self.progress - self.transit)))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check(logits, labels, "ProSelfLCLoss")
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"ProSelfLCLoss: built for {self.num_classes} classes, logits have {logits.shape[1]}")
        g = self.global_trust()
        with torch.no_grad():  # eps without gradient, in both modes (the released code's)
            log_probs = F.log_softmax(_compute(logits.detach()), dim=1)
            entropy = -(log_probs.exp() * log_probs).sum(dim=1)
            eps = g * (1.0 - entropy / math.log(self.num_classes))
        if self.scheme is not None:
            out = weighted_cross_entropy(logits, labels, self.scheme, self.normalize, example_factor=1.0 - eps)
            weights = out.weights  # not `out`: it holds the graph
            loss, p_true, w = out.loss, lambda: weights.p, lambda: weights.w
        else:
            out = revised_target_cross_entropy(logits, labels, a=1.0 - eps, b=eps, through_p=not self.detach_target)
            loss, p_true, w = out.loss.mean(), out.p, out.w
        self.last_stats = make_stats(p_true, w, loss=float(loss.detach()), global_trust=g,
                                     eps_mean=float(eps.detach().mean()))
        self.last_stats["eps"] = eps.detach()
        return loss


class LabelSmoothingLoss(nn.Module):
    """Label smoothing (Szegedy et al. 2016): target ``(1 - eps) q + eps / C``;
    ``F.cross_entropy(label_smoothing=eps)``. ``w_i = ||p_i - q~_i||_1``; not along CCE's
    direction (``weight_scheme = None``)."""

    weight_scheme = None

    def __init__(self, eps: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"LabelSmoothingLoss: eps={eps} must be in [0, 1)")
        self.eps = float(eps)
        self.last_stats: dict = {}

    def forward(self, logits, labels):
        _check(logits, labels, "LabelSmoothingLoss")
        out = revised_target_cross_entropy(logits, labels, a=1.0 - self.eps, c=self.eps)
        loss = out.loss.mean()
        self.last_stats = make_stats(out.p, out.w, loss=float(loss.detach()))
        return loss

    @torch.no_grad()
    def example_weights(self, logits, labels):
        """``(p_i, w_i)`` without a graph (``w_i`` the L1 norm of the logit gradient)."""
        out = revised_target_cross_entropy(logits.detach(), labels, a=1.0 - self.eps, c=self.eps)
        return out.p, out.w


class ConfidencePenaltyLoss(nn.Module):
    """Confidence penalty (Pereyra et al. 2017): ``CE(q, p) - beta * H(p)``. Logit gradient
    ``p - q + beta * p * (log p + H(p))``; ``w_i`` is its L1 norm."""

    def __init__(self, beta: float = 0.1) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f"ConfidencePenaltyLoss: beta={beta} must be >= 0")
        self.beta = float(beta)
        self.last_stats: dict = {}

    def forward(self, logits, labels):
        _check(logits, labels, "ConfidencePenaltyLoss")
        out = revised_target_cross_entropy(logits, labels, a=1.0, b=-self.beta, through_p=True)
        loss = out.loss.mean()
        self.last_stats = make_stats(out.p, out.w, loss=float(loss.detach()),
                                     entropy_mean=float(out.entropy.mean()))
        return loss


class SoftBootstrappingLoss(nn.Module):
    """Soft bootstrapping (Reed et al. 2015): target ``beta q + (1 - beta) p``, loss
    ``H(target, p)``. The paper lets the gradient flow through ``p`` in the target
    (``detach_target=False``, default); with ``detach_target=True`` the logit gradient is
    ``beta (p - q)`` (``w_i = 2 beta (1 - p_i)``). ``weight_scheme = None``: with the gradient
    through ``p`` the direction is not CCE's; ``example_weights`` gives ``w_i`` either way."""

    weight_scheme = None

    def __init__(self, beta: float = 0.95, detach_target: bool = False) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"SoftBootstrappingLoss: beta={beta} must be in [0, 1]")
        self.beta = float(beta)
        self.detach_target = bool(detach_target)
        self.last_stats: dict = {}

    def forward(self, logits, labels):
        _check(logits, labels, "SoftBootstrappingLoss")
        out = revised_target_cross_entropy(logits, labels, a=self.beta, b=1.0 - self.beta,
                                           through_p=not self.detach_target)
        loss = out.loss.mean()
        self.last_stats = make_stats(out.p, out.w, loss=float(loss.detach()))
        return loss

    @torch.no_grad()
    def example_weights(self, logits, labels):
        """``(p_i, w_i)`` without a graph (``w_i`` the L1 norm of the logit gradient)."""
        out = revised_target_cross_entropy(logits.detach(), labels, a=self.beta, b=1.0 - self.beta,
                                           through_p=not self.detach_target)
        return out.p, out.w
