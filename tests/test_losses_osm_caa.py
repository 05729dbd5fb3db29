"""OSM + CAA (AAAI 2019) against a naive loop over pairs: forward, backward, detached weights,
and less gradient for pairs containing a low-attention (likely mislabelled) example."""

import math

import pytest
import torch
import torch.nn.functional as F

from reid.errors import UserError
from reid.losses import METRIC_LOSSES, OSMCAALoss


def _batch(seed=0, n_ids=3, per_id=3, dim=5):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_ids).repeat_interleave(per_id)
    centers = torch.randn(n_ids, dim, generator=g, dtype=torch.float64)
    emb = centers[labels] * 0.5 + torch.randn(len(labels), dim, generator=g, dtype=torch.float64)
    attention = torch.rand(len(labels), generator=g, dtype=torch.float64) * 0.9 + 0.1
    return emb, labels, attention


def _naive(emb, labels, a, alpha=1.2, sigma=0.8, balance=0.5):
    e = F.normalize(emb, dim=1)
    pos, neg = [], []
    for i in range(len(e)):
        for j in range(len(e)):
            if i == j:
                continue
            d = torch.linalg.norm(e[i] - e[j])
            att = min(float(a[i]), float(a[j]))
            if labels[i] == labels[j]:
                pos.append((math.exp(-d.item() ** 2 / sigma ** 2) * att, d ** 2 / 2))
            else:
                neg.append((max(alpha - d.item(), 0.0) * att, torch.clamp(alpha - d, min=0) ** 2 / 2))
    lp = sum(w * t for w, t in pos) / sum(w for w, _ in pos)
    ln = sum(w * t for w, t in neg) / sum(w for w, _ in neg)
    return (1 - balance) * lp + balance * ln


def test_forward_and_backward_match_naive_loop_with_detached_weights():
    emb, labels, a = _batch()
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    loss = OSMCAALoss()(e1, labels, attention=a)
    loss.backward()
    ref = _naive(e2, labels, a)  # weights are python floats: detached by construction
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-8, atol=1e-12)


def test_attention_from_logits_is_the_labelled_class_probability_detached():
    emb, labels, _ = _batch(seed=1)
    logits = torch.randn(len(labels), 4, dtype=torch.float64, requires_grad=True)
    e1 = emb.clone().requires_grad_(True)
    loss_fn = OSMCAALoss()
    loss_fn(e1, labels, logits=logits).backward()
    assert logits.grad is None  # no gradient flows into the classifier through the attention
    a = logits.detach().softmax(1).gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(loss_fn.last_stats["p"], a)
    e2 = emb.clone().requires_grad_(True)
    OSMCAALoss()(e2, labels, attention=a).backward()
    torch.testing.assert_close(e1.grad, e2.grad)


def test_low_attention_example_gets_proportionally_less_gradient():
    emb, labels, _ = _batch(seed=2)
    full = torch.ones(len(labels), dtype=torch.float64)
    low = full.clone()
    low[4] = 0.05  # example 4 likely mislabelled
    g_full, g_low = (torch.autograd.grad(OSMCAALoss()(e, labels, attention=att), e)[0]
                     for att in (full, low) for e in [emb.clone().requires_grad_(True)])
    share_full = g_full[4].norm() / g_full.norm(dim=1).sum()
    share_low = g_low[4].norm() / g_low.norm(dim=1).sum()
    assert share_low < 0.2 * share_full


def test_needs_logits_or_attention_and_is_a_metric_loss():
    emb, labels, _ = _batch()
    assert METRIC_LOSSES["osm_caa"] is OSMCAALoss and OSMCAALoss.needs_logits
    with pytest.raises(UserError, match="needs the identity logits"):
        OSMCAALoss()(emb, labels)
    plain = OSMCAALoss(attention="none")
    assert not plain.needs_logits
    torch.testing.assert_close(plain(emb, labels), OSMCAALoss()(emb, labels, attention=torch.ones(9, dtype=emb.dtype)))
