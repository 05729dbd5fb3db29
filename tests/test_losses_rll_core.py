"""Ranked List Loss through the weighting core (issue 10): anchor combinations (uniform = the
paper, released = the authors' code), any scheme replacing the paper's pair weights, PML's
signature as a drop-in. References are plain loops over anchors and pairs."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses

from reid.errors import UserError
from reid.losses import RankedListLoss
from reid.weighting import get_scheme


def _emb(n_ids=4, per_id=4, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_ids).repeat_interleave(per_id)
    centers = torch.randn(n_ids, dim, generator=g, dtype=torch.float64)
    return centers[labels] * 0.6 + torch.randn(len(labels), dim, generator=g, dtype=torch.float64), labels


def _rll_loop(emb, labels, alpha=1.2, m=0.4, Tn=10.0, Tp=0.0, anchors="uniform", weight=None):
    """``weight(kind, d)``: the unnormalised pair weight (default: the paper's exponentials)."""
    if weight is None:
        def weight(kind, d):
            return math.exp(Tn * (alpha - d)) if kind == "neg" else math.exp(Tp * (d - (alpha - m)))
    e = F.normalize(emb, dim=1)
    per_anchor = []  # (sum w h pos, sum w pos, sum w h neg, sum w neg)
    for i in range(len(e)):
        sp = swp = sn = swn = 0.0
        for j in range(len(e)):
            if j == i:
                continue
            d = torch.linalg.norm(e[i] - e[j])
            if labels[j] == labels[i] and d > alpha - m:
                w = weight("pos", d.item())
                sp, swp = sp + w * (d - (alpha - m)), swp + w
            elif labels[j] != labels[i] and d < alpha:
                w = weight("neg", d.item())
                sn, swn = sn + w * (alpha - d), swn + w
        per_anchor.append((sp, swp, sn, swn))
    if anchors == "uniform":
        total = sum(0.5 * (sp / swp if swp else 0.0) + 0.5 * (sn / swn if swn else 0.0)
                    for sp, swp, sn, swn in per_anchor)
        return total / len(e)
    # released: sum_ij w h / sum_ij w, for positives and negatives separately
    pos = sum(a[0] for a in per_anchor) / sum(a[1] for a in per_anchor)
    neg = sum(a[2] for a in per_anchor) / sum(a[3] for a in per_anchor)
    return 0.5 * pos + 0.5 * neg


@pytest.mark.parametrize("anchors", ["uniform", "released"])
@pytest.mark.parametrize("Tn,Tp", [(10.0, 0.0), (4.0, 2.0)])
def test_rll_anchor_weighting_matches_naive_loop(anchors, Tn, Tp):
    emb, labels = _emb()
    e1 = emb.clone().requires_grad_(True)
    loss = RankedListLoss(Tn=Tn, Tp=Tp, anchor_weighting=anchors)(e1, labels)
    loss.backward()
    e2 = emb.clone().requires_grad_(True)
    ref = _rll_loop(e2, labels, Tn=Tn, Tp=Tp, anchors=anchors)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-8, atol=1e-12)


def test_rll_released_differs_from_uniform_and_default_is_uniform():
    emb, labels = _emb(seed=3)
    uniform, released = (RankedListLoss(anchor_weighting=a)(emb, labels) for a in ("uniform", "released"))
    assert RankedListLoss()(emb, labels) == uniform
    assert abs(float(uniform - released)) > 1e-4
    with pytest.raises(UserError, match="anchor_weighting='mean'.*uniform, released"):
        RankedListLoss(anchor_weighting="mean")


