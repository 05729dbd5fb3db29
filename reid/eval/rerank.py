"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), built from sparse neighbour lists.

Definitions (all over the N = Q + G query and gallery items together; ``d`` = squared Euclidean
distance of the features as the metric uses them -- L2-normalised for cosine -- divided by its
row maximum over all N items, as in the authors' released code, so ``exp(-d)`` is scale-free):

* ``N(i, k)``: the ``k + 1`` nearest items of ``i`` (itself included), from FAISS, ties by index.
* k-reciprocal set ``R(i, k) = {j in N(i, k) : i in N(j, k)}`` (eq. 4).
* expansion (eq. 6): ``R*(i) = R(i, k1)  U  R(c, k1/2)`` for every ``c in R(i, k1)`` with
  ``|R(c, k1/2) & R(i, k1)| > 2/3 |R(c, k1/2)|``  (``k1/2`` rounded half to even).
* Gaussian-kernel encoding (eq. 7): ``V[i, j] = exp(-d(i, j))`` for ``j in R*(i)``, 0 otherwise,
  rows normalised to sum 1; local query expansion (eq. 11): ``V[i] <- mean of V[j]`` over the
  ``k2`` nearest ``j`` of ``i`` (skipped when ``k2 == 1``).
* Jaccard distance (eq. 10): ``d_J(p, g) = 1 - s / (2 - s)``, ``s = sum_j min(V[p, j], V[g, j])``.
* final distance (eq. 13): ``d* = (1 - lambda) d_J + lambda d``; defaults ``k1=20, k2=6,
  lambda=0.3``.

Memory: never an ``N x N`` dense matrix. Neighbour lists are ``N x (k1+1)``; ``V`` has at most
``~k1^2/2`` non-zeros per row; ``s`` is formed for a chunk of queries through an inverted index
(columns of ``V``). Items with ``s = 0`` have ``d_J = 1``, so the final scores of a query chunk
are a dense ``lambda d`` plus a sparse correction. ``max_items`` (default 500,000) bounds N; above
it a clear error is raised (the neighbour search alone is ``O(N^2 D)``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from reid.eval.features import EvaluationInputError, feature_pair, prepare_features
from reid.eval.knn import knn_search

MAX_ITEMS = 500_000


def _reciprocal_mask(neighbours: np.ndarray) -> np.ndarray:
    """``mask[i, m]`` = item ``i`` is among the neighbours of its m-th neighbour."""
    n = len(neighbours)
    out = np.zeros(neighbours.shape, bool)
    for a in range(0, n, 4096):  # bounded temporaries
        nb = neighbours[a:a + 4096]
        out[a:a + 4096] = (neighbours[nb] == np.arange(a, a + len(nb))[:, None, None]).any(-1)
    return out


class KReciprocalReranker:
    """Re-ranked scores (``-d*``, higher = better) for query chunks; see the module docstring."""

    def __init__(self, query_feats, gallery_feats, metric: str = "cosine", k1: int = 20, k2: int = 6,
                 lambda_value: float = 0.3, max_items: int = MAX_ITEMS, progress: bool = False):
        if not (k1 >= 1 and k2 >= 1 and 0.0 <= lambda_value <= 1.0):
            raise EvaluationInputError(f"re-ranking needs k1 >= 1, k2 >= 1, 0 <= lambda <= 1; got {k1}, {k2}, {lambda_value}")
        # checked (NaN / inf named) and brought into float32's safe range; d / row max below is
        # scale-free, so the fitted features give the re-ranking of the inputs themselves
        q, g, _ = prepare_features(*feature_pair(query_feats, gallery_feats, metric), metric)
        x = np.ascontiguousarray(np.concatenate([q, g]), dtype=np.float32)
        n = len(x)
        if n > max_items:
            raise EvaluationInputError(
                f"re-ranking over {n} items (queries + gallery) exceeds max_items={max_items}; "
                "raise max_items if you have the memory (~ N * k1^2 * 24 bytes) and time (O(N^2 D))"
            )
        self.num_query, self.lambda_value = len(q), float(lambda_value)
        self.x = torch.from_numpy(x)
        self.sq = (self.x.double() ** 2).sum(1).float()
        k1 = min(k1, n - 1) if n > 1 else 1
        k_half = int(np.round(k1 / 2))
        self.row_max = self._row_max_distance()
        _, nb = knn_search(x, x, k1 + 1, metric="euclidean")
        self.neighbours = nb
        v = self._encode(nb, k1, k_half)
        if k2 > 1:
            k2 = min(k2, nb.shape[1])
            rows = np.repeat(np.arange(n), k2)
            avg = sp.csr_matrix((np.full(n * k2, 1.0 / k2), (rows, nb[:, :k2].ravel())), shape=(n, n))
            v = (avg @ v).tocsr()
        self.v_rows = v.tocsr()
        self.v_cols = v.tocsc()

    def _distance(self, a: int, b: int, cols: slice | None = None) -> torch.Tensor:
        xs = self.x[a:b]
        xc = self.x if cols is None else self.x[cols]
        sq_c = self.sq if cols is None else self.sq[cols]
        d = self.sq[a:b, None] + sq_c[None, :] - 2.0 * torch.mm(xs, xc.t())
        return d.clamp_min_(0.0)

    def _row_max_distance(self) -> np.ndarray:
        n = len(self.x)
        out = np.empty(n, np.float64)
        step = max(1, (64 * 2**20) // (4 * n))
        for a in range(0, n, step):
            out[a:a + step] = self._distance(a, min(a + step, n)).max(1).values.double().numpy()
        out[out == 0] = 1.0  # all items identical: any positive scale works
        return out

    def _encode(self, nb: np.ndarray, k1: int, k_half: int) -> sp.csr_matrix:
        n = len(nb)
        r_full = _reciprocal_mask(nb)  # R(i, k1) over nb[:, :k1+1]
        nb_half = nb[:, : k_half + 1]
        r_half = _reciprocal_mask(nb_half)
        members = []
        for a in range(0, n, 2048):
            b = min(a + 2048, n)
            base = np.where(r_full[a:b], nb[a:b], -1)  # R(i, k1), -1 padded  [c, k1+1]
            cand = nb[a:b]  # candidates c (only the reciprocal ones count)
            cand_sets = np.where(r_half[cand], nb_half[cand], -2)  # R(c, k1/2)  [c, k1+1, kh+1]
            inter = (cand_sets[..., None] == base[:, None, None, :]).any(-1).sum(-1)
            size = r_half[cand].sum(-1)
            accept = r_full[a:b] & (inter > (2.0 / 3.0) * size)
            expanded = np.where(accept[..., None], cand_sets, -1).reshape(b - a, -1)
            m = np.sort(np.concatenate([base, expanded], axis=1), axis=1)
            dup = np.zeros_like(m, bool)
            dup[:, 1:] = m[:, 1:] == m[:, :-1]
            keep = (m >= 0) & ~dup
            rows, cols = np.nonzero(keep)
            members.append((rows + a, m[rows, cols]))
        rows = np.concatenate([r for r, _ in members])
        cols = np.concatenate([c for _, c in members])
        d = (self.sq[rows] + self.sq[cols]).double() - 2.0 * (self.x[rows].double() * self.x[cols].double()).sum(1)
        w = np.exp(-np.clip(d.numpy(), 0, None) / self.row_max[rows])
        w /= np.bincount(rows, weights=w, minlength=n)[rows]
        return sp.csr_matrix((w, (rows, cols)), shape=(n, n))

    def _jaccard_overlap(self, a: int, b: int) -> sp.csr_matrix:
        """``s[p, g] = sum_j min(V[p, j], V[g, j])`` for queries ``a..b`` and all gallery items."""
        vr, vc, nq = self.v_rows, self.v_cols, self.num_query
        start, stop = vr.indptr[a], vr.indptr[b]
        p_rows = np.repeat(np.arange(b - a), np.diff(vr.indptr[a:b + 1]))
        k = vr.indices[start:stop]
        v_pk = vr.data[start:stop]
        lengths = vc.indptr[k + 1] - vc.indptr[k]
        total = int(lengths.sum())
        offsets = np.repeat(vc.indptr[k] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        pos = offsets + np.arange(total)
        g_items = vc.indices[pos]
        contrib = np.minimum(np.repeat(v_pk, lengths), vc.data[pos])
        keep = g_items >= nq
        num_gallery = len(self.x) - nq
        return sp.coo_matrix(
            (contrib[keep], (np.repeat(p_rows, lengths)[keep], g_items[keep] - nq)), shape=(b - a, num_gallery)
        ).tocsr()

    def score_chunk(self, a: int, b: int) -> torch.Tensor:
        """Scores ``-d*`` of queries ``a..b`` against the gallery, ``[b - a, G]`` float32."""
        nq, lam = self.num_query, self.lambda_value
        d = self._distance(a, b, slice(nq, None)).double() / torch.from_numpy(self.row_max[a:b])[:, None]
        final = lam * d + (1.0 - lam)  # d_J = 1 where the encodings do not overlap
        s = self._jaccard_overlap(a, b).tocoo()
        if s.nnz:
            corr = torch.from_numpy(s.data / (2.0 - s.data))  # 1 - d_J
            final[torch.from_numpy(s.row.astype(np.int64)), torch.from_numpy(s.col.astype(np.int64))] -= (1.0 - lam) * corr
        return (-final).float()


__all__ = ["KReciprocalReranker", "MAX_ITEMS"]
