"""Gradient rescaling (docs/methods.md §1): the logit gradient of example i must be
w_i / (2 (1 - p_i)) * (p_i - q_i) / Z, finite for any logits."""

import pytest
import torch
import torch.nn.functional as F

from reid.weighting import example_weights, get_scheme, rescale_coefficients, weighted_cross_entropy

SCHEMES = [
    ("cce", {}), ("mae", {}), ("mse", {}), ("gce", {"q": 0.7}), ("imae", {"T": 8.0}),
    ("dm", {"lam": 0.5, "beta": 8.0}), ("exponential", {"beta": 2.0}), ("normal", {"psi": 0.4, "beta": 4.0}),
    ("beta", {"alpha": 2.0, "eta": 1.5}),
]
IDS = [s[0] for s in SCHEMES]


def _batch(n=12, c=7, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, c, (n,), generator=g)
    return logits, labels


def _grad(logits, labels, *args, **kwargs):
    z = logits.clone().requires_grad_(True)
    out = weighted_cross_entropy(z, labels, *args, **kwargs)
    out.loss.backward()
    return z.grad, out


@pytest.mark.parametrize("name,params", SCHEMES, ids=IDS)
@pytest.mark.parametrize("normalize", ["sum", "n"])
def test_l1_norm_is_normalised_weight_and_direction_is_cce(name, params, normalize):
    logits, labels = _batch()
    grad, out = _grad(logits, labels, name, normalize=normalize, **params)
    p = logits.softmax(1)
    p_true = p.gather(1, labels[:, None]).squeeze(1)
    w = get_scheme(name, **params).w(p_true)  # independent evaluation from p
    target = w / w.sum() if normalize == "sum" else w / len(w)
    torch.testing.assert_close(grad.abs().sum(1), target, rtol=1e-6, atol=1e-12)
    cce_dir = p - F.one_hot(labels, logits.shape[1])
    cce_unit = cce_dir / cce_dir.norm(dim=1, keepdim=True)
    torch.testing.assert_close(grad / grad.norm(dim=1, keepdim=True), cce_unit, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name,params", SCHEMES, ids=IDS)
def test_matches_gradient_set_by_hand(name, params):
    logits, labels = _batch(seed=1)
    p = logits.softmax(1)
    q = F.one_hot(labels, logits.shape[1]).double()
    p_true = (p * q).sum(1)
    w = get_scheme(name, **params).w(p_true)
    g = (w / (2 * (1 - p_true)))[:, None] * (p - q) / w.sum()  # the formula, naively
    z_ref = logits.clone().requires_grad_(True)
    z_ref.backward(g)
    grad, _ = _grad(logits, labels, name, **params)
    torch.testing.assert_close(grad, z_ref.grad, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("name,params", SCHEMES, ids=IDS)
def test_equals_autograd_of_surrogate_with_frozen_coefficients(name, params):
    # Weights are detached, so the numeric derivative of the *value* is not our gradient. The
    # meaningful check: sum_i c_i CE_i with c_i frozen at z0 is an ordinary differentiable
    # function (gradcheck it), and its autograd gradient at z0 equals our hand-set gradient.
    logits, labels = _batch(n=5, c=4, seed=2)
    p_true = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    c = rescale_coefficients(p_true, name, **params)

    def surrogate(z):
        return (c * F.cross_entropy(z, labels, reduction="none")).sum()

    z = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(surrogate, (z,))
    surrogate(z).backward()
    grad, out = _grad(logits, labels, name, **params)
    torch.testing.assert_close(grad, z.grad, rtol=1e-6, atol=1e-10)
    # reported value: the weighted CE with frozen coefficients
    torch.testing.assert_close(out.loss.detach(), surrogate(logits), rtol=1e-8, atol=1e-12)


def test_cce_with_n_normalisation_is_exactly_cross_entropy():
    logits, labels = _batch(n=9, c=5, seed=3)
    for eps in (0.0,):  # with smoothing the magnitude stays CCE's weight (see the smoothing tests)
        grad, out = _grad(logits, labels, "cce", normalize="n", label_smoothing=eps)
        z = logits.clone().requires_grad_(True)
        ref = F.cross_entropy(z, labels, label_smoothing=eps)
        ref.backward()
        torch.testing.assert_close(out.loss, ref.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, z.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,params", SCHEMES, ids=IDS)
@pytest.mark.parametrize("normalize", ["sum", "n"])
def test_label_smoothing_direction_toward_smoothed_target_magnitude_is_the_weight(name, params, normalize):
    # issue 10, fix 2: g_i = (w_i / Z) (p_i - q~_i) / ||p_i - q~_i||_1, naive reference
    logits, labels = _batch(n=6, c=5, seed=4, scale=1.0)
    eps = 0.1
    grad, out = _grad(logits, labels, name, normalize=normalize, label_smoothing=eps, **params)
    p = logits.softmax(1)
    q = F.one_hot(labels, 5).double()
    direction = p - ((1 - eps) * q + eps / 5)
    w = get_scheme(name, **params).w((p * q).sum(1))
    wz = w / w.sum() if normalize == "sum" else w / len(w)
    ref = (wz / direction.abs().sum(1))[:, None] * direction
    torch.testing.assert_close(grad, ref, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad.abs().sum(1), wz, rtol=1e-6, atol=1e-12)
    # value: the smoothed CE with the coefficients frozen
    ce_s = F.cross_entropy(logits, labels, label_smoothing=eps, reduction="none")
    torch.testing.assert_close(out.loss, (wz / direction.abs().sum(1) * ce_s).sum(), rtol=1e-8, atol=1e-12)


def test_label_smoothing_keeps_fitted_examples_to_their_weight_share():
    # the measurement: IMAE, eps = 0.1, 625 classes, 8 fitted examples of 64. With the
    # old composition (coefficient s_i / Z capped at 1/eps) they took 95 % of the batch's gradient.
    g = torch.Generator().manual_seed(0)
    n, c = 64, 625
    logits = torch.randn(n, c, generator=g, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=g)
    logits[:8, :] = 0.0
    logits[torch.arange(8), labels[:8]] = 30.0  # p ~ 1
    grad, out = _grad(logits, labels, "imae", label_smoothing=0.1)
    share = grad[:8].abs().sum() / grad.abs().sum()
    w = out.weights.w
    torch.testing.assert_close(share, w[:8].sum() / w.sum(), rtol=1e-6, atol=1e-12)
    assert float(share) < 0.2


EXTREME = torch.tensor([
    [1e4, 0.0, 0.0, 0.0],      # fitted, p -> 1
    [0.0, 1e4, 0.0, 0.0],      # badly wrong, p -> 0
    [-1e4, 1e4, -1e4, 3.0],    # huge magnitudes both signs
    [50.0, 0.0, -50.0, 0.0],   # p ~ 1 - 2e-22 (1 - p underflows in naive fp32/fp64)
    [0.0, 0.0, 0.0, 0.0],
])
EXTREME_LABELS = torch.tensor([0, 0, 1, 0, 2])


@pytest.mark.parametrize("name,params", SCHEMES, ids=IDS)
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("normalize", ["sum", "n"])
def test_finite_for_extreme_logits(name, params, eps, normalize):
    for rows in ([0, 1, 2, 3, 4], [0], [1], [0, 3]):
        grad, out = _grad(EXTREME[rows], EXTREME_LABELS[rows], name, normalize=normalize, label_smoothing=eps, **params)
        assert torch.isfinite(out.loss).all(), (rows, out.loss)
        assert torch.isfinite(grad).all(), (rows, grad)
        if eps == 0.0:  # L1 norm of each row = its normalised weight, exactly, even here
            torch.testing.assert_close(grad.abs().sum(1), out.weights.normalized, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,params", [("imae", {"T": 8.0}), ("dm", {"lam": 0.5, "beta": 8.0}), ("cce", {})])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_finite_and_close_under_autocast(name, params, dtype):
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    lin = torch.nn.Linear(8, 5)
    labels = torch.randint(0, 5, (16,))
    with torch.autocast("cpu", dtype=dtype):
        logits = lin(x) * 1e3  # large logits in low precision
        assert logits.dtype == dtype
        out = weighted_cross_entropy(logits, labels, name, **params)
    out.loss.backward()
    assert out.loss.dtype == torch.float32  # computed in float32 even under autocast
    assert torch.isfinite(out.loss) and torch.isfinite(lin.weight.grad).all()
    ref = weighted_cross_entropy(logits.detach().float(), labels, name, **params)
    torch.testing.assert_close(out.loss.detach(), ref.loss, rtol=1e-6, atol=1e-6)


def test_reduction_none_sums_to_scalar_and_valid_mask():
    logits, labels = _batch(n=6, c=4, seed=5)
    full = weighted_cross_entropy(logits, labels, "imae", reduction="none")
    total = weighted_cross_entropy(logits, labels, "imae")
    torch.testing.assert_close(full.loss.sum(), total.loss)
    valid = torch.tensor([True, False, True, True, False, True])
    grad, out = _grad(logits, labels, "imae", valid=valid)
    assert torch.all(grad[~valid] == 0)
    torch.testing.assert_close(out.weights.normalized[valid].sum(), torch.tensor(1.0, dtype=torch.float64))
    sub_grad, _ = _grad(logits[valid], labels[valid], "imae")
    torch.testing.assert_close(grad[valid], sub_grad)


def test_example_weights_and_errors():
    ew = example_weights(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), "imae")
    torch.testing.assert_close(ew.w, torch.tensor([1.0, 2.0**2 * 1.8472640247326626, 1.0], dtype=torch.float64)
                               .where(torch.tensor([True, False, True]), torch.exp(torch.tensor(2.0, dtype=torch.float64))))
    assert ew.normalized.sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"p_true must contain probabilities in \[0, 1\]"):
        example_weights(torch.tensor([1.2]), "cce")
    with pytest.raises(ValueError, match="normalize='mean'"):
        weighted_cross_entropy(*_batch(), "cce", normalize="mean")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 7\)"):
        weighted_cross_entropy(_batch()[0], torch.full((12,), 9), "cce")
