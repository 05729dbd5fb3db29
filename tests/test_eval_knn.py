"""FAISS top-k lists against torch.topk and against a stable full sort (ties by gallery index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.eval.knn import knn_search


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_faiss_topk_equals_torch_topk(metric):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(20, 12)).astype(np.float32)
    g = rng.normal(size=(300, 12)).astype(np.float32)
    scores, idx = knn_search(q, g, k=15, metric=metric, use_gpu=False)
    qt, gt = torch.from_numpy(q), torch.from_numpy(g)
    if metric == "cosine":
        s = torch.nn.functional.normalize(qt, dim=1) @ torch.nn.functional.normalize(gt, dim=1).T
    else:
        s = -torch.cdist(qt, gt) ** 2
    ref_s, ref_i = torch.topk(s, 15, dim=1)
    np.testing.assert_array_equal(idx, ref_i.numpy())
    np.testing.assert_allclose(scores, ref_s.numpy(), rtol=1e-4, atol=1e-4)


def test_ties_are_broken_by_gallery_index_across_the_k_boundary():
    rng = np.random.default_rng(1)
    pool = rng.integers(-2, 3, size=(4, 6)).astype(np.float32)
    g = pool[rng.integers(0, 4, 200)]  # 200 rows, only 4 distinct: huge tie groups
    q = pool[:3] + 0.0
    scores, idx = knn_search(q, g, k=10, metric="euclidean")
    exact = -((q[:, None, :] - g[None]) ** 2).sum(-1)
    for r in range(len(q)):
        expected = sorted(range(len(g)), key=lambda j: (-exact[r, j], j))[:10]
        assert idx[r].tolist() == expected
    assert (np.diff(scores, axis=1) <= 0).all()


def test_k_is_clipped_and_errors_are_clear():
    g = np.eye(3, dtype=np.float32)
    _, idx = knn_search(g, g, k=10)
    assert idx.shape == (3, 3)
    with pytest.raises(ValueError, match="equal D"):
        knn_search(np.ones((2, 4)), g, k=1)
