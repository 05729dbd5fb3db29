"""Classification losses: WeightedCrossEntropyLoss, ProSelfLC and baselines, classifier heads."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import miners, reducers

from reid.losses import (ConfidencePenaltyLoss, CosineClassifierLoss, LabelSmoothingLoss, LinearClassifierLoss,
                         ProSelfLCLoss, SoftBootstrappingLoss, WeightedCrossEntropyLoss, build_loss)
from reid.weighting import get_scheme


def _batch(n=10, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64) * 2, torch.randint(0, c, (n,), generator=g)


def test_weighted_ce_cce_n_gradient_equals_cross_entropy():
    logits, labels = _batch()
    z1 = logits.clone().requires_grad_(True)
    WeightedCrossEntropyLoss(scheme="cce", normalize="n")(z1, labels).backward()
    z2 = logits.clone().requires_grad_(True)
    F.cross_entropy(z2, labels).backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-12, atol=1e-15)


def test_weighted_ce_stats_and_coefficients_helper():
    logits, labels = _batch()
    loss_fn = WeightedCrossEntropyLoss(scheme="dm", lam=0.5, beta=8.0)
    loss = loss_fn(logits, labels)
    assert loss.ndim == 0
    st = loss_fn.last_stats
    p = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(st["p"], p)
    torch.testing.assert_close(st["w"], get_scheme("dm", lam=0.5, beta=8.0).w(p))
    assert st["p_mean"] == pytest.approx(float(p.mean()))
    assert st["w_var"] == pytest.approx(float(st["w"].var(unbiased=False)))
    coef = loss_fn.coefficients(logits, labels)
    torch.testing.assert_close(coef["coefficients"], st["coefficients"])
    torch.testing.assert_close(coef["normalized_w"].sum(), torch.tensor(1.0, dtype=torch.float64))
    per_ex = WeightedCrossEntropyLoss(scheme="dm", lam=0.5, beta=8.0, reduction="none")(logits, labels)
    assert per_ex.shape == (10,)
    torch.testing.assert_close(per_ex.sum(), loss)


def test_weighted_ce_bad_config_errors():
    with pytest.raises(ValueError, match="unknown weighting scheme 'imea'"):
        WeightedCrossEntropyLoss(scheme="imea")
    with pytest.raises(ValueError, match="unknown parameter"):
        WeightedCrossEntropyLoss(scheme="imae", beta=3.0)
    with pytest.raises(ValueError, match="normalize='avg'"):
        WeightedCrossEntropyLoss(normalize="avg")
    with pytest.raises(ValueError, match="unknown loss 'foo'.*weighted_ce"):
        build_loss("foo")
    assert isinstance(build_loss("weighted_ce", scheme="imae", T=4.0), WeightedCrossEntropyLoss)


# ---------------------------------------------------------------- ProSelfLC and baselines

def test_proselflc_global_trust_schedule():
    loss = ProSelfLCLoss(num_classes=5, B=10.0, transit=0.5)
    loss.set_progress(50, 100)
    assert loss.global_trust() == pytest.approx(0.5)
    loss.set_progress(100, 100)
    assert loss.global_trust() == pytest.approx(1 / (1 + math.exp(-5)))
    loss.set_progress(0, 100)
    assert loss.global_trust() == pytest.approx(1 / (1 + math.exp(5)))
    with pytest.raises(ValueError, match="total_iterations > 0"):
        loss.set_progress(1, 0)


def test_proselflc_detached_gradient_is_scaled_cce():
    logits, labels = _batch()
    loss_fn = ProSelfLCLoss(num_classes=5)
    loss_fn.set_progress(80, 100)
    z = logits.clone().requires_grad_(True)
    loss = loss_fn(z, labels)
    loss.backward()
    p = logits.softmax(1)
    H = -(p * p.log()).sum(1)
    eps = loss_fn.global_trust() * (1 - H / math.log(5))
    q = F.one_hot(labels, 5).double()
    target = (1 - eps[:, None]) * q + eps[:, None] * p
    torch.testing.assert_close(loss.detach(), -(target * p.log()).sum(1).mean())
    torch.testing.assert_close(z.grad, (1 - eps)[:, None] * (p - q) / 10)
    torch.testing.assert_close(loss_fn.last_stats["eps"], eps)


def _proselflc_released(z, labels, g, n_classes):
    """The released "relative entropy" mode, written out: eps without gradient, gradient through
    p inside the target q~ = (1 - eps) q + eps p."""
    log_p = F.log_softmax(z, dim=1)
    p = log_p.exp()
    with torch.no_grad():
        eps = g * (1 - (-(p * log_p).sum(1)) / math.log(n_classes))
    target = (1 - eps[:, None]) * F.one_hot(labels, n_classes) + eps[:, None] * p
    return -(target * log_p).sum(1).mean()


def test_proselflc_non_detached_gradient_flows_through_p_only():
    # issue 10, fix 1: the gradient once also flowed through eps (the entropy): ~130 % off.
    logits, labels = _batch(n=16, c=7)
    loss_fn = ProSelfLCLoss(num_classes=7, detach_target=False)
    loss_fn.set_progress(70, 100)
    z = logits.clone().requires_grad_(True)
    loss = loss_fn(z, labels)
    loss.backward()
    z_ref = logits.clone().requires_grad_(True)
    ref = _proselflc_released(z_ref, labels, loss_fn.global_trust(), 7)
    ref.backward()
    torch.testing.assert_close(loss.detach(), ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-10, atol=1e-12)
    # the logged weight is the L1 norm of each example's gradient
    torch.testing.assert_close(loss_fn.last_stats["w"], (z.grad * 16).abs().sum(1), rtol=1e-8, atol=1e-10)
    # and it is not the detached mode's gradient
    det = ProSelfLCLoss(num_classes=7)
    det.set_progress(70, 100)
    z_det = logits.clone().requires_grad_(True)
    det(z_det, labels).backward()
    assert (z_det.grad - z.grad).abs().max() > 1e-4


def test_proselflc_with_scheme_uses_core():
    logits, labels = _batch()
    loss_fn = ProSelfLCLoss(num_classes=5, scheme="imae", T=8.0)
    loss_fn.set_progress(60, 100)
    z = logits.clone().requires_grad_(True)
    loss_fn(z, labels).backward()
    eps = loss_fn.last_stats["eps"]
    p = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    w = get_scheme("imae", T=8.0).w(p)
    torch.testing.assert_close(z.grad.abs().sum(1), (1 - eps) * w / w.sum())
    with pytest.raises(ValueError, match="needs detach_target=True"):
        ProSelfLCLoss(num_classes=5, scheme="imae", detach_target=False)


@pytest.mark.parametrize("make", [lambda: LabelSmoothingLoss(0.1), lambda: ConfidencePenaltyLoss(0.3),
                                  lambda: SoftBootstrappingLoss(0.8), lambda: SoftBootstrappingLoss(0.8, True)])
def test_baselines_gradcheck_and_logged_weight_is_gradient_l1(make):
    logits, labels = _batch(n=4, c=3)
    loss_fn = make()
    z = logits.clone().requires_grad_(True)
    if not getattr(loss_fn, "detach_target", False):  # a detached target is not the value's derivative
        assert torch.autograd.gradcheck(lambda x: loss_fn(x, labels), (z,))
    loss = loss_fn(z, labels)
    loss.backward()
    w = loss_fn.last_stats["w"]
    if w is not None:  # closed-form weight = N * L1 norm of the per-example gradient of the mean
        torch.testing.assert_close(w, (z.grad * 4).abs().sum(1), rtol=1e-8, atol=1e-10)


def test_label_smoothing_matches_torch():
    logits, labels = _batch()
    torch.testing.assert_close(LabelSmoothingLoss(0.2)(logits, labels), F.cross_entropy(logits, labels, label_smoothing=0.2))


# ---------------------------------------------------------------- classifier heads (PML)

@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_heads_gradient_matches_core_and_reducers(head):
    torch.manual_seed(0)
    emb = torch.randn(12, 6, dtype=torch.float64)
    labels = torch.arange(4).repeat(3)
    kw = dict(scheme="dm", lam=0.5, beta=8.0)
    loss_fn = (LinearClassifierLoss(6, 4, **kw) if head == "linear" else CosineClassifierLoss(6, 4, scale=16.0, margin=0.1, **kw)).double()
    e = emb.clone().requires_grad_(True)
    loss = loss_fn(e, labels, indices_tuple=miners.MultiSimilarityMiner()(emb, labels))  # miner ignored
    loss.backward()
    # reference: same logits through WeightedCrossEntropyLoss (the core), no PML in between
    e2 = emb.clone().requires_grad_(True)
    ref = WeightedCrossEntropyLoss(**kw)(loss_fn.get_logits(e2, labels), labels)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(e.grad, e2.grad)
    assert loss_fn.last_stats["p"].shape == (12,)
    # SumReducer sees the N-scaled per-example terms
    loss_fn.reducer = reducers.SumReducer()
    torch.testing.assert_close(loss_fn(emb, labels), 12 * ref.detach())


def test_cosine_head_bounds_logits_and_margin():
    torch.manual_seed(0)
    emb = torch.randn(8, 4) * 1e4
    labels = torch.arange(4).repeat(2)
    head = CosineClassifierLoss(4, 4, scale=30.0, margin=0.2, scheme="imae")
    loss = head(emb, labels)
    assert torch.isfinite(loss)
    logits = head.get_logits(emb, labels)
    assert logits.abs().max() <= 30.0 * 1.2 + 1e-4
    no_margin = CosineClassifierLoss(4, 4, scale=30.0, scheme="imae")
    no_margin.W.data.copy_(head.W.data)
    diff = no_margin.get_logits(emb, labels) - logits
    torch.testing.assert_close(diff, 6.0 * F.one_hot(labels, 4).float())


def test_linear_head_finite_with_huge_logits_and_rejects_ref_emb():
    head = LinearClassifierLoss(4, 3, scheme="imae")
    head.W.data.mul_(1e4)
    emb = torch.randn(6, 4, requires_grad=True)
    loss = head(emb * 10, torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all() and torch.isfinite(head.W.grad).all()
    assert head.last_stats["logit_abs_max"] > 1e3
    with pytest.raises(ValueError):
        head(emb, torch.tensor([0, 1, 2, 0, 1, 2]), ref_emb=emb)


@pytest.mark.parametrize("make", [lambda: ProSelfLCLoss(num_classes=5), lambda: LabelSmoothingLoss(0.1),
                                  lambda: ConfidencePenaltyLoss(0.3), lambda: SoftBootstrappingLoss(0.8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_label_correction_losses_accept_low_precision_logits(make, dtype):
    # Regression: float64-only tests once hid an infinite recursion on float32 logits.
    logits64, labels = _batch()
    loss_fn = make()
    z = logits64.to(dtype).requires_grad_(True)
    loss = loss_fn(z, labels)
    loss.backward()
    assert loss.dtype == torch.float32
    ref = make()(logits64.to(dtype).double(), labels)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(z.grad.float()).all()


# ---------------------------------------------------------------- registries used by the config

def test_id_losses_share_one_signature_and_expose_their_weight_scheme():
    from reid.losses import ID_LOSSES

    assert set(ID_LOSSES) == {"weighted_ce", "proselflc", "nce_rce", "label_smoothing", "soft_bootstrapping",
                              "hard_bootstrapping"}
    weighted = ID_LOSSES["weighted_ce"](5, "imae", "n", 0.1, T=4.0)
    assert isinstance(weighted, WeightedCrossEntropyLoss)
    assert (weighted.normalize, weighted.label_smoothing, repr(weighted.weight_scheme)) == ("n", 0.1, "imae(T=4)")
    plain = ID_LOSSES["proselflc"](5, "cce", "sum", 0.0, B=12.0)
    assert isinstance(plain, ProSelfLCLoss) and plain.scheme is None and plain.B == 12.0
    assert plain.weight_scheme.name == "cce"
    composed = ID_LOSSES["proselflc"](5, "dm", "n", 0.0, lam=0.5, beta=8.0)
    assert composed.weight_scheme is composed.scheme and composed.normalize == "n"
    with pytest.raises(ValueError, match="label_smoothing=0.1 must be 0"):
        ID_LOSSES["proselflc"](5, "cce", "sum", 0.1)
    with pytest.raises(ValueError, match=r"unknown identity loss 'prosel' \(choices: weighted_ce, proselflc, nce_rce"):
        ID_LOSSES.check("prosel")


def test_proselflc_built_by_the_registry_equals_the_direct_build():
    """scheme='cce' is ProSelfLC itself (what the engine built for scheme: proselflc)."""
    from reid.losses import ID_LOSSES

    logits, labels = _batch()
    direct, via = build_loss("proselflc", num_classes=5, normalize="sum"), ID_LOSSES["proselflc"](5, "cce", "sum", 0.0)
    for loss_fn in (direct, via):
        loss_fn.set_progress(40, 100)
    assert torch.equal(direct(logits, labels), via(logits, labels))


def test_classifier_heads_compute_logits_with_the_model_heads():
    from reid.models.heads import CosineClassifier, LinearClassifier

    torch.manual_seed(0)
    cos = CosineClassifierLoss(6, 4, scale=8.0)
    lin = LinearClassifierLoss(6, 4, bias=True)
    assert isinstance(cos.classifier, CosineClassifier) and isinstance(lin.classifier, LinearClassifier)
    assert cos.W is cos.classifier.weight and lin.b is lin.classifier.bias and cos.scale == 8.0
    assert sorted(n for n, _ in lin.named_parameters()) == ["classifier.bias", "classifier.weight"]
    emb = torch.randn(3, 6)
    labels = torch.tensor([0, 1, 2])
    assert torch.equal(cos.get_logits(emb, labels), cos.classifier(emb))
    assert torch.equal(lin.get_logits(emb, labels), F.linear(emb, lin.W, lin.b))
    torch.manual_seed(1)
    w = torch.empty(4, 6).normal_(std=1 / math.sqrt(6))  # the heads' init: N(0, 1 / embedding_size)
    torch.manual_seed(1)
    assert torch.equal(CosineClassifierLoss(6, 4).W.data, w)
