"""The weighted cross entropy's one-node path (issue 14, goal 4) against an independent reference.

The reference is written here from the formulas of docs/methods.md §1 in arbitrary precision
(mpmath, 60 digits), not from the package: with ``s_i = sum_{j != y} exp(z_j - z_y)``,
``p_i = 1 / (1 + s_i)``, ``1 - p_i = s_i / (1 + s_i)``, ``-log p_i = log1p(s_i)`` and the
non-target softmax ``r_ij = exp(z_j - z_y) / s_i`` - no cancellation anywhere, so the reference
stays exact where ``p_i`` is within ``1e-4000`` of 0 or 1. The weight formulas ``w(p)`` are
written out again below (not taken from :mod:`reid.weighting.schemes`). Expected:

    grad_i = (w_i / Z) / 2 * (r_i - q_i)           value = sum_i (w_i / (2 Z)) (-log p_i) / (1 - p_i)

The package computes in float32 (float64 inputs stay float64); the comparisons allow float32
rounding of a few ulps of each row's scale.
"""

from __future__ import annotations

import pytest
import torch

from reid.weighting import rescale, stable_log_probs, weighted_cross_entropy

mp = pytest.importorskip("mpmath")
mp.mp.dps = 60

SCHEMES = [
    ("cce", {}), ("mae", {}), ("mse", {}), ("gce", {"q": 0.7}), ("imae", {"T": 8.0}),
    ("dm", {"lam": 0.5, "beta": 8.0}), ("exponential", {"beta": 2.0}), ("normal", {"psi": 0.5, "beta": 4.0}),
    ("beta", {"alpha": 2.0, "eta": 3.0}), ("beta", {"alpha": 2.0, "eta": 1.5}),
]
IDS = [f"{n}-{'-'.join(f'{k}{v:g}' for k, v in p.items())}" if p else n for n, p in SCHEMES]


def _w(name, params, p, one_minus_p):
    """w(p), written from the scheme table of docs/methods.md §1 (mpmath numbers)."""
    if name == "cce":
        return 2 * one_minus_p
    if name == "mae":
        return 2 * p * one_minus_p
    if name == "mse":
        return 4 * p * one_minus_p ** 2
    if name == "gce":
        return 2 * p ** params["q"] * one_minus_p
    if name == "imae":
        return mp.exp(params["T"] * p * one_minus_p)
    if name == "dm":
        return mp.exp(params["beta"] * p ** params["lam"] * one_minus_p)
    if name == "exponential":
        return mp.exp(params["beta"] * one_minus_p)
    if name == "normal":
        return mp.exp(-params["beta"] * p * (p - 2 * params["psi"]))
    if name == "beta":
        return p ** (params["alpha"] - 1) * one_minus_p ** (params["eta"] - 1)
    raise AssertionError(name)


def _reference(logits: torch.Tensor, labels: torch.Tensor, name: str, params: dict, normalize: str):
    """(value, gradient [N, C], p [N], normalised weights [N]) in float64, from 60-digit arithmetic."""
    rows = logits.double().tolist()
    per_row = []
    for z, y in zip(rows, labels.tolist()):
        e = [mp.exp(mp.mpf(zj) - mp.mpf(z[y])) for zj in z]
        s = mp.fsum(e[j] for j in range(len(z)) if j != y)
        p, one_minus_p = 1 / (1 + s), s / (1 + s)
        per_row.append((e, s, p, one_minus_p, mp.log1p(s), _w(name, params, p, one_minus_p)))
    weights = [row[5] for row in per_row]
    z_norm = mp.fsum(weights) if normalize == "sum" else mp.mpf(len(weights))
    value, grad = mp.mpf(0), []
    for (e, s, p, one_minus_p, ce, w), y in zip(per_row, labels.tolist()):
        a = w / z_norm / 2  # the gradient's row scale: ||g_i||_1 = w_i / Z
        value += a * ce / one_minus_p
        grad.append([float(-a) if j == y else float(a * e[j] / s) for j in range(len(e))])
    return (float(value), torch.tensor(grad, dtype=torch.float64), torch.tensor([float(r[2]) for r in per_row],
            dtype=torch.float64), torch.tensor([float(w / z_norm) for w in weights], dtype=torch.float64))


