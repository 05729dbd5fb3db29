"""Example-weighting schemes ``w(p)``: the weight of an example as a function of ``p``, the
probability the model gives to the example's labelled class.

Background (docs/methods.md §1; Wang et al., "IMAE for noise-robust learning: mean absolute error
does not treat examples equally and gradient magnitude's variance matters" and "Derivative
Manipulation for general example weighting"): for any loss whose logit gradient points along
cross entropy's direction, ``dL/dz = s(p) (p - q)``, and ``||p - q||_1 = 2 (1 - p)``, so the
example's weight is the L1 norm of its logit gradient, ``w(p) = 2 (1 - p) s(p)``.

Every scheme is evaluated in the log domain from ``log p`` and ``log(1 - p)``, which are both
finite for any finite logits when computed by :func:`reid.weighting.log_probs.stable_log_probs`.
That is what keeps ``w(p) / (2 (1 - p))`` finite (or cleanly infinite, never NaN) when
``p -> 1`` and ``p -> 0``: ``log w - log 2 - log(1 - p)`` cancels symbolically where the scheme
allows it.

================  =====================================  ===================  =============
name              w(p)                                   parameters           mode argmax w
================  =====================================  ===================  =============
``cce``           ``2 (1 - p)``                          -                    0
``mae``           ``2 p (1 - p)`` (DM code scale)        -                    1/2
``mse``           ``4 p (1 - p)^2`` (L = (1 - p_y)^2)    -                    1/3
``gce``           ``2 p^q (1 - p)``                      ``q=0.7``            q / (q + 1)
``imae``          ``exp(T p (1 - p))``                   ``T=8.0``            1/2
``dm``            ``exp(beta p^lam (1 - p))``            ``lam, beta``        lam / (lam + 1)
``exponential``   ``exp(beta (1 - p))``                  ``beta``             0 (beta > 0)
``normal``        ``exp(-beta p (p - 2 psi))``           ``psi, beta``        psi (clipped)
``beta``          ``p^(alpha-1) (1 - p)^(eta-1)``        ``alpha, eta``       see below
================  =====================================  ===================  =============

MAE's scale: the IMAE paper and the released ProSelfLC code write MAE as ``2 (1 - p)`` (weight
``4 p (1 - p)``); the released DM code uses ``L = 1 - p``, which we follow: ``w = 2 p (1 - p)``.
The scale cancels under batch-sum normalisation but changes the emphasis variance by a factor 4
(0.0222 instead of 0.0889 for p uniform on [0, 1]).

MSE is the slides' definition on the labelled class only, ``L = (1 - p_y)^2`` (not the full-vector
``||p - q||_2^2``, whose gradient does not point along cross entropy's direction).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from reid.registry import Registry

LOG2 = math.log(2.0)


def _scaled_log(coefficient: float, log_x: torch.Tensor) -> torch.Tensor:
    """``coefficient * log_x`` that returns exactly 0 when the coefficient is 0, even where
    ``log_x = -inf`` (``x**0 = 1`` for ``x = 0``); avoids ``0 * -inf = NaN``."""
    if coefficient == 0.0:
        return torch.zeros_like(log_x)
    return coefficient * log_x


class WeightScheme:
    """Base class of a weighting scheme. Subclasses implement :meth:`log_w` (and, where the
    ``1 - p`` factor cancels, :meth:`log_grad_scale`) and :meth:`mode`.

    Public API: ``w(p)`` (tensor in ``[0, 1]`` -> weight tensor), ``mode()``, ``name``,
    ``params`` (the keyword arguments that rebuild the scheme through :func:`get_scheme`).
    """

    name: ClassVar[str] = ""
    #: parameter name -> default (``None``: required)
    param_defaults: ClassVar[dict[str, float | None]] = {}
    #: True when ``w(p) / (1 - p)`` stays bounded as ``p -> 1`` (w vanishes at least linearly).
    bounded_scale: ClassVar[bool] = False

    def __init__(self, **params: float) -> None:
        self.params = {k: float(v) for k, v in params.items()}
        for k, v in self.params.items():
            if not math.isfinite(v):
                raise ValueError(f"weighting scheme {self.name!r}: parameter {k}={v} must be finite")
            setattr(self, k, v)
        self._validate()

    def _validate(self) -> None:  # pragma: no cover - overridden where parameters have ranges
        pass

    # ---- the scheme, in the log domain -------------------------------------------------
    def log_w(self, log_p: torch.Tensor, log1m_p: torch.Tensor) -> torch.Tensor:
        """``log w(p)`` from ``log p`` and ``log(1 - p)``."""
        raise NotImplementedError

    def log_grad_scale(self, log_p: torch.Tensor, log1m_p: torch.Tensor,
                       log_w: torch.Tensor | None = None) -> torch.Tensor:
        """``log s(p)`` with ``s(p) = w(p) / (2 (1 - p))``, the factor that multiplies cross
        entropy's logit gradient. Subclasses override it where ``1 - p`` cancels in closed form
        (cce: ``s = 1``; mae: ``s = p``; mse: ``2 p (1 - p)``; gce: ``p^q``). ``log_w``, when the
        caller already has ``self.log_w(log_p, log1m_p)``, saves recomputing it (closed forms
        ignore it)."""
        if log_w is None:
            log_w = self.log_w(log_p, log1m_p)
        return log_w - LOG2 - log1m_p

    def mode(self) -> float:
        """Emphasis mode ``psi = argmax_{p in [0, 1]} w(p)``."""
        raise NotImplementedError

    # ---- convenience --------------------------------------------------------------------
    def w(self, p: torch.Tensor) -> torch.Tensor:
        """``w(p)`` for probabilities ``p`` in ``[0, 1]`` (exact 0 and 1 allowed)."""
        p = torch.as_tensor(p)
        if not torch.is_floating_point(p):
            p = p.double()
        if torch.any((p < 0) | (p > 1)) or torch.any(torch.isnan(p)):
            raise ValueError(f"weighting scheme {self.name!r}: w(p) needs p in [0, 1]")
        return torch.exp(self.log_w(torch.log(p), torch.log1p(-p)))

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        return self.w(p)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.name}({args})"


#: name -> scheme class; ``get_scheme(name, **params)`` builds one. A new scheme is one
#: :class:`WeightScheme` subclass (``log_w``, ``mode``, its ``name``) plus this decorator.
SCHEMES: Registry[type[WeightScheme]] = Registry("weighting scheme")


@SCHEMES.register("cce")
class CCE(WeightScheme):
    """Categorical cross entropy ``L = -log p``; ``w(p) = 2 (1 - p)``, ``s(p) = 1``; mode 0."""

    name = "cce"
    bounded_scale = True

    def log_w(self, log_p, log1m_p):
        return LOG2 + log1m_p

    def log_grad_scale(self, log_p, log1m_p, log_w=None):
        return torch.zeros_like(log_p)

    def mode(self) -> float:
        return 0.0


@SCHEMES.register("mae")
class MAE(WeightScheme):
    """Mean absolute error at the released DM code's scale, ``L = 1 - p``:
    ``w(p) = 2 p (1 - p)``, ``s(p) = p``; mode 1/2. (The IMAE paper and the released ProSelfLC
    code use ``L = 2 (1 - p)``, ``w = 4 p (1 - p)``; the scale cancels after batch-sum
    normalisation.)"""

    name = "mae"
    bounded_scale = True

    def log_w(self, log_p, log1m_p):
        return LOG2 + log_p + log1m_p

    def log_grad_scale(self, log_p, log1m_p, log_w=None):
        return log_p

    def mode(self) -> float:
        return 0.5


@SCHEMES.register("mse")
class MSE(WeightScheme):
    """Squared error on the labelled class, ``L = (1 - p_y)^2`` (the slides' definition, not the
    full-vector MSE ``||p - q||^2``):
    ``w(p) = 4 p (1 - p)^2``, ``s(p) = 2 p (1 - p)``; mode 1/3."""

    name = "mse"
    bounded_scale = True

    def log_w(self, log_p, log1m_p):
        return torch.add(log_p, log1m_p, alpha=2.0).add_(2 * LOG2)  # fused: fewer ops per batch

    def log_grad_scale(self, log_p, log1m_p, log_w=None):
        return LOG2 + log_p + log1m_p

    def mode(self) -> float:
        return 1.0 / 3.0


@SCHEMES.register("gce")
class GCE(WeightScheme):
    """Generalised cross entropy (Zhang & Sabuncu 2018), ``L = (1 - p^q) / q``:
    ``w(p) = 2 p^q (1 - p)``, ``s(p) = p^q``; mode ``q / (q + 1)``. ``q -> 0`` is CCE, ``q = 1``
    is MAE."""

    name = "gce"
    param_defaults = {"q": 0.7}
    bounded_scale = True

    def _validate(self):
        if not 0.0 <= self.q <= 1.0:
            raise ValueError(f"weighting scheme 'gce': q={self.q} must be in [0, 1]")

    def log_w(self, log_p, log1m_p):
        if self.q == 0.0:  # p**0 = 1, also at p = 0 (never 0 * -inf)
            return log1m_p + LOG2
        return torch.add(log1m_p, log_p, alpha=self.q).add_(LOG2)

    def log_grad_scale(self, log_p, log1m_p, log_w=None):
        return _scaled_log(self.q, log_p)

    def mode(self) -> float:
        return self.q / (self.q + 1.0)


@SCHEMES.register("imae")
class IMAE(WeightScheme):
    """Improved MAE (Wang et al., IMAE): ``w(p) = exp(T p (1 - p))``, default ``T = 8``; mode
    1/2. Equal to ``dm(lam=1, beta=T)``. ``w(1) = 1``: fitted examples keep a unit weight."""

    name = "imae"
    param_defaults = {"T": 8.0}

    def _validate(self):
        if self.T < 0:
            raise ValueError(f"weighting scheme 'imae': T={self.T} must be >= 0")

    def log_w(self, log_p, log1m_p):
        return torch.exp(log_p + log1m_p).mul_(self.T)

    def mode(self) -> float:
        return 0.5


@SCHEMES.register("dm")
class DM(WeightScheme):
    """Derivative Manipulation (Wang et al.): ``w(p) = exp(beta p^lam (1 - p))``; ``lam`` is the
    paper's lambda (emphasis mode ``lam / (lam + 1)``), ``beta >= 0`` the emphasis spread
    (larger beta: more variance between examples)."""

    name = "dm"
    param_defaults = {"lam": None, "beta": None}

    def _validate(self):
        if self.lam < 0:
            raise ValueError(f"weighting scheme 'dm': lam={self.lam} must be >= 0")
        if self.beta < 0:
            raise ValueError(f"weighting scheme 'dm': beta={self.beta} must be >= 0")

    def log_w(self, log_p, log1m_p):
        # lam * log p + log(1 - p) in one op; lam = 0 means p**0 = 1 (never 0 * -inf).
        inner = log1m_p if self.lam == 0.0 else torch.add(log1m_p, log_p, alpha=self.lam)
        return torch.exp(inner).mul_(self.beta)

    def mode(self) -> float:
        if self.beta == 0:
            return 0.0  # flat: every p is a maximiser; report the left end
        return self.lam / (self.lam + 1.0)


@SCHEMES.register("exponential")
class Exponential(WeightScheme):
    """Exponential emphasis density: ``w(p) = exp(beta (1 - p))`` (DM with ``lam = 0``); mode 0
    for ``beta > 0`` (1 for ``beta < 0``)."""

    name = "exponential"
    param_defaults = {"beta": None}

    def log_w(self, log_p, log1m_p):
        return self.beta * torch.exp(log1m_p)

    def mode(self) -> float:
        return 0.0 if self.beta >= 0 else 1.0


@SCHEMES.register("normal")
class Normal(WeightScheme):
    """Normal (Gaussian) emphasis density: ``w(p) = exp(-beta p (p - 2 psi))``
    ``= exp(beta psi^2) exp(-beta (p - psi)^2)``; mode ``psi`` clipped to [0, 1] for
    ``beta > 0``."""

    name = "normal"
    param_defaults = {"psi": None, "beta": None}

    def _validate(self):
        if self.beta < 0:
            raise ValueError(f"weighting scheme 'normal': beta={self.beta} must be >= 0")

    def log_w(self, log_p, log1m_p):
        p = torch.exp(log_p)
        return -self.beta * p * (p - 2.0 * self.psi)

    def mode(self) -> float:
        if self.beta == 0:
            return 0.0
        return min(max(self.psi, 0.0), 1.0)


@SCHEMES.register("beta")
class Beta(WeightScheme):
    """Beta emphasis density: ``w(p) = p^(alpha-1) (1 - p)^(eta-1)``; CCE, MAE, MSE, GCE(q) are
    ``(1, 2)``, ``(2, 2)``, ``(2, 3)``, ``(q+1, 2)`` up to a constant factor. Mode
    ``(alpha-1)/(alpha+eta-2)`` when ``alpha, eta >= 1`` (not both 1); otherwise the maximiser
    lies on the boundary and is found numerically."""

    name = "beta"
    param_defaults = {"alpha": None, "eta": None}

    def _validate(self):
        if self.alpha < 1 or self.eta < 1:
            # w must be finite on [0, 1] for the batch weights to exist.
            raise ValueError(
                f"weighting scheme 'beta': alpha={self.alpha}, eta={self.eta} must both be >= 1 "
                "(otherwise w(p) is infinite at p=0 or p=1)"
            )

    @property
    def bounded_scale(self) -> bool:  # type: ignore[override]
        return self.eta >= 2.0

    def log_w(self, log_p, log1m_p):
        return _scaled_log(self.alpha - 1.0, log_p) + _scaled_log(self.eta - 1.0, log1m_p)

    def log_grad_scale(self, log_p, log1m_p, log_w=None):
        return _scaled_log(self.alpha - 1.0, log_p) + _scaled_log(self.eta - 2.0, log1m_p) - LOG2

    def mode(self) -> float:
        a, e = self.alpha, self.eta
        if a + e > 2:
            return (a - 1.0) / (a + e - 2.0)
        return 0.0  # alpha = eta = 1: flat


def describe_schemes() -> str:
    """One line per scheme: name and parameters with defaults (used in error messages)."""
    lines = []
    for name, cls in SCHEMES.items():
        ps = ", ".join(k if d is None else f"{k}={d:g}" for k, d in cls.param_defaults.items())
        lines.append(f"{name}({ps})")
    return "; ".join(lines)


def get_scheme(name: str | WeightScheme, **params: float) -> WeightScheme:
    """Build a weighting scheme by name, e.g. ``get_scheme("dm", lam=0.5, beta=8.0)``.

    A :class:`WeightScheme` instance is returned unchanged (``params`` must then be empty).
    Unknown names, unknown or missing parameters raise ``ValueError`` listing the valid ones.
    """
    if isinstance(name, WeightScheme):
        if params:
            raise ValueError(f"get_scheme: got a scheme instance {name!r} and extra parameters {sorted(params)}")
        return name
    if not isinstance(name, str) or name.lower() not in SCHEMES:
        raise ValueError(f"unknown weighting scheme {name!r}; valid schemes: {describe_schemes()}")
    cls = SCHEMES[name.lower()]
    unknown = sorted(set(params) - set(cls.param_defaults))
    if unknown:
        valid = ", ".join(cls.param_defaults) or "none"
        raise ValueError(
            f"weighting scheme {cls.name!r}: unknown parameter(s) {unknown}; valid parameters: {valid}"
        )
    full = {}
    for key, default in cls.param_defaults.items():
        if key in params:
            full[key] = params[key]
        elif default is None:
            raise ValueError(
                f"weighting scheme {cls.name!r}: missing required parameter {key!r} "
                f"(parameters: {', '.join(cls.param_defaults)})"
            )
        else:
            full[key] = default
    return cls(**full)


__all__ = ["WeightScheme", "SCHEMES", "get_scheme", "describe_schemes", "CCE", "MAE", "MSE", "GCE",
           "IMAE", "DM", "Exponential", "Normal", "Beta"]
