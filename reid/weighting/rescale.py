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
  (logsumexp over the non-target logits, :mod:`reid.weighting.log_probs`) are finite for any
  finite logits;
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

import weakref
from dataclasses import dataclass

import torch

from reid.weighting.example_weights import ExampleWeights, batch_weights, check_normalize, dm_coefficients
from reid.weighting.log_probs import (StableLogProbs, check_logits_labels, compute_dtype, constants, gather_targets,
                                      log_probs_columns, range_checked_by_gather)
from reid.weighting.schemes import WeightScheme, get_scheme


class _LazyOtherLogProbs(StableLogProbs):
    """:class:`StableLogProbs` whose ``other`` (``r_i``, an [N, C] matrix), ``has_competitor``,
    ``lse`` and detached ``logits`` are formed only when read: :func:`weighted_cross_entropy`
    never needs ``r_i`` normalised (it folds ``1 / sum`` into the per-row gradient scale), and a
    training step reads none of them, so building them on every forward would be wasted ops.
    ``lse`` and ``total`` arrive as ``[N, 1]`` columns (the forward's layout)."""

    def __init__(self, log_p, log1m_p, logits, lse, exp_other, total_other):
        self.log_p, self.log1m_p = log_p, log1m_p
        self._logits, self._lse, self._exp_other, self._total_other = logits, lse, exp_other, total_other

    @property
    def logits(self) -> torch.Tensor:  # type: ignore[override]
        return self._logits.detach()

    @property
    def lse(self) -> torch.Tensor:  # type: ignore[override]
        return self._lse.view(-1)

    @property
    def other(self) -> torch.Tensor:  # type: ignore[override]
        # total >= 1 on rows with a competitor (their largest term is exp(0)); rows without one are all 0.
        return self._exp_other / self._total_other.clamp(min=1.0)

    @property
    def has_competitor(self) -> torch.Tensor:  # type: ignore[override]
        return self._total_other.view(-1) > 0


def _ce_over_one_minus_p(log_p: torch.Tensor, log1m_p: torch.Tensor, consts) -> torch.Tensor:
    """``-log p / (1 - p)`` without cancellation. With ``x = 1 - p`` taken from the stable
    ``log(1 - p)``: ``-log1p(-x) / x`` for ``x < 1/2`` (``log1p`` keeps the digits that
    ``-log p`` computed as ``z_y - lse`` has lost near ``p = 1``; ``x`` floored at the smallest
    normal number keeps the limit 1 at ``x = 0``), ``-log p / x`` otherwise (well conditioned).
    ``consts``: :func:`reid.weighting.log_probs.constants` of the dtype."""
    _, log_tiny, neg_half, _, _ = consts
    neg_x = torch.exp(log1m_p.clamp_min(log_tiny)).neg_()
    numerator = torch.where(neg_x > neg_half, torch.log1p(neg_x), log_p)
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


