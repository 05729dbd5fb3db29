"""Exact mAP / CMC / mINP against galleries of millions of items, on CPU, in ``O(tile)`` memory:
:func:`evaluate_large_gallery`.

:func:`reid.eval.evaluate` holds a ``[chunk, G]`` score block and a normalised copy of the gallery;
at G = 1,000,000 that copy alone is as large as the features, and its automatic chunk (16 queries)
makes the product memory-bound. Here the gallery is walked once, in blocks of ``gallery_block``
rows, each prepared (L2-normalised, or rescaled with its Euclidean offsets) exactly as
:func:`reid.eval.features.prepare_features` would prepare it, row for row, and scored against
every chunk of ``query_block`` queries by one GEMM (``np.matmul``, the same as :func:`reid.eval.evaluate`'s) into a cache-sized tile. Per tile:
junk entries -> -inf, one row-max pass, and only the rows whose max reaches the query's lowest
*band* (see :mod:`reid.eval.rank_bands`) are compared and their few items bucketed. Positive
scores are bracketed before the sweep by a rigorous float32 error bound, so each positive's exact
rank (non-junk items scoring strictly higher, plus tied items of smaller gallery index: the tie
rule of :mod:`reid.eval.exact_ranks`) comes out of bucket counts.

The scores are the ones :func:`reid.eval.evaluate` computes (same prepared rows, same float32
GEMM, entry by entry), the ranks are its ranks, and the metrics are aggregated by the same code
(:func:`reid.eval.scoring.report_from_ranks`) with the same ``chunk_size`` default: the report
equals ``evaluate(...)``'s (``tests/test_eval_large_gallery.py``). Re-ranking is not offered here
(it needs ``Q x G`` neighbour structures).

Memory beyond the inputs: one prepared gallery block, one tile, the per-query bucket counts and
the band items; validation (:func:`reid.eval.features.validate_inputs`) briefly needs a bool
array of the features' shape. Time: the GEMM plus a pass over each tile in cache, as long as
few items outrank the hardest positive (trained features); with useless features every row
reaches its band and the bucketing grows toward ``Q x G`` (still exact, memory still bounded).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from reid.eval.exact_ranks import _thread_pool, eval_threads
from reid.eval.features import (
    EvaluationInputError,
    euclidean_fit,
    l2_normalize,
)
from reid.eval.rank_bands import BandCounter, score_intervals
from reid.eval.report import RetrievalReport
from reid.eval.scoring import DEFAULT_RANKS, _QueryGroups, auto_chunk_size, report_from_ranks
from reid.eval.self_index import checked_retrieval_inputs
from reid.protocols import Protocol

# The tile (query_block x gallery_block float32 scores) is sized to stay in the last-level cache,
# so the passes after the GEMM read it from cache; 1024 queries keep the GEMM compute-bound.
DEFAULT_QUERY_BLOCK = 1024
TILE_BYTES = 16 * 2**20
# gallery rows per pass of the (blockwise) preparation checks
_PREP_ROWS = 1 << 16
# widening of the score bands for the queries whose check failed (never seen; see rank_bands)
_WIDEN = (1.0, 2.0**10, 2.0**20, math.inf)


class PreparedGallery:
    """The gallery as the scorer uses it, one block at a time, without a prepared copy of all of
    it: for ``cosine`` rows ``l2_normalize``-d, for ``euclidean`` rows divided by the common scale
    of :func:`reid.eval.features.euclidean_fit` and the offsets ``-||g||^2 / 2`` (float32). Both
    are row-local, so a block (or any set of rows) is prepared bit for bit as
    :func:`reid.eval.features.prepare_features` prepares the whole array."""

    def __init__(self, qf: np.ndarray, gf: np.ndarray, metric: str):
        self.gf, self.metric = gf, metric
        self.scale, self.offset = 1.0, None
        if metric == "cosine":
            self.query = l2_normalize(qf, "query_feats")
            for a in range(0, len(gf), _PREP_ROWS):  # the error normalising all at once would raise
                zero = np.flatnonzero(~gf[a:a + _PREP_ROWS].any(axis=1))
                if len(zero):
                    raise EvaluationInputError(
                        f"gallery_feats row {a + int(zero[0])} is all zeros: cosine similarity is undefined")
            return
        sq_norms = self._sq_norms()
        # euclidean_fit reads the gallery only for its largest magnitude when it has the squared
        # norms: a 1 x 1 stand-in with that magnitude decides the scale without a rescaled copy
        largest = max(float(-gf.min()), float(gf.max()))
        self.query, _, self.scale = euclidean_fit(qf, np.array([[largest]], gf.dtype), sq_norms)
        if self.scale != 1.0:
            sq_norms = self._sq_norms()
        self.offset = (-0.5 * sq_norms).astype(np.float32)

    def _scaled(self, rows: np.ndarray) -> np.ndarray:
        if self.scale == 1.0:
            return rows
        return (rows.astype(np.float64) / self.scale).astype(np.float32)  # as euclidean_fit does

    def _sq_norms(self) -> np.ndarray:
        out = np.empty(len(self.gf), np.float64)
        for a in range(0, len(self.gf), _PREP_ROWS):
            b = self._scaled(self.gf[a:a + _PREP_ROWS]).astype(np.float64)
            out[a:a + len(b)] = np.einsum("ij,ij->i", b, b)
        return out

    def rows(self, index) -> tuple[np.ndarray, np.ndarray | None]:
        """Prepared features ``[n, D]`` float32 and offsets (None for cosine) of ``gf[index]``."""
        if self.metric == "cosine":
            return l2_normalize(self.gf[index], "gallery_feats"), None
        return self._scaled(self.gf[index]), self.offset[index]


def _chunk_plans(query: np.ndarray, gallery: PreparedGallery, groups: _QueryGroups, query_block: int,
                 widen: float):
    """Per chunk of queries: its bands (:class:`BandCounter`) and its junk pairs by gallery index."""
    plans = []
    for a in range(0, len(groups.qp), query_block):
        b = min(a + query_block, len(groups.qp))
        idx, positive, junk = groups.chunk(a, b)
        prow, pcol = np.nonzero(positive)  # row-major: query, then ascending gallery index
        pgal = idx[prow, pcol]
        g_rows, off = gallery.rows(pgal)
        lo, hi = score_intervals(query[a + prow], g_rows, off, widen)
        jr, jc = np.nonzero(junk)
        jg = idx[jr, jc]
        by_gallery = np.argsort(jg, kind="stable")
        plans.append((a, b, BandCounter(b - a, prow, pgal, lo, hi), jr[by_gallery], jg[by_gallery], len(prow)))
    return plans


def _row_max(tile: np.ndarray, workers: int) -> np.ndarray:
    """``tile.max(axis=1)``, its rows split over ``workers`` threads (numpy releases the GIL;
    numpy's SIMD max reads a cached tile ~4x faster than ``torch.amax`` here)."""
    if workers < 2 or len(tile) < 2 * workers:
        return tile.max(axis=1)
    out = np.empty(len(tile), tile.dtype)
    cuts = [round(i * len(tile) / workers) for i in range(workers + 1)]

    def part(lo: int, hi: int) -> None:
        np.max(tile[lo:hi], axis=1, out=out[lo:hi])

    list(_thread_pool(workers).map(part, cuts[:-1], cuts[1:]))
    return out


def _sweep(query: np.ndarray, gallery: PreparedGallery, groups: _QueryGroups, query_block: int,
           gallery_block: int, widen: float, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(ranks, found)`` of every positive, queries ascending, gallery index ascending within."""
    plans = [p for p in _chunk_plans(query, gallery, groups, query_block, widen) if p[5]]
    buf = np.empty(query_block * gallery_block, dtype=np.float32)
    global_junk = groups.global_junk
    num_gallery = len(groups.gp)
    blocks = range(0, num_gallery, gallery_block)
    if progress:
        from tqdm.auto import tqdm

        blocks = tqdm(blocks, desc="evaluate (large gallery)", unit="block", total=math.ceil(num_gallery / gallery_block))
    neg_inf = float("-inf")
    workers = eval_threads()
    for g0 in blocks if plans else ():
        g1 = min(g0 + gallery_block, num_gallery)
        width = g1 - g0
        g_rows, off = gallery.rows(slice(g0, g1))
        g_t = g_rows.T
        gj = global_junk[np.searchsorted(global_junk, g0):np.searchsorted(global_junk, g1)] - g0
        for a, b, counter, jr, jg, _ in plans:
            c = b - a
            # the same GEMM as evaluate's (reid.eval.scoring.make_score_fn): same scores, same report
            s_np = np.matmul(query[a:b], g_t, out=buf[: c * width].reshape(c, width))
            if off is not None:
                s_np += off
            if len(gj):
                s_np[:, gj] = neg_inf
            lo_j, hi_j = np.searchsorted(jg, g0), np.searchsorted(jg, g1)
            if hi_j > lo_j:
                s_np[jr[lo_j:hi_j], jg[lo_j:hi_j] - g0] = -np.inf
            # one pass over the tile in cache; only rows that reach their lowest band go further
            hit = np.flatnonzero(_row_max(s_np, workers) >= counter.threshold)
            if not len(hit):
                continue
            sub = s_np[hit] if len(hit) < c else s_np
            flat = np.flatnonzero(sub >= counter.threshold[hit, None])
            r, col = flat // width, flat % width
            counter.add(hit[r], sub[r, col], col + g0)
    ranks = [np.zeros(0, np.int64)]
    found = [np.zeros(0, bool)]
    for _, _, counter, _, _, _ in plans:
        r, f = counter.ranks(num_gallery)
        ranks.append(r)
        found.append(f)
    return np.concatenate(ranks), np.concatenate(found)


def _positive_ranks(query, gallery, groups, query_block, gallery_block, progress):
    """Every positive's exact rank (queries ascending, gallery index ascending within) and the
    number of positives per query. Queries whose band check failed are re-run, wider."""
    ranks, found = _sweep(query, gallery, groups, query_block, gallery_block, _WIDEN[0], progress)
    npos = np.zeros(len(groups.qp), np.int64)
    for a in range(0, len(groups.qp), query_block):
        npos[a:a + query_block] = groups.chunk(a, min(a + query_block, len(groups.qp)))[1].sum(1)
    start = np.concatenate([[0], np.cumsum(npos)])
    owner = np.repeat(np.arange(len(npos)), npos)
    for widen in _WIDEN[1:]:
        redo = np.unique(owner[~found])
        if not len(redo):
            break
        sub = _QueryGroups(groups.qp[redo], groups.qc[redo], groups.gp, groups.gc, groups.protocol,
                           None if groups.self_index is None else groups.self_index[redo])
        r_sub, f_sub = _sweep(np.ascontiguousarray(query[redo]), gallery, sub, query_block, gallery_block, widen,
                              False)
        at = np.concatenate([np.arange(start[q], start[q + 1]) for q in redo])
        ranks[at], found[at] = r_sub, f_sub
    if not found.all():  # the whole-range band cannot miss: this would be a bug
        raise RuntimeError("reid.eval.large_gallery: a positive's score fell outside the full range")
    return ranks, start


def evaluate_large_gallery(
    query_feats,
    gallery_feats,
    query_pids,
    query_camids,
    gallery_pids,
    gallery_camids,
    protocol: str | Protocol = "official",
    metric: str = "cosine",
    chunk_size: int | None = None,
    ranks: Sequence[int] = DEFAULT_RANKS,
    progress: bool = False,
    query_gallery_index=None,
    query_block: int | None = None,
    gallery_block: int | None = None,
) -> RetrievalReport:
    """:func:`reid.eval.evaluate` (without re-ranking) for galleries too large for it: the same
    arguments and the same report, in memory that does not grow with ``Q x G``.

    Args:
        chunk_size: queries per chunk of the metric aggregation only (its float sums); the
            default, ``auto_chunk_size(G)``, is ``evaluate``'s, so both reports are identical.
        query_block, gallery_block: the tile (default 1024 queries and a 16 MB tile).
        (the rest: as :func:`reid.eval.evaluate`.)

    Raises:
        EvaluationInputError: as :func:`reid.eval.evaluate`.
    """
    protocol, ranks, qf, gf, qp, qc, gp, gc, self_index = checked_retrieval_inputs(
        protocol, metric, ranks, query_feats, gallery_feats, query_pids, query_camids, gallery_pids,
        gallery_camids, query_gallery_index)
    chunk_size = auto_chunk_size(len(gf)) if chunk_size is None else chunk_size
    query_block = min(len(qf), DEFAULT_QUERY_BLOCK) if query_block is None else query_block
    gallery_block = max(256, TILE_BYTES // (4 * query_block)) if gallery_block is None else gallery_block
    for name, value in (("chunk_size", chunk_size), ("query_block", query_block), ("gallery_block", gallery_block)):
        if value < 1:
            raise EvaluationInputError(f"{name} must be >= 1, got {value}")
    gallery = PreparedGallery(qf, gf, metric)
    groups = _QueryGroups(qp, qc, gp, gc, protocol, self_index)
    positive_ranks, start = _positive_ranks(gallery.query, gallery, groups, query_block, gallery_block, progress)

    def chunk_ranks(a: int, b: int, idx: np.ndarray, positive: np.ndarray, junk: np.ndarray):
        out = np.full(positive.shape, np.iinfo(np.int64).max, dtype=np.int64)
        prow, pcol = np.nonzero(positive)  # the order the sweep enumerated them in
        out[prow, pcol] = positive_ranks[start[a]:start[b]]
        out.sort(axis=1)
        return out, positive.sum(1)

    return report_from_ranks(chunk_ranks, groups, len(qf), protocol, metric, chunk_size, ranks)


__all__ = ["evaluate_large_gallery", "PreparedGallery", "DEFAULT_QUERY_BLOCK", "TILE_BYTES"]
