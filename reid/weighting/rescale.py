"""Gradient rescaling: the one place example weights become gradients.

Derivative Manipulation (docs/methods.md §1; Wang et al., "Derivative Manipulation for General Example
Weighting") keeps cross entropy's gradient *direction* and replaces its *magnitude*:

    dL/dz_i = w_i / (2 (1 - p_i)) * (p_i - q_i) / Z,     w_i = w(p_i) detached,

so that the L1 norm of example i's logit gradient is ``w_i / Z`` (because
``||p_i - q_i||_1 = 2 (1 - p_i)``). ``Z = sum_j w_j`` ("derivative normalisation" as in the
released code, the default ``normalize="sum"``) or ``Z = N`` (``normalize="n"``).

Numerics. ``w_i / (2 (1 - p_i))`` is 0/0 for CCE-like schemes and unbounded for IMAE/DM as
``p_i -> 1``; ``c_i * CE_i`` is ``0 * inf`` once the logits are large. We never form either:

* ``log p_i = z_y - logsumexp(z)`` and ``log(1 - p_i) = logsumexp(z_{-y}) - logsumexp(z)``
  (logsumexp over the non-target logits) are finite for any finite logits;
* ``(p_i - q_i) / (2 (1 - p_i)) = (r_i - q_i) / 2`` with ``r_i = softmax(z_{-y})`` the
  distribution over the non-target classes (0 at the target), so the gradient is
  ``(w_i / Z) / 2 * (r_i - q_i)`` - a product of bounded factors;
* the normalised weight ``w_i / Z = softmax_i(log w)`` is computed in the log domain;
* everything is computed in float32 (float64 inputs stay float64), autocast disabled, then cast
  back to the logits' dtype (fp16/bf16 under autocast).

The loss is a custom ``torch.autograd.Function`` that *sets* this gradient; its forward value is
the weighted cross entropy ``sum_i (s_i / Z) * CE_i`` with ``s_i = w_i / (2 (1 - p_i))`` treated
as a constant (written ``(w_i / 2Z) * CE_i / (1 - p_i)``, finite because ``CE_i / (1 - p_i) -> 1``
as ``p_i -> 1``). For ``scheme="cce", normalize="n"`` it is exactly the mean cross entropy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reid.weighting.schemes import WeightScheme, get_scheme

NORMALIZE_CHOICES = ("sum", "n")


def _check_normalize(normalize: str) -> None:
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"normalize={normalize!r}: valid choices are {NORMALIZE_CHOICES} "
                         "('sum': divide by the batch sum of weights, as in the DM code; 'n': divide by N)")


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
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


class _LazyOtherLogProbs(StableLogProbs):
    """:class:`StableLogProbs` whose ``other`` (``r_i``, an [N, C] matrix) and ``has_competitor``
    are formed only when read: :func:`weighted_cross_entropy` never needs it normalised (it folds ``1 / sum`` into the
    per-row gradient scale), so building it on every forward would be a wasted pass."""

    def __init__(self, log_p, log1m_p, logits, lse, exp_other, total_other):
        self.log_p, self.log1m_p, self.logits, self.lse = log_p, log1m_p, logits, lse
        self._exp_other, self._total_other = exp_other, total_other

    @property
    def other(self) -> torch.Tensor:  # type: ignore[override]
        # total >= 1 on rows with a competitor (their largest term is exp(0)); rows without one are all 0.
        return self._exp_other / self._total_other.clamp(min=1.0)[:, None]

    @property
    def has_competitor(self) -> torch.Tensor:  # type: ignore[override]
        return self._total_other > 0


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C]; got shape {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be [N] with N={logits.shape[0]}; got shape {tuple(labels.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"need at least 2 classes; logits have shape {tuple(logits.shape)}")
    if labels.numel():
        lo, hi = torch.aminmax(labels)  # one pass, and one host read per bound
        if int(lo) < 0 or int(hi) >= logits.shape[1]:
            bad = labels[(labels < 0) | (labels >= logits.shape[1])]
            raise ValueError(f"labels must lie in [0, {logits.shape[1]}); got e.g. {bad[:5].tolist()}")


def _log_probs_kernel(z: torch.Tensor, idx: torch.Tensor):
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
    _check_logits_labels(logits, labels)
    with torch.no_grad():
        z = logits.detach().to(_compute_dtype(logits))
        z_y, lse_other, exp_other, total_other = _log_probs_kernel(z, labels[:, None])
        lse = torch.logaddexp(z_y, lse_other)
        log_p = z_y - lse
        log1m_p = lse_other - lse
        other = exp_other.div_(total_other.clamp(min=1.0)[:, None])
    return StableLogProbs(log_p, log1m_p, z, lse, other, total_other > 0)


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


def _weights(log_p, log1m_p, scheme: WeightScheme, normalize: str, valid) -> _LazyExampleWeights:
    """The batch's weights: ``log w_i`` and ``w_i / Z`` now, the rest on demand.

    ``w_i / Z = softmax_i(log w)`` (``"sum"``), one op, exact in the log domain when every
    ``w_i`` underflows; when every weight is exactly 0 (``log w = -inf`` throughout) the softmax
    is 0/0 and gives 0 instead: no example pushes anything."""
    if torch.is_grad_enabled():  # (the autograd Function's forward already runs without grad)
        with torch.no_grad():
            return _weights(log_p, log1m_p, scheme, normalize, valid)
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
    _check_normalize(normalize)
    ew = _weights(log_p, log1m_p, scheme, normalize, valid)
    return ExampleWeights(ew.p, ew.w, ew.log_w, ew.normalized, ew.log_z)


def _coefficients(scheme: WeightScheme, log_p: torch.Tensor, log1m_p: torch.Tensor, log_w: torch.Tensor,
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
    _check_normalize(normalize)
    if log_p is None or log1m_p is None:
        log_p, log1m_p = _log_p_from_p(p_true)
    ew = _weights(log_p, log1m_p, scheme, normalize, None)
    return _coefficients(scheme, log_p, log1m_p, ew.log_w, ew.log_z)


def _ce_over_one_minus_p(log_p: torch.Tensor, log1m_p: torch.Tensor) -> torch.Tensor:
    """``-log p / (1 - p)`` without cancellation. With ``x = 1 - p`` taken from the stable
    ``log(1 - p)``: ``-log1p(-x) / x`` for ``x < 1/2`` (``log1p`` keeps the digits that
    ``-log p`` computed as ``z_y - lse`` has lost near ``p = 1``; ``x`` floored at the smallest
    normal number keeps the limit 1 at ``x = 0``), ``-log p / x`` otherwise (well conditioned)."""
    tiny = torch.finfo(log1m_p.dtype).tiny
    neg_x = torch.exp(log1m_p.clamp(min=math.log(tiny))).neg_()
    numerator = torch.where(neg_x > -0.5, torch.log1p(neg_x), log_p)
    return numerator.div_(neg_x)


@dataclass
class WeightedCE:
    """Result of :func:`weighted_cross_entropy`. ``loss``: the scalar (``reduction="sum"``) or the
    per-example terms (``reduction="none"``; they sum to the scalar), differentiable with the
    DM gradient. ``weights``: the :class:`ExampleWeights` of the batch. ``coefficients``: the
    per-example scale ``c_i`` of cross entropy's gradient (clamped as in
    :func:`rescale_coefficients`)."""

    loss: torch.Tensor
    weights: ExampleWeights
    coefficients: torch.Tensor
    log_probs: StableLogProbs


class _LazyWeightedCE(WeightedCE):
    """:class:`WeightedCE` whose ``coefficients`` may be given as a zero-argument function,
    called (once) on first read: without label smoothing the gradient does not need them."""

    def __init__(self, loss, weights, coefficients, log_probs) -> None:
        self.loss, self.weights, self.log_probs = loss, weights, log_probs
        self._coefficients = coefficients

    @property
    def coefficients(self) -> torch.Tensor:  # type: ignore[override]
        if callable(self._coefficients):
            self._coefficients = self._coefficients()
        return self._coefficients

    def coefficients_getter(self):
        """A zero-argument function returning :attr:`coefficients` that holds only the detached
        per-example tensors they are computed from, not this result (whose ``loss`` holds the
        autograd graph): for stats that outlive the step."""
        if not callable(self._coefficients):
            value = self._coefficients
            return lambda: value
        compute, cache = self._coefficients, []

        def get():
            if not cache:
                cache.append(compute())
            return cache[0]
        return get


class _DMCrossEntropy(torch.autograd.Function):
    """Weighted cross entropy whose logit gradient is *set* (docs/methods.md §1), in one autograd node.

    The forward computes everything of :func:`weighted_cross_entropy` (values, weights,
    coefficients; the non-differentiable results go to ``results``, a list the caller passes in)
    and keeps ``exp_other`` = ``r_i * total_i`` plus three per-row vectors, so the backward forms
    the [N, C] gradient in one pass instead of the forward building it and the backward
    rescaling it::

        g_i = grad_out_i * (row_scale_i * exp_other_i - shift_i * 1 + target_i * q_i)

    with ``row_scale = f a / (Z total)``, ``shift = f eps c / C`` (smoothing only) and
    ``target = f (eps c - a / Z)``; see :func:`weighted_cross_entropy` for ``a``, ``c``, ``f``.
    """

    @staticmethod
    def forward(ctx, logits, labels, scheme, normalize, label_smoothing, example_factor, valid, reduce_sum,
                results):
        # autocast would run some of the reductions below in low precision: everything here is fp32/fp64.
        if torch.is_autocast_enabled(logits.device.type):
            with torch.autocast(device_type=logits.device.type, enabled=False):
                return _DMCrossEntropy.forward(ctx, logits, labels, scheme, normalize, label_smoothing,
                                               example_factor, valid, reduce_sum, results)
        z = logits.detach()
        if z.dtype != _compute_dtype(z):
            z = z.to(_compute_dtype(z))
        # a copy (N int64s): the backward must not see later in-place edits of the caller's labels.
        idx = labels.unsqueeze(1).clone()
        z_y, lse_other, exp_other, total_other = _log_probs_kernel(z, idx)
        lse = torch.logaddexp(z_y, lse_other)
        log_p = z_y - lse
        log1m_p = lse_other - lse
        ew = _weights(log_p, log1m_p, scheme, normalize, valid)
        factor = None if example_factor is None else example_factor.detach().to(z.dtype)

        # a_i / Z = w_i / (2Z) = normalized_i / 2, exact, and 0 for examples excluded by `valid`
        # and for rows without a finite competitor (their direction r - q is undefined): total is
        # >= 1 on rows with a competitor and 0 on the others, so min(total, 1/2) is the factor.
        a_over_z = ew.normalized * total_other.clamp(max=0.5)
        if label_smoothing > 0:
            # cap c_i at 1/eps (see weighted_cross_entropy); a_i / Z = c_i (1 - p_i) follows, so
            # the direction stays p - q~.
            a_over_z = torch.minimum(a_over_z, torch.exp(log1m_p) / label_smoothing)
        if factor is not None:
            a_over_z = a_over_z * factor
        values = a_over_z * _ce_over_one_minus_p(log_p, log1m_p)
        # exp_other is r_i * total_i; on rows without a competitor it is all 0 (any finite scale).
        row_scale = a_over_z / total_other.clamp(min=1.0)
        if label_smoothing > 0:
            coeff = _coefficients(scheme, log_p, log1m_p, ew.log_w, ew.log_z_div, label_smoothing, factor, valid)
            smooth = label_smoothing * coeff
            shift = smooth / logits.shape[1]
            target = smooth - a_over_z
            # CE~ = (1 - eps) CE + eps * CE_uniform, CE_uniform = logsumexp(z) - mean(z).
            ce_uniform = lse - z.mean(dim=1)
            values = (1 - label_smoothing) * values + smooth * ce_uniform
        else:
            # c_i is not needed for the gradient: computed only if the caller reads it.
            def coeff():
                return _coefficients(scheme, log_p, log1m_p, ew.log_w, ew.log_z_div, 0.0, factor, valid)
            shift = None
            target = a_over_z.neg()

        ctx.save_for_backward(exp_other, row_scale, target, idx)
        ctx.shift = shift
        ctx.logits_dtype = logits.dtype
        results.append((ew, coeff, _LazyOtherLogProbs(log_p, log1m_p, z, lse, exp_other, total_other)))
        return values.sum() if reduce_sum else values

    @staticmethod
    def backward(ctx, grad_out):
        exp_other, row_scale, target, idx = ctx.saved_tensors
        g = grad_out if grad_out.dtype == exp_other.dtype else grad_out.to(exp_other.dtype)  # scalar or [N]
        grad = exp_other * (row_scale * g).unsqueeze(1)
        if ctx.shift is not None:
            grad.sub_((ctx.shift * g).unsqueeze(1))
        grad.scatter_add_(1, idx, (target * g).unsqueeze(1))
        if grad.dtype != ctx.logits_dtype:
            grad = grad.to(ctx.logits_dtype)
        return grad, None, None, None, None, None, None, None, None


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, scheme: WeightScheme | str = "cce",
                           normalize: str = "sum", label_smoothing: float = 0.0, reduction: str = "sum",
                           example_factor: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                           **scheme_params) -> WeightedCE:
    """Cross entropy with Derivative-Manipulation gradient rescaling (docs/methods.md §1).

    Logit gradient of example i::

        g_i = f_i * [ (w_i / 2Z) (r_i - q_i) + eps * (s_i / Z) * (q_i - u) ]

    with ``w_i = w(p_i)`` (detached), ``r_i`` the softmax over the non-target classes, ``q_i``
    one-hot, ``u`` uniform (``1/C``), ``eps = label_smoothing``, ``f_i = example_factor`` (default
    1; ProSelfLC passes ``1 - eps_i``) and ``Z`` the normaliser. Without smoothing this is
    ``w_i / (2 (1 - p_i)) (p_i - q_i) / Z``: CCE's direction, L1 norm ``w_i / Z``.

    Label smoothing composes as "weights from ``p_i`` of the labelled class, direction toward the
    smoothed target ``q~ = (1 - eps) q + eps u`` (PyTorch's convention)": the gradient is
    ``s_i (p_i - q~_i) / Z`` with ``s_i = w_i / (2 (1 - p_i))``. For schemes with ``w(1) > 0``
    ``s_i`` diverges as ``p_i -> 1`` while ``p_i - q~_i`` does not vanish (and with
    ``normalize="sum"`` ``1/Z`` is unbounded when every example is fitted), so the coefficient
    ``c_i = s_i / Z`` is capped at ``1 / eps``: ``g_i = min(c_i, 1/eps) (p_i - q~_i)`` (the first
    term then uses ``min(w_i / 2Z, (1 - p_i) / eps)``). Each example's gradient then has L1 norm
    at most ``w_i / Z + 2``. The cap never binds with ``normalize="n"`` for cce, mae, mse, gce
    (``s <= 1``), so ``scheme="cce", normalize="n"`` equals ``F.cross_entropy(label_smoothing=eps)``
    exactly.

    Forward value: ``sum_i f_i * c~_i * CE~_i`` with ``c~_i`` the (capped) ``s_i / Z`` (the weighted smoothed cross entropy with the
    coefficients treated as constants), computed finitely. ``valid`` (bool [N]) drops examples
    (value and gradient 0, not counted in ``Z``).

    Cost: four passes over the ``[N, C]`` logits in the forward (copy, max, exp, sum) and one in
    the backward, plus a few dozen ops on ``[N]`` vectors; no host sync except the label-range
    check (and ``valid.sum()`` with ``normalize="n"``).
    """
    if reduction not in ("sum", "none"):
        raise ValueError(f"reduction={reduction!r}: valid choices are 'sum', 'none'")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1)")
    scheme = get_scheme(scheme, **scheme_params)
    _check_normalize(normalize)
    _check_logits_labels(logits, labels)
    results: list = []
    loss = _DMCrossEntropy.apply(logits, labels, scheme, normalize, float(label_smoothing), example_factor, valid,
                                 reduction == "sum", results)
    ew, coeff, log_probs = results[0]
    return _LazyWeightedCE(loss, ew, coeff, log_probs)


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


__all__ = ["NORMALIZE_CHOICES", "StableLogProbs", "stable_log_probs", "ExampleWeights", "example_weights",
           "weights_from_log_probs", "rescale_coefficients", "weighted_cross_entropy", "WeightedCE",
           "normalized_pair_weights"]