def _smoothed(log_p, log1m_p, z, lse, exp_other, total_other, normalized, eps: float, factor):
    """Label smoothing under a weighting scheme: direction toward ``q~ = (1 - eps) q + eps u``,
    magnitude the scheme's weight (docs/weighting.md, "label smoothing")::

        g_i = f_i (w_i / Z) (p_i - q~_i) / ||p_i - q~_i||_1

    so the L1 norm of every example's gradient is ``f_i w_i / Z`` exactly as without smoothing
    (0 where ``p_i = q~_i``: nothing left to fit). With ``k_i = f_i (w_i / Z) / ||p_i - q~_i||_1``
    the gradient is ``k_i (1 - p_i) r_i - k_i eps / C + k_i (eps - (1 - p_i)) q_i`` (``r_i`` the
    non-target softmax), which the backward forms from ``exp_other`` in one pass; the value is
    ``k_i CE~_i`` (``k_i`` a constant), ``CE~ = (1 - eps) CE + eps (logsumexp(z) - mean(z))``.
    Every per-row argument and result is an ``[N, 1]`` column. Returns ``(values, row_scale,
    shift, target, coefficients)`` with ``coefficients = k_i``."""
    n_classes = z.shape[1]
    one_minus_p = torch.exp(log1m_p)
    r = exp_other / total_other.clamp(min=1.0)
    u = eps / n_classes
    # ||p - q~||_1: off-target |(1 - p_y) r_j - u| (the target column of r is 0, so subtract its u),
    # plus the target's |p_y - 1 + eps - u|.
    off = (one_minus_p * r - u).abs_().sum(dim=1, keepdim=True) - u
    l1 = off + (eps - u - one_minus_p).abs()
    k = torch.where(l1 > 0, normalized / l1.clamp(min=torch.finfo(l1.dtype).tiny), torch.zeros_like(l1))
    if factor is not None:
        k = k * factor
    k = torch.clamp(k, max=torch.finfo(k.dtype).max)
    ce = -log_p
    values = k * ((1 - eps) * ce + eps * (lse - z.mean(dim=1, keepdim=True)))
    row_scale = k * one_minus_p / total_other.clamp(min=1.0)
    shift = k * u
    target = k * (eps - one_minus_p)
    return values, row_scale, shift, target, k


_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)


def _may_overwrite(ctx) -> bool:
    """True when the backward may reuse the saved ``exp_other`` as its output (see there); False
    where torch cannot tell whether the graph is kept."""
    return _keep_graph is not None and not _keep_graph() and ctx.log_probs_ref() is None