def test_rll_exponential_scheme_on_pair_probabilities_reproduces_the_paper():
    # p_neg = d / alpha: exponential(beta = Tn alpha) gives exp(beta (1 - p)) = exp(Tn (alpha - d)).
    # One scheme acts on both pair kinds, so compare the negatives' part (imbalance = 1).
    emb, labels = _emb(seed=4)
    Tn, alpha = 10.0, 1.2
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    paper = RankedListLoss(Tn=Tn, imbalance=1.0)(e1, labels)
    paper.backward()
    via = RankedListLoss(imbalance=1.0, scheme=get_scheme("exponential", beta=Tn * alpha))(e2, labels)
    via.backward()
    torch.testing.assert_close(via, paper, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(e2.grad, e1.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name,params", [("imae", {"T": 8.0}), ("cce", {}), ("dm", {"lam": 0.5, "beta": 4.0})])
def test_rll_any_scheme_replaces_the_pair_weights(name, params):
    emb, labels = _emb(seed=5)
    alpha, m = 1.2, 0.4
    b = alpha - m
    scheme = get_scheme(name, **params)

    def weight(kind, d):
        p = d / alpha if kind == "neg" else min(max(1 - (d - b) / (2 - b), 0.0), 1.0)
        return float(scheme.w(torch.tensor(p, dtype=torch.float64)))

    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    loss = RankedListLoss(scheme=name, **params)(e1, labels)
    loss.backward()
    ref = _rll_loop(e2, labels, weight=weight)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-8, atol=1e-12)


def test_rll_accepts_pml_signature_positionally_and_by_name():
    emb, labels = _emb(seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PML warns for Tn > 5
        theirs = pml_losses.RankedListLoss(0.4, 10.0, 0.3, 1.3, 1.0)(emb, labels)
        theirs_kw = pml_losses.RankedListLoss(margin=0.5, Tn=4.0)(emb, labels)  # alpha=None -> 1 + m/2
    ours = RankedListLoss(0.4, 10.0, 0.3, 1.3, 1.0)
    assert (ours.margin, ours.Tn, ours.imbalance, ours.alpha, ours.Tp) == (0.4, 10.0, 0.3, 1.3, 1.0)
    torch.testing.assert_close(ours(emb, labels), theirs, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(RankedListLoss(margin=0.5, Tn=4.0)(emb, labels), theirs_kw, rtol=1e-3, atol=1e-5)
    assert RankedListLoss(margin=0.5).alpha == 1.25 and RankedListLoss().alpha == 1.2
    assert RankedListLoss(balance=0.3).imbalance == 0.3
    with pytest.raises(UserError, match="not both"):
        RankedListLoss(imbalance=0.3, balance=0.3)
    with pytest.raises(UserError, match="need scheme"):
        RankedListLoss(T=8.0)


# ---------------------------------------------------------------- ICE: per-query normalisation

def test_ice_per_query_normalisation_matches_naive_loop():
    from reid.losses import InstanceCrossEntropyLoss
    emb, labels = _emb(n_ids=3, per_id=3, dim=5, seed=7)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])  # anchors with 2 and 3 positives, and 1
    scheme, t = get_scheme("imae", T=8.0), 0.5
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    InstanceCrossEntropyLoss(temperature=t, scheme="imae", normalize_over="query")(e1, labels).backward()
    # naive: each (a, k) pair's DM gradient with weight w_k / (Q sum_{k' in pos(a)} w_k')
    en = F.normalize(e2, dim=1)
    s = en @ en.T / t
    terms = []
    for a in range(len(labels)):
        pos = [k for k in range(len(labels)) if k != a and labels[k] == labels[a]]
        neg = [k for k in range(len(labels)) if labels[k] != labels[a]]
        ws, ces = [], []
        for k in pos:
            row = s[a, [k] + neg]
            p = row.softmax(0)[0]
            ws.append(float(scheme.w(p.detach())))
            ces.append((-row.log_softmax(0)[0], p.detach()))
        for w, (ce, p) in zip(ws, ces):
            c = (w / sum(ws)) / (2 * (1 - p))  # DM coefficient of CE, frozen
            terms.append(c * ce / len(labels))
    sum(terms).backward()
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-8, atol=1e-12)
    batch = InstanceCrossEntropyLoss(temperature=t, scheme="imae")(emb, labels)
    query = InstanceCrossEntropyLoss(temperature=t, scheme="imae", normalize_over="query")(emb, labels)
    assert abs(float(batch - query)) > 1e-6
