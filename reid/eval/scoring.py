"""Metrics from ranks: positives and junk per query under a protocol, AP / CMC / mINP, and the
chunked loop that turns a score function into a :class:`~reid.eval.report.RetrievalReport`.

The protocol (:mod:`reid.protocols`) decides, for each query, which gallery items are junk
(ignored), which are positives, and how AP is computed (``Protocol.ap``):

``"trapezoid"`` (``official``, the MARS-evaluation ``compute_AP.m``): walking the ranked list and
    skipping junk, at every non-junk position ``ap += (recall - old_recall) * (old_precision +
    precision) / 2`` with ``old_precision`` starting at 1. With the ranks ``r_1 < ... < r_n`` of
    the ``n`` positives among the non-junk items this is the closed form

        AP = (1/n) * sum_k [ (k-1)/(r_k-1) + k/r_k ] / 2,   with (k-1)/(r_k-1) := 1 when r_k = 1

    (the precision just before hit ``k`` is ``(k-1)/(r_k-1)``; before the first item it is 1).

``"non_interpolated"`` (``torchreid``): ``AP = (1/n) * sum_k k / r_k`` (mean precision at each hit).

Both: CMC@k = fraction of queries whose first positive has rank ``r_1 <= k`` (junk ignored);
mINP = mean over queries of ``n / r_n`` (Ye et al., "Deep Learning for Person Re-identification:
A Survey and Outlook", TPAMI 2021: inverse rank of the hardest positive). Queries with no
positive (``n = 0``) are *excluded* from every mean and counted in ``queries_without_match``
(on real MARS the torchreid split leaves 140 of them, which torchreid skips silently).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from reid.eval.exact_ranks import positive_ranks_chunk
from reid.eval.features import resolve_protocol
from reid.eval.report import RetrievalReport
from reid.protocols import Protocol

if TYPE_CHECKING:
    import torch

DEFAULT_RANKS = (1, 5, 10, 20)

# Bytes of working memory per (query, gallery) score in a chunk: float32 scores, int64 bucket
# indices, plus slack for the gather/scatter temporaries. Used to pick the default chunk size.
_BYTES_PER_SCORE = 16
DEFAULT_CHUNK_MEMORY = 256 * 2**20


def auto_chunk_size(num_gallery: int, memory_bytes: int = DEFAULT_CHUNK_MEMORY) -> int:
    """Queries per chunk so that the chunk's working set stays near ``memory_bytes``."""
    return max(1, int(memory_bytes // (max(num_gallery, 1) * _BYTES_PER_SCORE)))


# --------------------------------------------------------------------------------------------
# positives and junk per query


class _QueryGroups:
    """For each query: the gallery items sharing its pid (padded matrix), which of them are
    positives and which are junk under the protocol, and the protocol's global junk columns.

    Only same-pid items can be positives, and the only junk that is not same-pid is the
    protocol's global junk (``Protocol.global_junk``, masked once per chunk), so the per-query
    masks are ``Protocol.junk_mask`` over the same-pid items and its complement
    (``Protocol.positive_mask``: same pid and not junk).
    """

    def __init__(self, qp, qc, gp, gc, protocol: Protocol, self_index: np.ndarray | None = None):
        self.self_index = self_index  # gallery index of each query's own entry (-1: absent), or None
        self.gc = gc
        self.gp = gp
        order = np.argsort(gp, kind="stable")  # same-pid items keep ascending gallery index
        sorted_pids = gp[order]
        self.order = order
        self.start = np.searchsorted(sorted_pids, qp, side="left")
        self.stop = np.searchsorted(sorted_pids, qp, side="right")
        self.qp, self.qc = qp, qc
        self.protocol = protocol
        self.global_junk = protocol.global_junk(gp)

    def chunk(self, a: int, b: int):
        """Padded same-pid gallery indices ``idx [c, L]`` with masks ``positive`` and ``junk``."""
        lengths = self.stop[a:b] - self.start[a:b]
        width = max(int(lengths.max(initial=0)), 1)
        col = np.arange(width)
        valid = col[None, :] < lengths[:, None]
        pos_in_sorted = np.where(valid, self.start[a:b, None] + col[None, :], 0)
        idx = self.order[pos_in_sorted] if len(self.order) else np.zeros_like(pos_in_sorted)
        # the query's own entry has the query's pid, so it is among the same-pid items
        is_self = None if self.self_index is None else valid & (idx == self.self_index[a:b, None])
        # junk_mask broadcasts: one query per row ([c, 1]) against its same-pid items ([c, L])
        junk = valid & self.protocol.junk_mask(self.qp[a:b, None], self.qc[a:b, None], self.gp[idx], self.gc[idx],
                                               is_self)
        positive = valid & ~junk  # valid entries share the query's pid
        return idx, positive, junk


# --------------------------------------------------------------------------------------------
# average precision


def _trapezoid_terms(k: np.ndarray, r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision_before = np.where(r > 1, (k - 1) / (r - 1), 1.0)
    return 0.5 * (precision_before + k / r)


def _non_interpolated_terms(k: np.ndarray, r: np.ndarray) -> np.ndarray:
    return k / r


# ``Protocol.ap`` -> the per-hit AP term as a function of (hit number k, rank r_k)
_AP_TERMS = {"trapezoid": _trapezoid_terms, "non_interpolated": _non_interpolated_terms}


def ap_from_ranks(ranks: np.ndarray, n: np.ndarray, protocol: str | Protocol) -> np.ndarray:
    """Average precision from the ascending 1-based positive ranks ``ranks [c, L]`` (entries
    past ``n`` ignored), by the protocol's AP rule (``Protocol.ap``: ``trapezoid`` = MARS
    compute_AP.m, ``non_interpolated`` = mean of ``k / r_k``). NaN where ``n == 0``."""
    rule = resolve_protocol(protocol).ap
    if rule not in _AP_TERMS:
        raise ValueError(f"protocol {protocol}: unknown AP rule {rule!r} (known: {', '.join(_AP_TERMS)})")
    c, width = ranks.shape
    k = np.arange(1, width + 1, dtype=np.float64)[None, :]
    valid = k <= n[:, None]
    r = np.where(valid, ranks, 1).astype(np.float64)
    total = np.where(valid, _AP_TERMS[rule](k, r), 0.0).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


# --------------------------------------------------------------------------------------------
# the chunked loop

ScoreFn = Callable[[int, int], "torch.Tensor | np.ndarray"]


def make_score_fn(qf: np.ndarray, gf: np.ndarray, offset: np.ndarray | None) -> ScoreFn:
    """``score(a, b) -> [b - a, G]``: ``q.g (+ offset)`` for queries ``a..b`` (one GEMM).

    The GEMM is numpy's (its BLAS), not torch's: a ``--features`` evaluation then never imports
    torch, whose import alone is ~10x the rest of a small run (docs/benchmarks.md, CLI start-up),
    and every caller (training, ``tools/eval.py``, studies) scores with the same library, so the
    same features always give the same report bit for bit."""
    g_t = gf.T
    out: list[np.ndarray] = []

    def score(a: int, b: int) -> np.ndarray:
        # One output buffer reused by every chunk: a fresh [chunk, G] allocation per chunk costs
        # page faults (the kernel zero-fills each new page) comparable to a third of the GEMM.
        # The returned view is only valid until the next call, which is how evaluate_scores uses it.
        if not out or out[0].shape[0] < b - a:
            out[:] = [np.empty((b - a, g_t.shape[1]), dtype=np.float32)]
        s = np.matmul(qf[a:b], g_t, out=out[0][: b - a])
        if offset is not None:
            s += offset
        return s

    return score


def evaluate_scores(
    score_fn: ScoreFn,
    num_query: int,
    query_pids: np.ndarray,
    query_camids: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_camids: np.ndarray,
    protocol: str | Protocol,
    metric: str,
    chunk_size: int,
    ranks: Sequence[int] = DEFAULT_RANKS,
    reranked: bool = False,
    progress: bool = False,
    self_index: np.ndarray | None = None,
) -> RetrievalReport:
    """Metrics from a chunked score function ``score_fn(a, b) -> [b-a, G]`` (higher = better).
    ``self_index`` (the gallery index of each query's own entry, -1 when absent) makes that entry
    junk (:mod:`reid.eval.self_index`). The report names the protocol by its name."""
    protocol = resolve_protocol(protocol)
    groups = _QueryGroups(query_pids, query_camids, gallery_pids, gallery_camids, protocol, self_index)

    def chunk_ranks(a: int, b: int, idx: np.ndarray, positive: np.ndarray, junk: np.ndarray):
        scores = score_fn(a, b)
        torch = sys.modules.get("torch")  # a score function may return a tensor only once torch is imported
        scores = scores.numpy() if torch is not None and isinstance(scores, torch.Tensor) else scores
        if scores.dtype != np.float32:
            scores = scores.astype(np.float32)
        return positive_ranks_chunk(scores, idx, positive, junk, groups.global_junk)

    return report_from_ranks(chunk_ranks, groups, num_query, protocol, metric, chunk_size, ranks,
                             reranked=reranked, progress=progress)


# ``ranks_fn(a, b, idx, positive, junk) -> (ranks [c, L], n [c])`` for queries ``a..b``, given
# ``_QueryGroups.chunk(a, b)``: the ascending 1-based ranks of each query's positives (entries past
# ``n`` are ignored), as :func:`reid.eval.exact_ranks.positive_ranks_chunk` returns them.
RanksFn = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def report_from_ranks(
    ranks_fn: RanksFn,
    groups: _QueryGroups,
    num_query: int,
    protocol: Protocol,
    metric: str,
    chunk_size: int,
    ranks: Sequence[int] = DEFAULT_RANKS,
    reranked: bool = False,
    progress: bool = False,
) -> RetrievalReport:
    """AP / CMC / mINP over query chunks of ``chunk_size`` from each chunk's positive ranks.

    The one aggregation of every exact scorer (:func:`evaluate_scores`, the tiled large-gallery
    scorer of :mod:`reid.eval.large_gallery`): with the same ranks and the same ``chunk_size``
    the report is the same to the last bit (a chunk's AP rows are summed over its padded width,
    so the chunking is part of the float rounding)."""
    ap = np.full(num_query, np.nan)
    first = np.zeros(num_query, np.int64)
    hardest = np.zeros(num_query, np.int64)
    npos = np.zeros(num_query, np.int64)
    starts = range(0, num_query, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"evaluate ({protocol.name})", unit="chunk",
                      total=math.ceil(num_query / chunk_size))
    for a in starts:
        b = min(a + chunk_size, num_query)
        idx, positive, junk = groups.chunk(a, b)
        r_np, n_np = ranks_fn(a, b, idx, positive, junk)
        ap[a:b] = ap_from_ranks(r_np, n_np, protocol)
        has = n_np > 0
        first[a:b] = np.where(has, r_np[:, 0], 0)
        hardest[a:b] = np.where(has, r_np[np.arange(b - a), np.maximum(n_np - 1, 0)], 0)
        npos[a:b] = n_np
    matched = npos > 0
    evaluated = int(matched.sum())
    if evaluated == 0:
        m_ap = minp = float("nan")
        cmc = {int(k): float("nan") for k in ranks}
    else:
        m_ap = float(ap[matched].mean())
        minp = float((npos[matched] / hardest[matched]).mean())
        cmc = {int(k): float((first[matched] <= k).mean()) for k in ranks}
    return RetrievalReport(
        protocol=protocol.name,
        metric=metric,
        mAP=m_ap,
        cmc=cmc,
        mINP=minp,
        queries=num_query,
        queries_without_match=num_query - evaluated,
        gallery=len(groups.gp),
        reranked=reranked,
        average_precision=ap,
        first_hit_rank=first,
        hardest_hit_rank=hardest,
        num_positives=npos,
    )


__all__ = [
    "DEFAULT_RANKS",
    "auto_chunk_size",
    "ap_from_ranks",
    "make_score_fn",
    "evaluate_scores",
    "report_from_ranks",
]