class _DMCrossEntropy(torch.autograd.Function):
    """Weighted cross entropy whose logit gradient is *set* (docs/methods.md §1), in one autograd node.

    The forward computes everything of :func:`weighted_cross_entropy` (values, weights,
    coefficients; the non-differentiable results go to ``results``, a list the caller passes in)
    and keeps ``exp_other`` = ``r_i * total_i`` plus three per-row columns, so the backward forms
    the [N, C] gradient in one pass instead of the forward building it and the backward
    rescaling it::

        g_i = grad_out_i * (row_scale_i * exp_other_i - shift_i * 1 + target_i * q_i)

    with ``row_scale = f a / (Z total)``, ``shift = f eps c / C`` (smoothing only) and
    ``target = f (eps c - a / Z)``; see :func:`weighted_cross_entropy` for ``a``, ``c``, ``f``.

    Cost model (why the code looks the way it does; issue 14). At the benchmark shape (256 x 625,
    one CPU thread) the matrix work above is cheaper than ``F.cross_entropy``'s (one ``exp`` pass
    instead of two), so what is left to win is per call: a fresh ``[N, C]`` buffer costs page
    faults worth ~0.15 of plain CE's whole step, and each of the ~35 ops on ``[N]`` vectors costs
    2-8 us of dispatch (more after the matrix passes have flushed the caches), as much as a tenth
    of a pass over the logits. Hence: the backward writes the gradient over the saved
    ``exp_other`` when nothing can read it again (:func:`_may_overwrite`) and skips multiplying by
    a unit ``grad_out``; the forward keeps per-row values as ``[N, 1]`` columns (no reshapes
    before broadcasting), takes its constants as cached 0-d tensors (a Python number is wrapped
    into a tensor on every op), saves a view of the labels instead of a copy and lets a CPU
    ``gather`` check the label range. Every op is the one the formula names, in the same order:
    values and gradients are bit-identical to the code before issue 14 (the main job's recorded
    golden, tests/test_losses_golden.py, checks it).
    """

    @staticmethod
    def forward(ctx, logits, labels, cfg):
        # autocast would run some of the reductions below in low precision: everything here is fp32/fp64.
        if torch.is_autocast_enabled(logits.device.type):
            with torch.autocast(device_type=logits.device.type, enabled=False):
                return _DMCrossEntropy.forward(ctx, logits, labels, cfg)
        scheme, normalize, label_smoothing, example_factor, valid, reduce_sum, results = cfg
        z = logits  # the forward records no graph; `logits` (detached) is handed out only on read
        if z.dtype != compute_dtype(z):
            z = z.to(compute_dtype(z))
        consts = constants(z.dtype, z.device)
        # a view, saved below: an in-place edit of the caller's labels before backward() raises
        # torch's "modified by an inplace operation" error (as F.cross_entropy's saved target does).
        idx = labels.view(-1, 1)
        z_y = gather_targets(z, idx, labels) if range_checked_by_gather(z) else z.gather(1, idx)
        z_y, lse_other, lse, exp_other, total_other = log_probs_columns(z, idx, z_y)
        log_p_col = z_y - lse
        log1m_p_col = lse_other - lse
        # the scheme sees [N] vectors (a scheme may reduce over the batch); views, no copies.
        log_p, log1m_p = log_p_col.view(-1), log1m_p_col.view(-1)
        ew = batch_weights(log_p, log1m_p, scheme, normalize, valid)
        factor = None if example_factor is None else example_factor.detach().to(z.dtype)
        factor_col = None if factor is None else factor.view(-1, 1)

        # a_i / Z = w_i / (2Z) = normalized_i / 2, exact, and 0 for examples excluded by `valid`
        # and for rows without a finite competitor (their direction r - q is undefined): total is
        # >= 1 on rows with a competitor and 0 on the others, so min(total, 1/2) is the factor.
        if label_smoothing > 0:
            values, row_scale, shift, target, k = _smoothed(log_p_col, log1m_p_col, z, lse, exp_other, total_other,
                                                            ew.normalized.view(-1, 1), label_smoothing, factor_col)
            coeff = k.view(-1)
        else:
            a_over_z = ew.normalized.view(-1, 1) * total_other.clamp_max(consts[3])  # consts[3] = 1/2
            if factor_col is not None:
                a_over_z = a_over_z * factor_col
            values = a_over_z * _ce_over_one_minus_p(log_p_col, log1m_p_col, consts)
            # exp_other is r_i * total_i; on rows without a competitor it is all 0 (any finite scale).
            row_scale = a_over_z / total_other.clamp_min(consts[4])  # 1

            # c_i is not needed for the gradient: computed only if the caller reads it.
            def coeff():
                return dm_coefficients(scheme, log_p, log1m_p, ew.log_w, ew.log_z_div, 0.0, factor, valid)
            shift = None
            target = a_over_z.neg()

        ctx.save_for_backward(exp_other, row_scale, target, idx)
        ctx.shift = shift
        ctx.logits_dtype = logits.dtype
        log_probs = _LazyOtherLogProbs(log_p, log1m_p, z, lse, exp_other, total_other)
        ctx.log_probs_ref = weakref.ref(log_probs)  # the only other holder of exp_other
        results.append((ew, coeff, log_probs))
        return values.sum() if reduce_sum else values.view(-1)

    @staticmethod
    def backward(ctx, grad_out):
        exp_other, row_scale, target, idx = ctx.saved_tensors
        shift = ctx.shift
        g = grad_out if grad_out.dtype == exp_other.dtype else grad_out.to(exp_other.dtype)  # scalar or [N]
        # `loss.backward()` passes a CPU 1.0: multiplying by it changes no bit, so skip those ops.
        if g.ndim or g.device.type != "cpu" or float(g) != 1.0:
            g = g.view(-1, 1) if g.ndim else g
            row_scale, target = row_scale * g, target * g
            shift = None if shift is None else shift * g
        # The gradient is written over exp_other when nothing can read it again: the graph is freed
        # after this call (no retain_graph / create_graph) and the result's log_probs, which reads
        # it lazily, is gone. A fresh [N, C] buffer is the costliest part of the step on CPU
        # (page faults: ~0.15 of the whole step at 256 x 625); the values are the same either way.
        grad = exp_other.mul_(row_scale) if _may_overwrite(ctx) else exp_other * row_scale
        if shift is not None:
            grad.sub_(shift)
        grad.scatter_add_(1, idx, target)
        if grad.dtype != ctx.logits_dtype:
            grad = grad.to(ctx.logits_dtype)
        return grad, None, None


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, scheme: WeightScheme | str = "cce",
                           normalize: str = "sum", label_smoothing: float = 0.0, reduction: str = "sum",
                           example_factor: torch.Tensor | None = None, valid: torch.Tensor | None = None,
                           **scheme_params) -> WeightedCE:
    """Cross entropy with Derivative-Manipulation gradient rescaling (docs/methods.md §1).

    Logit gradient of example i::

        g_i = f_i (w_i / Z) (p_i - q~_i) / ||p_i - q~_i||_1

    with ``w_i = w(p_i)`` (detached, ``p_i`` of the labelled class), ``q~_i = (1 - eps) q_i + eps u``
    (``q_i`` one-hot, ``u`` uniform ``1/C``, ``eps = label_smoothing``; PyTorch's convention),
    ``f_i = example_factor`` (default 1; ProSelfLC passes ``1 - eps_i``) and ``Z`` the normaliser.
    Without smoothing ``||p_i - q_i||_1 = 2 (1 - p_i)`` and this is
    ``w_i / (2 (1 - p_i)) (p_i - q_i) / Z``: CCE's direction, L1 norm ``w_i / Z``.

    Label smoothing changes the direction only: the magnitude stays the scheme's weight
    (``||g_i||_1 = f_i w_i / Z`` for every scheme and every ``p_i``), so a fitted example can never
    take more than its weight's share of the batch's push. (Composing as
    ``s_i (p_i - q~_i) / Z`` instead lets the coefficient ``s_i = w_i / (2 (1 - p_i))`` of IMAE/DM
    diverge as ``p_i -> 1`` while ``p_i - q~_i`` does not vanish: measured with IMAE, eps = 0.1,
    625 classes, 8 fitted examples of 64 took 95 % of the batch's gradient.) Consequence: with
    ``scheme="cce"`` the magnitude is ``2 (1 - p_i)`` (CCE's weight), not PyTorch's
    ``||p_i - q~_i||_1``; PyTorch's label smoothing is :class:`reid.losses.LabelSmoothingLoss`.

    Forward value: ``sum_i f_i c_i CE~_i`` with ``c_i`` the coefficient of the gradient direction
    (``s_i / Z`` without smoothing, ``(w_i / Z) / ||p_i - q~_i||_1`` with it) treated as a constant,
    ``CE~`` the (smoothed) cross entropy, computed finitely. ``valid`` (bool [N]) drops examples
    (value and gradient 0, not counted in ``Z``).

    Cost: four passes over the ``[N, C]`` logits in the forward (copy, max, exp, sum) and one in
    the backward (into the forward's buffer unless the graph or ``log_probs`` is kept), plus ~35
    ops on ``[N]`` vectors (see :class:`_DMCrossEntropy`); no device sync except the label-range
    check on CUDA (on CPU ``gather`` checks it) and ``valid.sum()`` with ``normalize="n"``.
    """
    if reduction not in ("sum", "none"):
        raise ValueError(f"reduction={reduction!r}: valid choices are 'sum', 'none'")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1)")
    scheme = get_scheme(scheme, **scheme_params)
    check_normalize(normalize)
    check_logits_labels(logits, labels, check_range=not range_checked_by_gather(logits))
    results: list = []
    loss = _DMCrossEntropy.apply(logits, labels, (scheme, normalize, float(label_smoothing), example_factor, valid,
                                                  reduction == "sum", results))
    ew, coeff, log_probs = results[0]
    return _LazyWeightedCE(loss, ew, coeff, log_probs)




__all__ = ["WeightedCE", "weighted_cross_entropy"]
