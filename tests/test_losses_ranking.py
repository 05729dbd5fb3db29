"""Ranking losses: Ranked List Loss, instance cross entropy, batch-hard triplet.

Reference implementations here are plain Python loops over anchors and pairs."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners, reducers

from reid.losses import BatchHardTripletLoss, CrossBatchMemory, InstanceCrossEntropyLoss, RankedListLoss
from reid.losses.ranked_list import ranked_list_terms
from reid.weighting import get_scheme


def _emb(n_ids=4, per_id=4, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_ids).repeat_interleave(per_id)
    centers = torch.randn(n_ids, dim, generator=g, dtype=torch.float64)
    emb = centers[labels] * 0.6 + torch.randn(len(labels), dim, generator=g, dtype=torch.float64)
    return emb, labels


# ---------------------------------------------------------------- Ranked List Loss

def _rll_loop(emb, labels, alpha=1.2, m=0.4, Tn=10.0, Tp=0.0):
    e = F.normalize(emb, dim=1)
    total = 0.0
    for i in range(len(e)):
        pos, neg = [], []
        for j in range(len(e)):
            if j == i:
                continue
            d = torch.linalg.norm(e[i] - e[j])
            if labels[j] == labels[i] and d > alpha - m:
                pos.append((d, math.exp(Tp * (d.item() - (alpha - m)))))
            elif labels[j] != labels[i] and d < alpha:
                neg.append((d, math.exp(Tn * (alpha - d.item()))))
        lp = sum(w * (d - (alpha - m)) for d, w in pos) / sum(w for _, w in pos) if pos else 0.0
        ln = sum(w * (alpha - d) for d, w in neg) / sum(w for _, w in neg) if neg else 0.0
        total = total + 0.5 * lp + 0.5 * ln
    return total / len(e)


@pytest.mark.parametrize("Tn,Tp", [(10.0, 0.0), (4.0, 2.0)])
def test_rll_forward_and_backward_match_naive_loop(Tn, Tp):
    emb, labels = _emb()
    e1 = emb.clone().requires_grad_(True)
    loss = RankedListLoss(Tn=Tn, Tp=Tp)(e1, labels)
    loss.backward()
    e2 = emb.clone().requires_grad_(True)
    ref = _rll_loop(e2, labels, Tn=Tn, Tp=Tp)
    ref.backward()
    assert loss.item() > 0
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-8, atol=1e-12)


def test_rll_gradcheck_with_frozen_weights():
    # Our weights are detached, so the value's numeric derivative is not our gradient. Gradcheck
    # the RLL with weights frozen at the input e0 (an ordinary function), then check that the
    # loss's gradient at e0 equals that function's gradient.
    emb, labels = _emb(n_ids=3, per_id=3, dim=4, seed=1)
    pos = (labels[:, None] == labels[None]) & ~torch.eye(9, dtype=torch.bool)
    neg = labels[:, None] != labels[None]
    d0 = torch.cdist(F.normalize(emb, dim=1), F.normalize(emb, dim=1))

    def frozen(e):
        en = F.normalize(e, dim=1)
        d = (en[:, None] - en[None]).pow(2).sum(-1).clamp_min(1e-30).sqrt()
        return ranked_list_terms(d, pos, neg, 1.2, 0.4, 10.0, 1.0, 0.5, weight_dist=d0)[0].mean()

    e = emb.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(frozen, (e,))
    g_frozen = torch.autograd.grad(frozen(e), e)[0]
    g_ours = torch.autograd.grad(RankedListLoss(Tn=10.0, Tp=1.0)(e, labels), e)[0]
    torch.testing.assert_close(g_ours, g_frozen, rtol=1e-7, atol=1e-10)


def test_rll_value_equals_pml_but_gradient_differs_because_pml_does_not_detach():
    emb, labels = _emb(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PML warns for Tn > 5
        pml = pml_losses.RankedListLoss(margin=0.4, Tn=10.0, imbalance=0.5, alpha=1.2, Tp=0.0)
        pml_flat = pml_losses.RankedListLoss(margin=0.4, Tn=0.0, imbalance=0.5, alpha=1.2, Tp=0.0)
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    ours, theirs = RankedListLoss(Tn=10.0)(e1, labels), pml(e2, labels)
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-5)  # PML adds 1e-5 per entry to the normaliser
    ours.backward()
    theirs.backward()
    assert (e1.grad - e2.grad).abs().max() > 1e-3 * e1.grad.abs().max()
    # with Tn = Tp = 0 the weights are constants, so the gradients agree too
    e3, e4 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    RankedListLoss(Tn=0.0)(e3, labels).backward()
    pml_flat(e4, labels).backward()
    torch.testing.assert_close(e3.grad, e4.grad, rtol=1e-3, atol=1e-6)


# ---------------------------------------------------------------- instance cross entropy

def _ice_loop(emb, labels, t, scheme, normalize):
    e = F.normalize(emb, dim=1)
    terms = []
    for a in range(len(e)):
        negs = [j for j in range(len(e)) if labels[j] != labels[a]]
        for pj in range(len(e)):
            if pj == a or labels[pj] != labels[a]:
                continue
            num = torch.exp(e[a] @ e[pj] / t)
            den = num + sum(torch.exp(e[a] @ e[n] / t) for n in negs)
            terms.append(num / den)
    p = torch.stack(terms)
    pd = p.detach()
    w = scheme.w(pd)
    z = w.sum() if normalize == "sum" else len(w)
    coef = w / (2 * (1 - pd)) / z  # frozen DM coefficients
    return (coef * -torch.log(p)).sum()


@pytest.mark.parametrize("name,params,normalize", [("cce", {}, "n"), ("imae", {"T": 8.0}, "sum"),
                                                   ("dm", {"lam": 0.5, "beta": 8.0}, "sum")])
def test_ice_matches_naive_loop(name, params, normalize):
    emb, labels = _emb(n_ids=3, per_id=3, dim=5, seed=3)
    e1 = emb.clone().requires_grad_(True)
    loss = InstanceCrossEntropyLoss(temperature=0.2, scheme=name, normalize=normalize, **params)(e1, labels)
    loss.backward()
    e2 = emb.clone().requires_grad_(True)
    ref = _ice_loop(e2, labels, 0.2, get_scheme(name, **params), normalize)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-8, atol=1e-12)


def test_ice_gradcheck_of_frozen_surrogate():
    emb, labels = _emb(n_ids=2, per_id=3, dim=3, seed=4)
    scheme = get_scheme("imae", T=8.0)
    e0 = emb.clone()

    def surrogate(e):  # DM coefficients frozen at e0, an ordinary differentiable function of e
        en = F.normalize(e, dim=1)
        s = en @ en.t() / 0.2
        s0 = F.normalize(e0, dim=1) @ F.normalize(e0, dim=1).t() / 0.2
        rows, rows0, tgt = [], [], []
        for a in range(6):
            for pj in range(6):
                if pj != a and labels[pj] == labels[a]:
                    keep = (labels != labels[a]).clone()
                    keep[pj] = True
                    rows.append(s[a].masked_fill(~keep, -math.inf))
                    rows0.append(s0[a].masked_fill(~keep, -math.inf))
                    tgt.append(pj)
        rows, rows0, tgt = torch.stack(rows), torch.stack(rows0), torch.tensor(tgt)
        p0 = rows0.softmax(1).gather(1, tgt[:, None]).squeeze(1)
        w = scheme.w(p0)
        coef = w / (2 * (1 - p0)) / w.sum()
        return (coef * F.cross_entropy(rows, tgt, reduction="none")).sum()

    e = emb.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(surrogate, (e,))
    g_ref = torch.autograd.grad(surrogate(e), e)[0]
    g = torch.autograd.grad(InstanceCrossEntropyLoss(temperature=0.2, scheme=scheme)(e, labels), e)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-12)


def test_ice_with_cce_is_ntxent():
    emb, labels = _emb(seed=5)
    for per_id in (2, 4):  # one positive per anchor, and several
        lab = torch.arange(len(emb) // per_id).repeat_interleave(per_id)
        e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
        ours = InstanceCrossEntropyLoss(temperature=0.1, scheme="cce", normalize="n")(e1, lab)
        ref = pml_losses.NTXentLoss(temperature=0.1)(e2, lab)
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)
        ours.backward()
        ref.backward()
        torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-6, atol=1e-10)


# ---------------------------------------------------------------- batch-hard triplet

def test_batch_hard_triplet_matches_loop_and_gradcheck():
    emb, labels = _emb(n_ids=3, per_id=3, dim=4, seed=6)
    loss_fn = BatchHardTripletLoss(margin=0.3)

    def loop(e):
        d = (e[:, None] - e[None]).pow(2).sum(-1).clamp_min(1e-30).sqrt()
        out = []
        for a in range(len(e)):
            dap = max(d[a, j] for j in range(len(e)) if j != a and labels[j] == labels[a])
            dan = min(d[a, j] for j in range(len(e)) if labels[j] != labels[a])
            out.append(torch.clamp(dap - dan + 0.3, min=0))
        return torch.stack(out).mean()

    e = emb.clone().requires_grad_(True)
    torch.testing.assert_close(loss_fn(e, labels), loop(e))
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, labels), (e,))


def test_batch_hard_soft_margin_scheme_is_dm_on_two_way_ce():
    emb, labels = _emb(n_ids=3, per_id=3, dim=4, seed=7)
    loss_fn = BatchHardTripletLoss(soft_margin=True, scheme="imae", T=8.0)
    e = emb.clone().requires_grad_(True)
    g = torch.autograd.grad(loss_fn(e, labels), e)[0]
    # reference: frozen DM coefficients on the soft-margin loss softplus(d_ap - d_an) = -log p
    d = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None]
    gap0 = d.masked_fill(~same, -1).max(1).values - d.masked_fill(same, 1e9).min(1).values
    p0 = torch.sigmoid(-gap0)
    w = get_scheme("imae", T=8.0).w(p0)
    coef = w / (2 * (1 - p0)) / w.sum()
    e2 = emb.clone().requires_grad_(True)
    d2 = (e2[:, None] - e2[None]).pow(2).sum(-1).clamp_min(1e-30).sqrt()
    gap = d2.masked_fill(~same, -1).max(1).values - d2.masked_fill(same, 1e9).min(1).values
    g_ref = torch.autograd.grad((coef * F.softplus(gap)).sum(), e2)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(loss_fn.last_stats["p"], p0)


# ---------------------------------------------------------------- PML interop

RANKING = [
    ("rll", lambda **kw: RankedListLoss(**kw)),
    ("ice", lambda **kw: InstanceCrossEntropyLoss(temperature=0.1, scheme="imae", **kw)),
    ("triplet", lambda **kw: BatchHardTripletLoss(margin=0.3, **kw)),
    ("triplet_dm", lambda **kw: BatchHardTripletLoss(soft_margin=True, scheme="dm", lam=0.5, beta=4.0, **kw)),
]


@pytest.mark.parametrize("name,make", RANKING, ids=[r[0] for r in RANKING])
@pytest.mark.parametrize("miner", [None, miners.MultiSimilarityMiner(epsilon=0.1), miners.BatchHardMiner()],
                         ids=["none", "ms", "batchhard"])
def test_training_step_with_miner_decreases_loss(name, make, miner):
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(4)
    x = torch.randn(4, 10)[labels] + 0.8 * torch.randn(16, 10)
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss_fn = make()
    full = []
    for _ in range(10):
        emb = net(x)
        tuples = miner(emb, labels) if miner is not None else None
        loss = loss_fn(emb, labels, tuples)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            full.append(float(loss_fn(net(x), labels)))
    assert isinstance(loss_fn.last_stats, dict)
    assert full[-1] < full[0]


@pytest.mark.parametrize("name,make", RANKING, ids=[r[0] for r in RANKING])
def test_reducers_and_cross_batch_memory(name, make):
    emb, labels = _emb(seed=8)
    emb = emb.float()
    # triplets from a miner are accepted as given (may be empty: zero loss, zero gradient)
    tm = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    e = emb.clone().requires_grad_(True)
    v = make()(e, labels, tm(e, labels))
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(e.grad).all()
    for reducer in (reducers.AvgNonZeroReducer(), reducers.SumReducer(), reducers.MeanReducer()):
        v = make(reducer=reducer)(emb, labels)
        assert torch.isfinite(v)
    mem = CrossBatchMemory(make(), embedding_size=6, memory_size=48)
    for step in range(4):
        e = (emb + 0.01 * step).requires_grad_(True)
        v = mem(e, labels)
        v.backward()
        assert torch.isfinite(v) and torch.isfinite(e.grad).all()
    with pytest.raises(Exception, match="not supported"):
        pml_losses.CrossBatchMemory(make(), embedding_size=6)


def test_reid_cross_batch_memory_rejects_classifier_heads():
    from reid.losses import LinearClassifierLoss
    with pytest.raises(Exception, match="not supported"):
        CrossBatchMemory(LinearClassifierLoss(6, 4), embedding_size=6)


def test_ranking_losses_use_ref_emb():
    emb, labels = _emb(seed=9)
    ref, ref_labels = emb[:8].clone() + 0.05, labels[:8].clone()
    for _, make in RANKING:
        v = make()(emb, labels, ref_emb=ref, ref_labels=ref_labels)
        assert torch.isfinite(v)
    # ICE against an external reference set equals the loop with that set as candidates
    loss = InstanceCrossEntropyLoss(temperature=0.5, scheme="cce", normalize="n")(emb, labels, ref_emb=ref,
                                                                                  ref_labels=ref_labels)
    e, r = F.normalize(emb, dim=1), F.normalize(ref, dim=1)
    terms = []
    for a in range(len(e)):
        for j in range(len(r)):
            if ref_labels[j] == labels[a]:
                s = e[a] @ r.t() / 0.5
                keep = ref_labels != labels[a]
                keep[j] = True
                terms.append(-(s[j] - torch.logsumexp(s[keep], 0)))
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_metric_loss_registry_names_the_config_choices():
    from reid.losses import METRIC_LOSSES, BatchHardTripletLoss, InstanceCrossEntropyLoss, OSMCAALoss, RankedListLoss

    assert dict(METRIC_LOSSES) == {"triplet": BatchHardTripletLoss, "rll": RankedListLoss,
                                   "ice": InstanceCrossEntropyLoss, "osm_caa": OSMCAALoss}
    assert METRIC_LOSSES["triplet"](margin=0.3).margin == 0.3
    with pytest.raises(ValueError, match=r"loss.metric.name: unknown ranking loss 'tripplet'.*Did you mean 'triplet'"):
        METRIC_LOSSES.check("tripplet", key="loss.metric.name")
