"""The exact rank kernel: 1-based ranks of each query's positives among its non-junk gallery
items, from a chunk of scores, without sorting any row.

Only each positive's rank among the non-junk items matters for mAP / CMC / mINP. Per chunk of
queries: the (few, per-query listed) junk entries are set to -inf; only items scoring at least the
hardest positive's score can outrank a positive, so those are extracted (one compare pass in
cache-sized row blocks, flat ``nonzero``, rows split over the intra-op thread count) and bucketed
against the positives' scores with one 1-D ``searchsorted`` over integer keys (row,
order-preserving float bits); a histogram and a suffix sum give, for every positive, the number of
non-junk items scoring strictly higher. **Tie-break**: an item with exactly a positive's score
ranks before it iff its gallery index is smaller (a stable sort of the descending scores), the
rule of every path in ``reid.eval`` (exact ranks, FAISS lists, re-ranking). Peak memory is
``O(chunk * G)``; see :func:`positive_ranks_chunk`.

This module knows nothing of protocols or metrics: it takes scores and masks.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def ordered_keys(values: np.ndarray) -> np.ndarray:
    """Map float32 values to uint32 keys with the same order (``a < b  <=>  key(a) < key(b)``;
    -0.0 and +0.0 share a key). ``key + 1`` is then the key of the next float up: exact
    "strictly greater" tests on integers."""
    v = np.asarray(values, dtype=np.float32) + np.float32(0.0)  # -0.0 -> +0.0
    bits = v.view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint32(0x80000000))


# Rows per block of the candidate-extraction pass: the block's boolean mask (rows * G bytes) stays
# in the per-core L2 cache for G ~ 1e5, so the compare and the nonzero scan never go to memory for it.
_EXTRACT_BLOCK_BYTES = 1 << 20


def _items_at_or_above(scores: np.ndarray, threshold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of the entries with ``scores[r, c] >= threshold[r]``, in row-major order.

    One compare pass over the chunk, done in row blocks whose mask stays in cache, then a *flat*
    ``np.flatnonzero`` per block (its 1-D scan is ~10x faster than the 2-D ``np.nonzero``, which
    walks multi-indices element by element). Rows with ``threshold = inf`` yield nothing. The rows
    are split into contiguous ranges over :func:`eval_threads` Python threads (numpy
    releases the GIL in both calls), so the pass uses the same cores as the GEMM before it.
    """
    c, num_gallery = scores.shape
    block = max(1, _EXTRACT_BLOCK_BYTES // max(num_gallery, 1))

    def extract(lo: int, hi: int) -> list[np.ndarray]:
        mask = np.empty((min(block, hi - lo), num_gallery), dtype=bool)
        found = []
        for a in range(lo, hi, block):
            b = min(a + block, hi)
            m = mask[: b - a]
            np.greater_equal(scores[a:b], threshold[a:b, None], out=m)
            flat = np.flatnonzero(m)
            if len(flat):
                found.append(flat + a * num_gallery)
        return found

    workers = min(eval_threads(), math.ceil(c / block))
    if workers > 1:
        cuts = [round(i * c / workers) for i in range(workers + 1)]
        parts = _thread_pool(workers).map(extract, cuts[:-1], cuts[1:])
        found = [f for part in parts for f in part]  # ranges in order: row-major order kept
    else:
        found = extract(0, c)
    flat = np.concatenate(found) if found else np.zeros(0, np.int64)
    return flat // num_gallery, flat % num_gallery


_POOLS: dict[int, ThreadPoolExecutor] = {}


def eval_threads() -> int:
    """Threads for the rank passes: torch's intra-op count when torch is loaded (a study or the
    trainer may have lowered it with ``torch.set_num_threads``), else the CPUs this process may
    run on. Only the split of rows over threads depends on it, never a result."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool per worker count (created once; threads idle between chunks)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="reid-eval")
    return _POOLS[workers]


def positive_ranks_chunk(
    scores: np.ndarray,
    same_pid_idx: np.ndarray,
    positive: np.ndarray,
    junk: np.ndarray,
    global_junk: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks of each query's positives among its non-junk gallery items.

    Args:
        scores: ``[c, G]`` float32 scores (higher = better); **modified in place** (junk -> -inf).
        same_pid_idx: ``[c, L]`` gallery indices of the items sharing each query's pid (padded).
        positive, junk: ``[c, L]`` boolean masks over ``same_pid_idx``.
        global_junk: gallery columns that are junk for every query (or None).

    Returns:
        ``ranks [c, L]`` int64, ascending along each row (entries past ``n`` are a large
        sentinel), and ``n [c]`` the number of positives per query.

    Method (exact, no row is sorted): with ``t`` = the hardest positive's score of a row, only
    items scoring ``>= t`` can outrank a positive. Those are extracted (one compare pass and a
    ``nonzero``), keyed as ``row << 32 | order-preserving bits(score)`` (int64), and bucketed
    with one 1-D ``searchsorted`` against the positives' keys, ``key + 1`` (next float up) and
    each row's end; a histogram of the buckets and a suffix sum give, per positive, the counts
    of items scoring ``>= s`` and ``> s``. Ties (equal scores) are ordered by ascending gallery
    index by a per-positive correction that runs only where a tie exists.
    Cost ``O(c G)`` memory passes plus ``O(M log(cL))`` for the ``M`` items above the
    thresholds (few with useful features, up to ``c G`` with random ones).
    """
    c, num_gallery = scores.shape
    if global_junk is not None and len(global_junk):
        scores[:, global_junk] = -np.inf
    if junk.any():
        jr, jc = np.nonzero(junk)
        scores[jr, same_pid_idx[jr, jc]] = -np.inf
    n = positive.sum(1)
    ranks = np.full(positive.shape, np.iinfo(np.int64).max, dtype=np.int64)
    if not n.any():
        return ranks, n
    prow, pcol = np.nonzero(positive)
    pg = same_pid_idx[prow, pcol]  # gallery index of each positive
    ps = scores[prow, pg]
    threshold = np.full(c, np.inf, dtype=np.float32)
    np.minimum.at(threshold, prow, ps)

    er, ec = _items_at_or_above(scores, threshold)  # rows ascending, then gallery index ascending
    ev = scores[er, ec]
    row_shift = np.int64(32)
    entry_keys = (er.astype(np.int64) << row_shift) | ordered_keys(ev).astype(np.int64)
    pos_keys = (prow.astype(np.int64) << row_shift) | ordered_keys(ps).astype(np.int64)
    row_ends = (np.unique(prow).astype(np.int64) + 1) << row_shift
    bounds = np.sort(np.concatenate([pos_keys, pos_keys + 1, row_ends]))
    bucket = np.searchsorted(bounds, entry_keys, side="right")
    at_least = np.bincount(bucket, minlength=len(bounds) + 1)[::-1].cumsum()[::-1]

    def count_from(keys: np.ndarray) -> np.ndarray:  # items with key >= keys, same row
        end = (prow.astype(np.int64) + 1) << row_shift
        return at_least[np.searchsorted(bounds, keys, side="right")] - at_least[
            np.searchsorted(bounds, end, side="right")
        ]

    num_ge = count_from(pos_keys)
    num_gt = count_from(pos_keys + 1)
    r = num_gt + 1
    tied = np.nonzero(num_ge - num_gt > 1)[0]  # another non-junk item has exactly this score
    if len(tied):
        row_start = np.searchsorted(er, np.arange(c + 1))
        for t in tied.tolist():
            seg = slice(row_start[prow[t]], row_start[prow[t] + 1])
            r[t] += int(np.count_nonzero((entry_keys[seg] == pos_keys[t]) & (ec[seg] < pg[t])))
    ranks[prow, pcol] = r
    ranks.sort(axis=1)
    return ranks, n


__all__ = ["ordered_keys", "positive_ranks_chunk"]
