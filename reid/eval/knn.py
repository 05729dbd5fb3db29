"""Exact k-nearest-neighbour search with FAISS (flat indexes), GPU when available.

Used for ranked lists (visualisation, re-ranking). GPU is used when the installed faiss has GPU
support and sees a GPU (``faiss.get_num_gpus() > 0`` and ``faiss.StandardGpuResources`` exists);
otherwise the CPU flat index. Both are exact, so results are the same up to float rounding.

Scores are "higher is better", as in :mod:`reid.eval.features`: inner product of L2-normalised
features for ``cosine``; minus the squared Euclidean distance for ``euclidean``.
**Tie-break**: equal scores are ordered by ascending gallery index, also across the k-th
boundary (the search is widened until the k-th and (k+1)-th scores differ), so the list is the
first ``k`` of a stable descending sort: the same rule as the metrics.
"""

from __future__ import annotations

import numpy as np

from reid.eval.features import EvaluationInputError, check_metric, l2_normalize


def faiss_uses_gpu() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _build_index(gallery: np.ndarray, metric: str, use_gpu: bool | None):
    import faiss

    d = gallery.shape[1]
    index = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    if use_gpu is None:
        use_gpu = faiss_uses_gpu()
    if use_gpu:
        if not faiss_uses_gpu():
            raise RuntimeError("use_gpu=True but this faiss build has no GPU support or sees no GPU")
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(gallery)
    return index


def knn_search(
    query: np.ndarray,
    gallery: np.ndarray,
    k: int,
    metric: str = "cosine",
    use_gpu: bool | None = None,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` gallery items of every query.

    Args:
        query, gallery: ``[Q, D]`` and ``[G, D]`` float features.
        k: list length (clipped to G).
        metric: ``cosine`` or ``euclidean`` (``reid.eval.features.METRICS``).
        use_gpu: None = automatic; True/False to force.
        normalize: L2-normalise for ``cosine`` (set False if already normalised).

    Returns:
        ``scores [Q, k]`` float32 (higher = better) and ``indices [Q, k]`` int64, best first.
    """
    check_metric(metric)
    query = np.ascontiguousarray(query, dtype=np.float32)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise EvaluationInputError(
            f"knn_search needs [Q, D] and [G, D] arrays with equal D, got {query.shape} and {gallery.shape}"
        )
    if len(gallery) == 0:
        raise EvaluationInputError("knn_search: the gallery is empty")
    if metric == "cosine" and normalize:
        query, gallery = l2_normalize(query, "query"), l2_normalize(gallery, "gallery")
    k = int(min(k, len(gallery)))
    if k < 1:
        raise EvaluationInputError(f"k must be >= 1, got {k}")
    index = _build_index(gallery, metric, use_gpu)
    sign = 1.0 if metric == "cosine" else -1.0

    def search(q: np.ndarray, kk: int):
        d, i = index.search(q, kk)
        return (sign * d).astype(np.float32), i.astype(np.int64)

    scores = np.empty((len(query), k), np.float32)
    indices = np.empty((len(query), k), np.int64)
    todo = np.arange(len(query))
    width = min(k + 1, len(gallery))
    while len(todo):
        s, i = search(query[todo], width)
        if width < len(gallery):
            # widen rows whose k-th and (k+1)-th scores tie: the tie may continue past the list
            open_rows = s[:, k - 1] == s[:, width - 1]
        else:
            open_rows = np.zeros(len(todo), bool)
        done = ~open_rows
        # stable order: score descending, then gallery index ascending
        order = np.lexsort((i[done], -s[done]), axis=1)
        scores[todo[done]] = np.take_along_axis(s[done], order, 1)[:, :k]
        indices[todo[done]] = np.take_along_axis(i[done], order, 1)[:, :k]
        todo = todo[open_rows]
        width = min(2 * width, len(gallery))
    return scores, indices


__all__ = ["knn_search", "faiss_uses_gpu"]
