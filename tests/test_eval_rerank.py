"""k-reciprocal re-ranking: equals a dense, plainly written reference on a tiny case, and helps
on a constructed easy case."""

from __future__ import annotations

import numpy as np
import pytest

from reid.eval import evaluate
from reid.eval.rerank import KReciprocalReranker


def dense_reference(q, g, k1, k2, lam):
    """Zhong et al. 2017 with dense (N x N) matrices, one item at a time."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    x = np.concatenate([q, g]).astype(np.float64)
    n, nq = len(x), len(q)
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    dist = dist / dist.max(axis=1, keepdims=True)
    rank = np.argsort(dist, axis=1, kind="stable")

    def recip(i, k):
        fwd = rank[i, : k + 1]
        return [j for j in fwd if i in rank[j, : k + 1]]

    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        expanded = set(r)
        for c in r:
            rc = recip(c, int(np.round(k1 / 2)))
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expanded |= set(rc)
        idx = sorted(expanded)
        w = np.exp(-dist[i, idx])
        v[i, idx] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    final = np.zeros((nq, n - nq))
    for p in range(nq):
        for gi in range(n - nq):
            s = np.minimum(v[p], v[nq + gi]).sum()
            final[p, gi] = (1 - lam) * (1 - s / (2 - s)) + lam * dist[p, nq + gi]
    return final


def test_sparse_equals_dense_reference():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 5)).astype(np.float32)
    g = rng.normal(size=(25, 5)).astype(np.float32)
    ref = dense_reference(q, g, k1=5, k2=3, lam=0.3)
    ours = -KReciprocalReranker(q, g, "cosine", k1=5, k2=3, lambda_value=0.3).score_chunk(0, 6).numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    # the Jaccard term matters somewhere: the result is not just 0.7 + 0.3 d
    dist = dense_reference(q, g, k1=5, k2=3, lam=1.0)
    assert np.abs(ref - (0.7 + 0.3 * dist)).max() > 1e-2


def test_rerank_improves_map_on_clustered_gallery():
    rng = np.random.default_rng(1)
    ids, per_id, dim = 12, 8, 16
    centers = rng.normal(size=(ids, dim))
    gp = np.repeat(np.arange(ids), per_id)
    gf = centers[gp] + 0.35 * rng.normal(size=(len(gp), dim))  # tight gallery clusters
    qp = np.arange(ids)
    qf = centers[qp] + 0.9 * rng.normal(size=(ids, dim))  # noisy queries
    kw = dict(query_pids=qp, query_camids=np.zeros(ids, int), gallery_pids=gp,
              gallery_camids=np.ones(len(gp), int), protocol="torchreid")
    base = evaluate(qf, gf, **kw)
    rr = evaluate(qf, gf, **kw, rerank=True, rerank_params=dict(k1=8, k2=3, lambda_value=0.3))
    assert rr.reranked and not base.reranked
    assert rr.mAP > base.mAP + 0.01


def test_size_limit_is_reported():
    x = np.random.default_rng(2).normal(size=(10, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="max_items=15"):
        KReciprocalReranker(x, x, max_items=15)
