"""Example weights ``w(p_i)`` of a batch and their normalisation (docs/methods.md §1-3): the
generic entry for any loss with a per-example probability (:func:`example_weights`), the
Derivative-Manipulation coefficients ``c_i = w_i / (2 (1 - p_i)) / Z``
(:func:`rescale_coefficients`) and the per-row pair weights of Ranked List Loss
(:func:`normalized_pair_weights`). Everything is detached and computed in the log domain:
``w_i / Z = softmax_i(log w)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reid.registry import Registry
from reid.weighting.schemes import WeightScheme, get_scheme

#: the normaliser ``Z`` of the weights: name -> what it is (``normalize=`` everywhere).
NORMALIZATIONS: Registry[str] = Registry("normalisation")
NORMALIZATIONS.register("sum", "Z = sum_j w_j, the batch sum of weights (the released DM code)")
NORMALIZATIONS.register("n", "Z = N, the number of examples")
NORMALIZE_CHOICES = NORMALIZATIONS.names()


def check_normalize(normalize: str) -> None:
    """Raise ``ValueError`` unless ``normalize`` is a name of :data:`NORMALIZATIONS`."""
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"normalize={normalize!r}: valid choices are {NORMALIZE_CHOICES} "
                         "('sum': divide by the batch sum of weights, as in the DM code; 'n': divide by N)")


@dataclass
class ExampleWeights:
    """Weights of one batch: ``p`` (labelled-class probability), ``w`` (unnormalised ``w(p)``),
    ``log_w``, ``normalized`` (``w_i / Z``) and ``log_z``; all detached."""

    p: torch.Tensor
    w: torch.Tensor
    log_w: torch.Tensor
    normalized: torch.Tensor
    log_z: torch.Tensor


class _LazyExampleWeights(ExampleWeights):
    """:class:`ExampleWeights` whose ``p``, ``w`` and ``log_z`` are computed on first read (and
    kept). The gradient needs only ``normalized``; a training step that never reads the others
    skips their ops - at batch 256 each small op costs as much as a tenth of a pass over the
    logits. Values are identical to the eager ones."""

    def __init__(self, log_p: torch.Tensor, log_w: torch.Tensor, normalized: torch.Tensor, normalize: str,
                 valid: torch.Tensor | None, masked_log_w: torch.Tensor) -> None:
        self.log_w, self.normalized = log_w, normalized
        self._log_p, self._normalize, self._valid, self._masked_log_w = log_p, normalize, valid, masked_log_w
        self._cache: dict[str, torch.Tensor] = {}

    def _get(self, name: str, compute) -> torch.Tensor:
        value = self._cache.get(name)
        if value is None:
            with torch.no_grad():
                value = self._cache[name] = compute()
        return value

    @property
    def p(self) -> torch.Tensor:  # type: ignore[override]
        return self._get("p", lambda: torch.exp(self._log_p))

    @property
    def w(self) -> torch.Tensor:  # type: ignore[override]
        def compute():
            w = torch.exp(self.log_w)
            return w if self._valid is None else w.masked_fill(~self._valid, 0.0)
        return self._get("w", compute)

    @property
    def log_z(self) -> torch.Tensor:  # type: ignore[override]
        return self._get("log_z", lambda: _log_normaliser(self._masked_log_w, self._normalize, self._valid))

    @property
    def log_z_div(self) -> torch.Tensor:
        """``log Z``, except ``+inf`` where ``Z = 0`` (every weight exactly 0, or an empty batch),
        so that ``exp(log x - log Z')`` is 0 there, never ``exp(-inf + inf) = NaN``."""
        # log Z is never +inf (finite logits give log w < +inf): nan_to_num maps only -inf.
        return self._get("log_z_div", lambda: torch.nan_to_num(self.log_z, neginf=math.inf))


def _log_normaliser(masked_log_w: torch.Tensor, normalize: str, valid: torch.Tensor | None) -> torch.Tensor:
    """``log Z``: ``logsumexp_i log w_i`` over the valid examples (``"sum"``; ``-inf`` when every
    weight is 0 or the batch is empty) or ``log N`` (``"n"``, ``N`` = number of valid examples, at least 1)."""
    if normalize == "sum":
        if not masked_log_w.numel():
            return masked_log_w.new_tensor(-math.inf)
        return torch.logsumexp(masked_log_w, dim=0)
    n = masked_log_w.numel() if valid is None else int(valid.sum())
    return masked_log_w.new_tensor(math.log(max(n, 1)))


def batch_weights(log_p, log1m_p, scheme: WeightScheme, normalize: str, valid) -> _LazyExampleWeights:
    """The batch's weights: ``log w_i`` and ``w_i / Z`` now, the rest on demand.

    ``w_i / Z = softmax_i(log w)`` (``"sum"``), one op, exact in the log domain when every
    ``w_i`` underflows; when every weight is exactly 0 (``log w = -inf`` throughout) the softmax
    is 0/0 and gives 0 instead: no example pushes anything."""
    if torch.is_grad_enabled():  # (the autograd Function's forward already runs without grad)
        with torch.no_grad():
            return batch_weights(log_p, log1m_p, scheme, normalize, valid)
    log_w = scheme.log_w(log_p, log1m_p)
    masked = log_w if valid is None else log_w.masked_fill(~valid, -math.inf)
    if normalize == "sum":
        normalized = torch.softmax(masked, dim=0).nan_to_num_(nan=0.0)
    else:
        n = masked.numel() if valid is None else int(valid.sum())
        normalized = torch.exp(masked - math.log(max(n, 1)))
    return _LazyExampleWeights(log_p, log_w, normalized, normalize, valid, masked)


def weights_from_log_probs(log_p: torch.Tensor, log1m_p: torch.Tensor, scheme: WeightScheme,
                           normalize: str = "sum", valid: torch.Tensor | None = None) -> ExampleWeights:
    """Weights ``w(p_i)`` and their normalised values from stable ``log p`` / ``log(1-p)``.
    ``valid`` (bool [N]) excludes examples from the batch (weight 0, not counted in Z)."""
    check_normalize(normalize)
    ew = batch_weights(log_p, log1m_p, scheme, normalize, valid)
    return ExampleWeights(ew.p, ew.w, ew.log_w, ew.normalized, ew.log_z)


def dm_coefficients(scheme: WeightScheme, log_p: torch.Tensor, log1m_p: torch.Tensor, log_w: torch.Tensor,
                  log_z: torch.Tensor, label_smoothing: float = 0.0, factor: torch.Tensor | None = None,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """``c_i = f_i min(s_i / Z, 1/eps)`` (no cap without smoothing), ``s_i = w_i / (2 (1 - p_i))``
    from the scheme's closed form, in the log domain (``1/Z`` alone can overflow when every
    ``w_i`` is tiny); clamped to the dtype's largest finite value (reachable without smoothing,
    for schemes with ``w(1) > 0`` as ``p_i -> 1``, or with ``Z = 0``); 0 for invalid examples."""
    with torch.no_grad():
        log_c = scheme.log_grad_scale(log_p, log1m_p, log_w) - log_z
        if label_smoothing > 0:
            log_c = torch.clamp(log_c, max=-math.log(label_smoothing))
        c = torch.exp(log_c)
        if factor is not None:
            c = c * factor
        if valid is not None:
            c = c.masked_fill(~valid, 0.0)
        return torch.clamp(c, max=torch.finfo(c.dtype).max)


def _log_p_from_p(p_true: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p_true = torch.as_tensor(p_true)
    if not torch.is_floating_point(p_true):
        raise ValueError(f"p_true must be a floating tensor of probabilities; got dtype {p_true.dtype}")
    if torch.any(torch.isnan(p_true)) or torch.any((p_true < 0) | (p_true > 1)):
        raise ValueError("p_true must contain probabilities in [0, 1] (no NaN)")
    p = p_true.detach()
    return torch.log(p), torch.log1p(-p)


def example_weights(p_true: torch.Tensor | None, scheme: WeightScheme | str, normalize: str = "sum", *,
                    log_p: torch.Tensor | None = None, log1m_p: torch.Tensor | None = None,
                    valid: torch.Tensor | None = None, **scheme_params) -> ExampleWeights:
    """Generic entry point for any loss that has a per-example probability ``p_i``: returns the
    detached weights ``w(p_i)`` and ``w(p_i) / Z``. Pass ``log_p`` / ``log1m_p`` (from logits)
    instead of ``p_true`` for full precision near ``p = 1``."""
    scheme = get_scheme(scheme, **scheme_params)
    if log_p is None or log1m_p is None:
        log_p, log1m_p = _log_p_from_p(p_true)
    return weights_from_log_probs(log_p, log1m_p, scheme, normalize, valid)


def rescale_coefficients(p_true: torch.Tensor | None, scheme: WeightScheme | str, normalize: str = "sum", *,
                         log_p: torch.Tensor | None = None, log1m_p: torch.Tensor | None = None,
                         **scheme_params) -> torch.Tensor:
    """Detached coefficients ``c_i = w_i / (2 (1 - p_i)) / Z`` such that ``sum_i c_i * CE_i`` has
    logit gradient ``w_i / (2 (1 - p_i)) * (p_i - q_i) / Z``.

    ``s_i = w_i / (2 (1 - p_i))`` uses each scheme's closed form (cce 1, mae p, mse 2p(1-p),
    gce p^q) so it is exact at ``p = 1`` for those; for schemes with ``w(1) > 0`` (imae, dm,
    exponential, normal) it grows like ``1 / (1 - p)`` and is clamped to the dtype's largest
    finite value. Multiplying such a ``c_i`` by ``CE_i ~ 1 - p_i`` is exactly the ``0 * inf``
    the package avoids: for training use :func:`weighted_cross_entropy`, which never forms it.
    """
    scheme = get_scheme(scheme, **scheme_params)
    check_normalize(normalize)
    if log_p is None or log1m_p is None:
        log_p, log1m_p = _log_p_from_p(p_true)
    ew = batch_weights(log_p, log1m_p, scheme, normalize, None)
    return dm_coefficients(scheme, log_p, log1m_p, ew.log_w, ew.log_z)


def normalized_pair_weights(scores: torch.Tensor, active: torch.Tensor, temperature: float) -> torch.Tensor:
    """Detached weights ``exp(T * score_ij)`` normalised to sum to 1 over the active entries of
    each row ``i`` (rows without active entries get all zeros).

    Ranked List Loss (docs/methods.md §3; Wang et al., CVPR 2019) weights negatives by
    ``exp(T_n (alpha - d_ij))`` and positives by ``exp(T_p (d_ij - (alpha - m)))`` within each
    query - the ``exponential`` emphasis family of §1 applied to pair distances. Computed as a
    masked softmax, so large ``T * score`` cannot overflow.
    """
    with torch.no_grad():
        s = scores.detach()
        logits = (temperature * s).masked_fill(~active, -math.inf)
        row_max = logits.max(dim=-1, keepdim=True).values
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        e = torch.exp(logits - row_max)
        denom = e.sum(dim=-1, keepdim=True)
        return torch.where(denom > 0, e / denom.clamp_min(torch.finfo(e.dtype).tiny), torch.zeros_like(e))




__all__ = ["NORMALIZATIONS", "NORMALIZE_CHOICES", "ExampleWeights", "batch_weights", "check_normalize",
           "dm_coefficients", "example_weights", "normalized_pair_weights", "rescale_coefficients",
           "weights_from_log_probs"]
