"""The noisy-label literature's baselines (docs/methods.md §6): SCE, NCE + RCE, hard / soft
bootstrapping, label smoothing. Gradient tests against independent float64 autograd references,
and each loss's per-example weight ``w_i`` against the L1 norm of its measured logit gradient."""

import pytest
import torch
import torch.nn.functional as F

from reid.losses import (ID_LOSSES, HardBootstrappingLoss, LabelSmoothingLoss, NCERCELoss, SoftBootstrappingLoss,
                         SymmetricCrossEntropyLoss, example_weights_of)
from reid.weighting import get_scheme


def _batch(n=16, c=7, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).requires_grad_()
    y = torch.randint(0, c, (n,), generator=g)
    return z, y


def _per_example_grad_l1(loss_of_batch, z, y):
    """N * ||d mean(L) / d z_i||_1: the example's weight measured by autograd."""
    zz = z.detach().clone().requires_grad_()
    loss_of_batch(zz, y).backward()
    return zz.grad.abs().sum(dim=1) * z.shape[0], zz.grad


def _sce_reference(z, y, a, b, A):
    log_p = F.log_softmax(z, dim=1)
    p = log_p.exp()
    q = F.one_hot(y, z.shape[1]).to(z.dtype)
    rce = -(p * torch.where(q > 0, torch.zeros_like(p), torch.full_like(p, A))).sum(dim=1)  # log 0 := A
    return (a * F.nll_loss(log_p, y, reduction="none") + b * rce).mean()


@pytest.mark.parametrize("a,b,A", [(0.1, 1.0, -4.0), (6.0, 0.1, -4.0), (1.0, 1.0, -9.21)])
@pytest.mark.parametrize("scale", [0.5, 3.0, 30.0])
def test_sce_value_and_gradient_equal_the_direct_formula(a, b, A, scale):
    z, y = _batch(scale=scale)
    loss = SymmetricCrossEntropyLoss(a=a, b=b, A=A)
    value = loss(z, y)
    value.backward()
    z2 = z.detach().clone().requires_grad_()
    ref = _sce_reference(z2, y, a, b, A)
    ref.backward()
    assert torch.allclose(value.detach(), ref.detach(), rtol=1e-10, atol=1e-12)
    assert torch.allclose(z.grad, z2.grad, rtol=1e-9, atol=1e-14)


def test_sce_scheme_is_the_l1_norm_of_its_gradient_and_its_mode():
    z, y = _batch(n=64, c=5, scale=2.0, seed=3)
    measured, _ = _per_example_grad_l1(lambda zz, yy: _sce_reference(zz, yy, 0.1, 1.0, -4.0), z, y)
    p = F.softmax(z.detach(), 1).gather(1, y[:, None]).squeeze(1)
    scheme = get_scheme("sce")
    assert torch.allclose(scheme.w(p), measured, rtol=1e-9)
    grid = torch.linspace(0, 1, 100001, dtype=torch.float64)
    assert abs(float(grid[scheme.w(grid).argmax()]) - scheme.mode()) < 1e-4
    assert scheme.mode() == pytest.approx((4.0 - 0.1) / 8.0)


def test_sce_dn_divides_by_the_batch_sum_of_weights():
    z, y = _batch(seed=5)
    loss = SymmetricCrossEntropyLoss(normalize="sum")
    loss(z, y).backward()
    _, grad_mean = _per_example_grad_l1(lambda zz, yy: _sce_reference(zz, yy, 0.1, 1.0, -4.0), z, y)
    p = F.softmax(z.detach(), 1).gather(1, y[:, None]).squeeze(1)
    w = get_scheme("sce").w(p)
    # mean gradient is sum_i g_i / N; DN is sum_i g_i / sum_j w_j
    assert torch.allclose(z.grad, grad_mean * z.shape[0] / w.sum(), rtol=1e-9)


def _nce_rce_reference(z, y, a, b, A):
    log_p = F.log_softmax(z, dim=1)
    nce = log_p.gather(1, y[:, None]).squeeze(1) / log_p.sum(dim=1)
    rce = -A * (1.0 - log_p.exp().gather(1, y[:, None]).squeeze(1))
    return (a * nce + b * rce).mean()


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (10.0, 0.1), (1.0, 0.0)])
def test_nce_rce_value_gradient_and_weight(a, b):
    z, y = _batch(n=32, c=10, scale=4.0, seed=1)
    loss = NCERCELoss(a=a, b=b)
    value = loss(z, y)
    value.backward()
    measured, grad = _per_example_grad_l1(lambda zz, yy: _nce_rce_reference(zz, yy, a, b, -4.0), z, y)
    assert torch.allclose(value.detach(), _nce_rce_reference(z.detach(), y, a, b, -4.0), rtol=1e-12)
    assert torch.allclose(z.grad, grad, rtol=1e-9, atol=1e-15)
    assert torch.allclose(loss.last_stats["w"], measured, rtol=1e-8)
    p, w = example_weights_of(loss, z, y)
    assert torch.allclose(w, measured, rtol=1e-8)
    assert loss.weight_scheme is None


