"""Approximate top-k search (FAISS IVF-Flat or HNSW) for galleries past what exact scoring can
afford, and retrieval metrics computed on truncated top-k lists.

:func:`ann_search` returns the approximate top-``k`` of every query with the index's type and
parameters; :func:`truncated_metrics` scores any top-``k`` lists (approximate, or the exact ones of
:func:`reid.eval.knn.knn_search`, to separate the cost of truncation from that of approximation)
under a protocol of :mod:`reid.protocols`. The exact metrics stay those of
:func:`reid.eval.evaluate` / :func:`reid.eval.large_gallery.evaluate_large_gallery`: these are
for reporting how far an approximate evaluation is from them.

**Truncation** (the usual mAP@k of retrieval systems): a query's list is its ``k`` retrieved
items; its junk items (the protocol's junk rule, the query's own entry included) are dropped and
the rest are ranked 1, 2, ... in list order. With ``n`` = the query's number of positives in the
*whole* gallery and ``r_1 < r_2 < ...`` the ranks of the retrieved ones,

    AP@k = (1/n) * sum_{retrieved hits j} term(j, r_j)      (term: the protocol's AP rule)

so an unretrieved positive adds 0 (AP@k <= AP). CMC@m counts a query when its first hit is
retrieved with rank <= m (exact when the list is exact and holds >= m non-junk items); INP is
``n / r_n`` when all ``n`` positives are retrieved, else 0. Queries without any positive in the
gallery are left out of the means, as in the exact report.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reid.eval.features import EvaluationInputError, check_metric, euclidean_fit, feature_pair, l2_normalize, resolve_protocol
from reid.eval.scoring import _AP_TERMS, DEFAULT_RANKS, _QueryGroups
from reid.protocols import Protocol

ANN_INDEXES = ("ivf_flat", "hnsw")
DEFAULT_PARAMS = {
    # nlist lists, trained on train_size gallery rows (k-means, niter iterations); nprobe lists scanned
    "ivf_flat": {"nlist": 1024, "nprobe": 32, "train_size": 65536, "niter": 10},
    # M links per node; efConstruction / efSearch: candidate-list sizes when adding / searching
    "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 128},
}
_ADD_ROWS = 1 << 16  # gallery rows prepared and added per step: no prepared copy of all of it


def _prepare(query, gallery, metric: str):
    """Query / gallery features as the exact scorers use them, and a function giving prepared
    gallery rows (cosine: L2-normalised; euclidean: the common float32-safe scale)."""
    q, g = feature_pair(query, gallery, metric, names=("query", "gallery"))
    if metric == "cosine":
        return l2_normalize(q, "query"), (lambda rows: l2_normalize(g[rows], "gallery")), len(g), 1.0
    q, g, scale = euclidean_fit(q, g)
    return q, (lambda rows: g[rows]), len(g), scale


def ann_search(query, gallery, k: int, metric: str = "cosine", index: str = "ivf_flat", seed: int = 0,
               **params) -> tuple[np.ndarray, np.ndarray, dict]:
    """Approximate top-``k`` gallery items of every query.

    Args:
        query, gallery: ``[Q, D]`` and ``[G, D]`` features.
        k: list length (clipped to G).
        metric: ``cosine`` (inner product of L2-normalised rows) or ``euclidean``.
        index: ``ivf_flat`` (``faiss.IndexIVFFlat``) or ``hnsw`` (``faiss.IndexHNSWFlat``).
        seed: the k-means seed and the choice of IVF training rows.
        params: overrides of :data:`DEFAULT_PARAMS` for the index.

    Returns:
        ``scores [Q, k]`` (higher = better; -inf where the index found fewer than ``k``),
        ``indices [Q, k]`` (-1 there), best first, ties by ascending gallery index; and the
        index description ``{"index", "metric", "k", **params}`` for reports.
    """
    import faiss

    check_metric(metric)
    if index not in ANN_INDEXES:
        raise EvaluationInputError(f"unknown ANN index {index!r} (choices: {', '.join(ANN_INDEXES)})")
    unknown = set(params) - set(DEFAULT_PARAMS[index])
    if unknown:
        raise EvaluationInputError(f"unknown {index} parameters {sorted(unknown)} "
                                   f"(known: {', '.join(DEFAULT_PARAMS[index])})")
    p = {**DEFAULT_PARAMS[index], **params}
    q, rows, num_gallery, scale = _prepare(query, gallery, metric)
    k = int(min(k, num_gallery))
    if k < 1:
        raise EvaluationInputError(f"k must be >= 1, got {k}")
    d = q.shape[1]
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if index == "ivf_flat":
        p["nlist"] = int(min(p["nlist"], num_gallery))
        quantizer = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
        ann = faiss.IndexIVFFlat(quantizer, d, p["nlist"], faiss_metric)
        ann.cp.niter, ann.cp.seed = int(p["niter"]), int(seed)
        ann.cp.min_points_per_centroid = 1  # a small training set is the caller's choice, not an error
        train = np.sort(np.random.default_rng(seed).choice(num_gallery, min(p["train_size"], num_gallery), replace=False))
        ann.train(rows(train))
        ann.nprobe = int(p["nprobe"])
    else:
        ann = faiss.IndexHNSWFlat(d, int(p["M"]), faiss_metric)
        ann.hnsw.efConstruction = int(p["efConstruction"])
    for a in range(0, num_gallery, _ADD_ROWS):
        ann.add(rows(slice(a, min(a + _ADD_ROWS, num_gallery))))
    if index == "hnsw":
        ann.hnsw.efSearch = int(p["efSearch"])
    dist, idx = ann.search(q, k)
    scores = (dist if metric == "cosine" else -dist).astype(np.float32)
    scores[idx < 0] = -np.inf
    order = np.lexsort((np.where(idx < 0, num_gallery, idx), -scores), axis=1)  # stable tie rule
    scores, idx = np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1).astype(np.int64)
    if scale != 1.0 and metric == "euclidean":
        with np.errstate(over="ignore", under="ignore"):
            scores = (scores.astype(np.float64) * scale**2).astype(np.float32)
    return scores, idx, {"index": index, "metric": metric, "k": k, **p}


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of ``|approx top-k  &  exact top-k| / k`` (``[Q, k]`` index lists)."""
    k = exact.shape[1]
    hits = [len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approx, exact)]
    return float(np.mean(hits) / k) if len(hits) else float("nan")


