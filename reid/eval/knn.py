"""Exact k-nearest-neighbour search with FAISS (flat indexes), GPU when available.

Used for ranked lists (visualisation, re-ranking). GPU is used when the installed faiss has GPU
support and sees a GPU (``faiss.get_num_gpus() > 0`` and ``faiss.StandardGpuResources`` exists);
otherwise the CPU flat index. Both are exact, so results are the same up to float rounding. A
search wider than the GPU's limit (``GPU_MAX_K`` neighbours) runs on a CPU index.

Scores are "higher is better", as in :mod:`reid.eval.features`: inner product of L2-normalised
features for ``cosine``; minus the squared Euclidean distance for ``euclidean``. Any finite
features work: FAISS searches the features brought into float32's safe range as
:mod:`reid.eval.features` does for the metrics (rows normalised safely; for Euclidean one common
factor ``s``), and Euclidean scores are multiplied back by ``s^2``.
**Tie-break**: equal scores are ordered by ascending gallery index, also across the k-th
boundary (the search is widened until the k-th and (k+1)-th scores differ), so the list is the
first ``k`` of a stable descending sort: the same rule as the metrics.
"""

from __future__ import annotations

import numpy as np

from reid.errors import UserError
from reid.eval.features import EvaluationInputError, check_metric, euclidean_fit, feature_pair, l2_normalize


class FaissGpuUnavailableError(UserError, RuntimeError):
    """``use_gpu=True`` but the installed faiss build has no GPU support or sees no GPU."""


def faiss_uses_gpu() -> bool:
    """True when the installed faiss build has GPU support (``faiss.StandardGpuResources``; CPU
    builds lack it) and sees a GPU (``faiss.get_num_gpus() > 0``)."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


# FAISS GPU flat indexes return at most this many neighbours per query (GPU_MAX_SELECTION_K);
# a wider search (a long run of tied scores) goes to a CPU index built when first needed.
GPU_MAX_K = 2048


def _build_index(gallery: np.ndarray, metric: str, use_gpu: bool | None):
    """``(index, on_gpu)``: an exact flat index holding ``gallery``, on GPU when asked or, with
    ``use_gpu=None``, when :func:`faiss_uses_gpu`."""
    import faiss

    d = gallery.shape[1]
    index = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    if use_gpu is None:
        use_gpu = faiss_uses_gpu()
    if use_gpu:
        if not faiss_uses_gpu():
            raise FaissGpuUnavailableError(
                f"use_gpu=True, but the installed faiss {getattr(faiss, '__version__', '?')} "
                + ("sees no GPU (faiss.get_num_gpus() = 0)" if hasattr(faiss, "StandardGpuResources")
                   else "is a CPU-only build")
                + "; pass use_gpu=None to choose automatically, or install a faiss GPU build (docs/install.md)"
            )
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(gallery)
    return index, bool(use_gpu)


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
        The indices are exact for any finite features; Euclidean scores are those of the input
        scale, so beyond float32's range (features above ~1e18 or below ~1e-22) they saturate
        to -inf or round to 0 while the order stays exact.

    Raises:
        EvaluationInputError: shapes, an empty gallery, NaN / inf (naming ``query`` or
            ``gallery`` and the row), or ``k < 1``.
    """
    check_metric(metric)
    shapes = [np.shape(query), np.shape(gallery)]
    if len(shapes[0]) != 2 or len(shapes[1]) != 2 or shapes[0][1] != shapes[1][1]:
        raise EvaluationInputError(
            f"knn_search needs [Q, D] and [G, D] arrays with equal D, got {shapes[0]} and {shapes[1]}"
        )
    if shapes[1][0] == 0:
        raise EvaluationInputError("knn_search: the gallery is empty")
    query, gallery = feature_pair(query, gallery, metric, names=("query", "gallery"))
    scale = 1.0
    if metric == "cosine" and normalize:
        query, gallery = l2_normalize(query, "query"), l2_normalize(gallery, "gallery")
    elif metric == "euclidean":
        query, gallery, scale = euclidean_fit(query, gallery)
    k = int(min(k, len(gallery)))
    if k < 1:
        raise EvaluationInputError(f"k must be >= 1, got {k}")
    index, on_gpu = _build_index(gallery, metric, use_gpu)
    cpu_index = None if on_gpu else index
    sign = 1.0 if metric == "cosine" else -1.0

    def search(q: np.ndarray, kk: int):
        nonlocal cpu_index
        if on_gpu and kk > GPU_MAX_K:
            if cpu_index is None:
                cpu_index, _ = _build_index(gallery, metric, use_gpu=False)
            d, i = cpu_index.search(q, kk)
        else:
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
    if scale != 1.0:  # distances of the input scale (order decided above, on the fitted ones)
        with np.errstate(over="ignore", under="ignore"):
            scores = (scores.astype(np.float64) * scale**2).astype(np.float32)
    return scores, indices


__all__ = ["knn_search", "faiss_uses_gpu", "FaissGpuUnavailableError", "GPU_MAX_K"]