def test_nce_gradient_leaves_cce_direction():
    z, y = _batch(n=32, c=10, scale=2.0, seed=2)
    _, grad = _per_example_grad_l1(lambda zz, yy: _nce_rce_reference(zz, yy, 1.0, 0.0, -4.0), z, y)
    d = F.softmax(z.detach(), 1) - F.one_hot(y, 10).to(z.dtype)
    cos = F.cosine_similarity(grad, d, dim=1)
    assert float(cos.min()) < 0.999  # NCE is not a scheme: some examples' gradients turn away from p - q


@pytest.mark.parametrize("beta", [0.8, 0.5, 1.0])
def test_hard_bootstrapping_gradient_is_p_minus_mixed_target(beta):
    z, y = _batch(n=24, c=6, scale=3.0, seed=4)
    loss = HardBootstrappingLoss(beta=beta)
    loss(z, y).backward()
    p = F.softmax(z.detach(), 1)
    target = beta * F.one_hot(y, 6).to(z.dtype) + (1 - beta) * F.one_hot(p.argmax(1), 6).to(z.dtype)
    expected = (p - target) / z.shape[0]
    assert torch.allclose(z.grad, expected, rtol=1e-10, atol=1e-15)
    assert torch.allclose(loss.last_stats["w"], (p - target).abs().sum(1), rtol=1e-10)
    value = -(target * F.log_softmax(z.detach(), 1)).sum(1).mean()
    assert torch.allclose(loss(z, y).detach(), value, rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: LabelSmoothingLoss(eps=0.1), lambda: SoftBootstrappingLoss(0.95, True),
                                  lambda: SoftBootstrappingLoss(0.95, False), lambda: HardBootstrappingLoss(0.8)])
def test_example_weights_equal_the_measured_gradient_norm(make):
    loss = make()
    z, y = _batch(n=20, c=8, scale=2.5, seed=6)
    measured, _ = _per_example_grad_l1(lambda zz, yy: loss(zz, yy), z, y)
    p, w = example_weights_of(loss, z, y)
    assert torch.allclose(w.double(), measured, rtol=1e-8)
    assert torch.allclose(p.double(), F.softmax(z.detach(), 1).gather(1, y[:, None]).squeeze(1), rtol=1e-12)


def test_identity_loss_builders_and_their_guards():
    for name in ("nce_rce", "label_smoothing", "soft_bootstrapping", "hard_bootstrapping"):
        loss = ID_LOSSES.get(name)(num_classes=4, scheme="cce", normalize="sum", label_smoothing=0.0)
        z, y = _batch(n=8, c=4)
        assert torch.isfinite(loss(z, y))
        with pytest.raises(ValueError, match="loss.id.scheme"):
            ID_LOSSES.get(name)(num_classes=4, scheme="imae", normalize="sum", label_smoothing=0.0)
    soft = ID_LOSSES.get("soft_bootstrapping")(num_classes=4, scheme="cce", normalize="sum", label_smoothing=0.0)
    assert soft.detach_target  # METHODS.md §6: p detached in the target
    with pytest.raises(ValueError, match="A=1"):
        NCERCELoss(A=1.0)
    with pytest.raises(ValueError, match="must be < 0"):
        get_scheme("sce", A=0.5)


def test_scheme_losses_example_weights_are_the_scheme():
    loss = SymmetricCrossEntropyLoss()
    z, y = _batch(seed=9)
    p, w = example_weights_of(loss, z, y)
    assert torch.allclose(w, get_scheme("sce").w(p), rtol=1e-10)


@pytest.mark.parametrize("name,params", [("nce_rce", {"a": 1.0, "b": 1.0}), ("hard_bootstrapping", {"beta": 0.8}),
                                         ("soft_bootstrapping", {}), ("label_smoothing", {"eps": 0.1})])
def test_training_config_builds_the_baselines(name, params):
    """``loss.id.name=<baseline>`` in a training config builds through the engine; a scheme with
    it is refused with the config key named."""
    import json

    from reid.engine.builders import build_id_loss
    from reid.engine.config import load_config
    from reid.engine.config_files import ConfigError

    cfg = load_config(None, [f"loss.id.name={name}", "loss.id.scheme=cce", f"loss.id.params={json.dumps(params)}"])
    loss = build_id_loss(cfg.loss.id, num_classes=5)
    z, y = _batch(n=6, c=5)
    assert torch.isfinite(loss(z.float(), y))
    bad = load_config(None, [f"loss.id.name={name}", "loss.id.scheme=imae"])
    with pytest.raises(ConfigError, match="loss.id"):
        build_id_loss(bad.loss.id, num_classes=5)


def test_training_config_runs_sce_as_a_scheme():
    from reid.engine.builders import build_id_loss
    from reid.engine.config import load_config

    cfg = load_config(None, ["loss.id.scheme=sce", "loss.id.normalize=n", 'loss.id.params={"a": 0.1, "b": 1.0}'])
    loss = build_id_loss(cfg.loss.id, num_classes=5)
    assert loss.weight_scheme.name == "sce" and loss.normalize == "n"