def truncated_metrics(indices: np.ndarray, query_pids, query_camids, gallery_pids, gallery_camids,
                      protocol: str | Protocol = "official", ranks: Sequence[int] = DEFAULT_RANKS,
                      self_index: np.ndarray | None = None, chunk_size: int = 1024) -> dict:
    """mAP@k, CMC and mINP@k of top-``k`` lists ``indices [Q, k]`` (-1 = no item), with the
    truncation of the module docstring. ``self_index`` (the gallery index of each query's own
    entry, -1 if absent) is required by protocols that need it (``single_camera``)."""
    protocol = resolve_protocol(protocol)
    qp, qc = np.asarray(query_pids, np.int64), np.asarray(query_camids, np.int64)
    gp, gc = np.asarray(gallery_pids, np.int64), np.asarray(gallery_camids, np.int64)
    if protocol.needs_self_index and self_index is None:
        raise EvaluationInputError(f"protocol {protocol.name} needs self_index (each query's own gallery entry)")
    groups = _QueryGroups(qp, qc, gp, gc, protocol, self_index)
    term = _AP_TERMS[protocol.ap]
    ap, first, inp, npos = (np.zeros(len(qp)) for _ in range(4))
    for a in range(0, len(qp), chunk_size):
        b = min(a + chunk_size, len(qp))
        n = groups.chunk(a, b)[1].sum(1)
        ind = np.asarray(indices[a:b], np.int64)
        valid = ind >= 0
        safe = np.where(valid, ind, 0)
        is_self = None if self_index is None else safe == self_index[a:b, None]
        junk = protocol.junk_mask(qp[a:b, None], qc[a:b, None], gp[safe], gc[safe], is_self) | ~valid
        hit = (gp[safe] == qp[a:b, None]) & ~junk
        rank = np.cumsum(~junk, axis=1)  # rank among the retrieved non-junk items
        number = np.cumsum(hit, axis=1)  # hit number j
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(hit, term(number.astype(np.float64), np.maximum(rank, 1).astype(np.float64)), 0.0)
            ap[a:b] = np.where(n > 0, terms.sum(1) / np.maximum(n, 1), 0.0)
        found = number[:, -1] if ind.shape[1] else np.zeros(b - a, np.int64)
        first[a:b] = np.where(hit.any(1), rank[np.arange(b - a), hit.argmax(1)], 0)
        last = np.where(hit, rank, 0).max(1) if ind.shape[1] else np.zeros(b - a, np.int64)
        inp[a:b] = np.where((found == n) & (n > 0), n / np.maximum(last, 1), 0.0)
        npos[a:b] = n
    matched = npos > 0
    out = {"protocol": protocol.name, "k": int(np.shape(indices)[1]), "queries_without_match": int((~matched).sum())}
    if not matched.any():
        return {**out, "mAP": float("nan"), "mINP": float("nan"), **{f"rank{m}": float("nan") for m in ranks}}
    out["mAP"] = float(ap[matched].mean())
    out.update({f"rank{m}": float(((first > 0) & (first <= m))[matched].mean()) for m in ranks})
    out["mINP"] = float(inp[matched].mean())
    return out


__all__ = ["ANN_INDEXES", "DEFAULT_PARAMS", "ann_search", "recall_at_k", "truncated_metrics"]