# Rows: ordinary; p -> 1 (the labelled logit leads by 1e4, by 200: exp underflows in float32 and
# float64, by 50: 1 - p = 2e-22 is below float32's epsilon); p -> 0 (trails by 1e4, by 200); huge
# magnitudes of both signs; a tie; all equal.
EXTREME = torch.tensor([
    [1.5, -0.5, 0.3, 2.0, -1.0],
    [1e4, 0.0, 0.0, 0.0, 0.0],
    [200.0, 0.0, -3.0, 1.0, 0.0],
    [50.0, 0.0, -50.0, 0.0, 10.0],
    [0.0, 1e4, 0.0, 0.0, 0.0],
    [-200.0, 0.0, 1.0, 0.0, 2.0],
    [-1e4, 1e4, -1e4, 3.0, 0.0],
    [4.0, 4.0, 1.0, 0.0, -1.0],
    [0.0, 0.0, 0.0, 0.0, 0.0],
])
EXTREME_LABELS = torch.tensor([3, 0, 0, 0, 0, 0, 1, 0, 2])


def _batch(seed=0, n=10, c=6, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * scale, torch.randint(0, c, (n,), generator=g)


def _step(logits, labels, name, params, keep_result=False, **kwargs):
    """A training step: only the loss survives to ``backward()`` unless ``keep_result``."""
    z = logits.clone().requires_grad_(True)
    out = weighted_cross_entropy(z, labels, name, **params, **kwargs)
    loss = out.loss
    kept = out if keep_result else None
    del out  # (no reference cycle: the result is freed here)
    loss.sum().backward()  # a scalar loss: sum is the identity, its backward passes exactly 1.0
    return z.grad, loss.detach(), kept


def _assert_rows_close(grad, ref, rtol):
    # each row to a few ulps of its own scale (a row's entries span many orders of magnitude), or
    # of the dtype's underflow floor: a row whose weight share is 1e-87 is 0 in float32, correctly
    floor = 1e-30 if grad.dtype == torch.float32 else 1e-290
    scale = ref.abs().amax(dim=1, keepdim=True).clamp(min=floor)
    err = ((grad.double() - ref).abs() / scale).amax(dim=1)
    assert torch.all(err <= rtol), (err, grad, ref)


@pytest.mark.parametrize("name,params", SCHEMES, ids=IDS)
@pytest.mark.parametrize("normalize", ["sum", "n"])
@pytest.mark.parametrize("batch", ["random", "extreme"])
def test_gradient_and_value_match_the_arbitrary_precision_reference(name, params, normalize, batch):
    logits, labels = (EXTREME, EXTREME_LABELS) if batch == "extreme" else _batch(seed=len(name))
    value, ref_grad, ref_p, ref_norm = _reference(logits, labels, name, params, normalize)
    for dtype, rtol in ((torch.float32, 2e-5), (torch.float64, 1e-11)):
        grad, loss, _ = _step(logits.to(dtype), labels, name, params, normalize=normalize)
        assert grad.dtype == dtype and loss.dtype == dtype
        assert torch.isfinite(grad).all() and torch.isfinite(loss)
        _assert_rows_close(grad, ref_grad, rtol)
        assert float(loss) == pytest.approx(value, rel=rtol, abs=1e-300)
        _, _, out = _step(logits.to(dtype), labels, name, params, keep_result=True, normalize=normalize)
        floor = 1e-30 if dtype == torch.float32 else 1e-290  # float32 underflows where the reference has 1e-88
        torch.testing.assert_close(out.weights.p.double(), ref_p, rtol=rtol, atol=floor)
        torch.testing.assert_close(out.weights.normalized.double(), ref_norm, rtol=rtol * 5, atol=floor)


@pytest.mark.parametrize("name,params", SCHEMES, ids=IDS)
@pytest.mark.parametrize("kwargs", [{}, {"normalize": "n"}, {"reduction": "none"}, {"label_smoothing": 0.1},
                                    {"example_factor": torch.linspace(0.2, 1.0, 9)},
                                    {"valid": torch.tensor([True, False] * 4 + [True])}],
                         ids=["default", "n", "none", "smoothing", "factor", "valid"])
def test_overwriting_the_saved_buffer_changes_no_bit(name, params, kwargs, monkeypatch):
    # The backward writes the gradient over its saved buffer only when nothing else can read it
    # (graph freed, result dropped); the other path allocates. Both must give the same bits, and a
    # kept graph must give the same gradient on every backward.
    taken = []
    decide = rescale._may_overwrite
    monkeypatch.setattr(rescale, "_may_overwrite", lambda ctx: taken.append(decide(ctx)) or taken[-1])
    logits, labels = torch.cat([EXTREME[:, :5], _batch(seed=3, n=9, c=5)[0]]), torch.cat([EXTREME_LABELS, _batch(seed=3, n=9, c=5)[1]])
    kwargs = {k: (torch.cat([v, v]) if torch.is_tensor(v) else v) for k, v in kwargs.items()}
    for dtype in (torch.float32, torch.float64):
        z_in = logits.to(dtype)
        dropped, loss_a, _ = _step(z_in, labels, name, params, **kwargs)
        kept, loss_b, _ = _step(z_in, labels, name, params, keep_result=True, **kwargs)
        assert taken[-2:] == [True, False]  # both paths were exercised
        assert torch.equal(dropped, kept) and torch.equal(loss_a, loss_b)
        z = z_in.clone().requires_grad_(True)
        loss = weighted_cross_entropy(z, labels, name, **params, **kwargs).loss.sum()
        first, = torch.autograd.grad(loss, z, retain_graph=True)
        second, = torch.autograd.grad(loss, z)
        assert taken[-2:] == [False, True]  # a kept graph is never overwritten
        assert torch.equal(first, kept) and torch.equal(second, kept)


def test_grad_out_scales_the_gradient_exactly():
    logits, labels = _batch(seed=5)
    unit, _, _ = _step(logits, labels, "imae", {}, reduction="none")
    z = logits.clone().requires_grad_(True)
    g = torch.linspace(0.5, 2.0, len(labels))
    weighted_cross_entropy(z, labels, "imae", reduction="none").loss.backward(g)
    torch.testing.assert_close(z.grad, unit * g[:, None], rtol=1e-6, atol=1e-12)
    z.grad = None
    (3.0 * weighted_cross_entropy(z, labels, "imae").loss).backward()
    torch.testing.assert_close(z.grad, 3.0 * unit, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name,params", [("imae", {"T": 8.0}), ("cce", {}), ("normal", {"psi": 0.5, "beta": 4.0})])
def test_autocast_bf16_computes_in_float32(name, params):
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 6)
    x, labels = torch.randn(12, 8), torch.randint(0, 6, (12,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = lin(x) * 50.0
        assert logits.dtype == torch.bfloat16
        out = weighted_cross_entropy(logits, labels, name, **params)
    assert out.loss.dtype == torch.float32
    out.loss.backward()
    assert torch.isfinite(lin.weight.grad).all()
    value, _, _, _ = _reference(logits.detach().float(), labels, name, params, "sum")
    assert float(out.loss.detach()) == pytest.approx(value, rel=1e-5)


def test_result_contract_shapes_and_detachment():
    logits, labels = _batch(seed=7, n=6, c=4)
    z = logits.clone().requires_grad_(True)
    out = weighted_cross_entropy(z, labels, "dm", lam=0.5, beta=8.0)
    w, lp = out.weights, out.log_probs
    for t in (w.p, w.w, w.log_w, w.normalized, w.log_z.expand(6), lp.log_p, lp.log1m_p, lp.lse, lp.has_competitor,
              out.coefficients, out.coefficients_getter()()):
        assert t.shape == (6,) and not t.requires_grad
    assert lp.other.shape == (6, 4) and lp.logits.shape == (6, 4) and not lp.logits.requires_grad
    ref = stable_log_probs(logits, labels)
    for key in ("log_p", "log1m_p", "lse", "other", "has_competitor", "logits"):
        assert torch.equal(getattr(lp, key), getattr(ref, key)), key
    torch.testing.assert_close(lp.log_probs, torch.log_softmax(logits, dim=1))


def test_label_range_errors():
    logits, labels = _batch(n=4, c=3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        weighted_cross_entropy(logits, torch.tensor([0, 1, 3, 2]), "imae")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        weighted_cross_entropy(logits.requires_grad_(), torch.tensor([0, -1, 1, 2]), "cce")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        weighted_cross_entropy(logits.double(), torch.tensor([0, 1, 2, 7]), "dm", lam=0.5, beta=8.0, valid=torch.ones(4, dtype=torch.bool))
    grads = [_step(logits.detach(), y, "imae", {})[0] for y in (labels, labels.int())]  # int32 labels work as before
    assert torch.equal(*grads)


def test_labels_edited_in_place_before_backward_raise():
    # the backward reads the labels it saved (no copy): like F.cross_entropy's target, an in-place
    # edit in between is torch's version-counter error, never a silently wrong gradient
    logits, labels = _batch(n=5, c=4)
    z = logits.clone().requires_grad_(True)
    loss = weighted_cross_entropy(z, labels, "imae").loss
    labels[0] = (labels[0] + 1) % 4
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
