"""Exact retrieval metrics (mAP, CMC, mINP) under the two MARS evaluation protocols.

Protocols (keyed by the same names as ``VideoReIDData.protocol``):

``official``  -- the MARS-evaluation MATLAB code (Zheng et al., ECCV 2016). The gallery holds every
    test tracklet, the queries included. *Junk* for a query = gallery items with pid -1, or with
    the query's pid seen by the query's camera (so the query itself is junk). Distractors (pid 0)
    stay in as negatives. AP is the trapezoidal rule of ``compute_AP.m``: walking the ranked list
    and skipping junk, at every non-junk position ``ap += (recall - old_recall) *
    (old_precision + precision) / 2`` with ``old_precision`` starting at 1. With the ranks
    ``r_1 < ... < r_n`` of the ``n`` positives among the non-junk items this is the closed form

        AP = (1/n) * sum_k [ (k-1)/(r_k-1) + k/r_k ] / 2,   with (k-1)/(r_k-1) := 1 when r_k = 1

    (the precision just before hit ``k`` is ``(k-1)/(r_k-1)``; before the first item it is 1).

``torchreid`` -- the convention of torchreid / most PyTorch codebases: the caller removes the
    queries (and pid -1 tracklets) from the gallery; junk = same pid *and* same camera as the
    query. AP is non-interpolated: ``AP = (1/n) * sum_k k / r_k`` (mean precision at each hit).

Both: CMC@k = fraction of queries whose first positive has rank ``r_1 <= k`` (junk ignored);
mINP = mean over queries of ``n / r_n`` (Ye et al., "Deep Learning for Person Re-identification:
A Survey and Outlook", TPAMI 2021: inverse rank of the hardest positive). Queries with no
positive (``n = 0``) are *excluded* from every mean and counted in ``queries_without_match``
(on real MARS the torchreid split leaves 140 of them, which torchreid skips silently).

Ranking and ties. Scores are "higher is better": cosine similarity of L2-normalised features
(``metric="cosine"``) or, for ``metric="euclidean"``, ``q.g - ||g||^2 / 2``, which orders the
gallery exactly as the squared (and hence the plain) Euclidean distance ``||q - g||^2 = ||q||^2 -
2 (q.g - ||g||^2/2)`` does, without the constant ``||q||^2``. **Tie-break**: items with equal
scores are ranked by ascending gallery index (a stable sort of the descending scores); every
path here (fast exact ranks, FAISS top-k lists, re-ranking) uses the same rule.

Algorithm. Only each positive's rank among the non-junk items matters, so no row is sorted.
Per chunk of queries: one GEMM writes the ``[chunk, G]`` scores into a buffer reused by every
chunk; the (few, per-query listed) junk entries are set to -inf; only items scoring at least the
hardest positive's score can outrank a positive, so those are extracted (one compare pass in
cache-sized row blocks, flat ``nonzero``, rows split over the torch thread count) and bucketed against the positives' scores with one 1-D
``searchsorted`` over integer keys (row, order-preserving float bits); a histogram and a suffix
sum give, for every positive, the number of non-junk items scoring strictly higher. Exact ties
with a positive are resolved by counting the tied items with a smaller gallery index. Peak
memory is ``O(chunk * G)``; see :func:`positive_ranks_chunk`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

PROTOCOLS = ("official", "torchreid")
METRICS = ("cosine", "euclidean")
DEFAULT_RANKS = (1, 5, 10, 20)

# Bytes of working memory per (query, gallery) score in a chunk: float32 scores, int64 bucket
# indices, plus slack for the gather/scatter temporaries. Used to pick the default chunk size.
_BYTES_PER_SCORE = 16
DEFAULT_CHUNK_MEMORY = 256 * 2**20

METRIC_DESCRIPTIONS = {
    "cosine": "cosine similarity of L2-normalised features",
    "euclidean": "Euclidean distance (ranked via squared distance; same order)",
}


class EvaluationInputError(ValueError):
    """Inputs to :func:`evaluate` are inconsistent; the message names the offending array."""


@dataclass
class RetrievalReport:
    """Result of :func:`evaluate`. Metrics are fractions in [0, 1].

    Per-query arrays (length = number of queries, in query order), for analysis:
        average_precision: AP of each query under the report's protocol; NaN without a match.
        first_hit_rank: 1-based rank of the first positive among non-junk items (0 = no match).
        hardest_hit_rank: 1-based rank of the last (hardest) positive (0 = no match).
        num_positives: number of positives (valid matches) of each query.
    """

    protocol: str
    metric: str
    mAP: float
    cmc: dict[int, float]
    mINP: float
    queries: int
    queries_without_match: int
    gallery: int
    reranked: bool = False
    average_precision: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    first_hit_rank: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    hardest_hit_rank: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    num_positives: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def to_dict(self) -> dict:
        """Summary as plain JSON-able values: ``protocol, metric, mAP, rank<k>..., mINP, queries,
        queries_without_match`` (plus ``gallery`` and ``rerank``)."""
        out: dict = {"protocol": self.protocol, "metric": self.metric, "mAP": self.mAP}
        for k, v in sorted(self.cmc.items()):
            out[f"rank{k}"] = v
        out.update(
            mINP=self.mINP,
            queries=self.queries,
            queries_without_match=self.queries_without_match,
            gallery=self.gallery,
            rerank=self.reranked,
        )
        return out


def format_report(report: RetrievalReport) -> str:
    """A small fixed-width table naming the protocol and the queries without a match."""
    evaluated = report.queries - report.queries_without_match
    lines = [
        f"Retrieval evaluation -- protocol: {report.protocol}"
        + (" (+ k-reciprocal re-ranking)" if report.reranked else ""),
        f"  metric: {METRIC_DESCRIPTIONS.get(report.metric, report.metric)}",
        f"  queries: {report.queries} ({evaluated} evaluated, "
        f"{report.queries_without_match} without any valid match, excluded from the means)",
        f"  gallery: {report.gallery}",
        "  " + "-" * 22,
        f"  {'mAP':<10}{100 * report.mAP:>10.2f}",
    ]
    for k, v in sorted(report.cmc.items()):
        lines.append(f"  {'rank-' + str(k):<10}{100 * v:>10.2f}")
    lines.append(f"  {'mINP':<10}{100 * report.mINP:>10.2f}")
    lines.append("  (percent)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# input validation


def _as_features(name: str, x) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    if arr.ndim != 2:
        raise EvaluationInputError(f"{name} must be a 2-D array [N, D], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise EvaluationInputError(f"{name} is empty (0 rows): nothing to evaluate")
    if arr.shape[1] == 0:
        raise EvaluationInputError(f"{name} has feature dimension 0")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise EvaluationInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        bad_row = int(np.nonzero(~finite.all(axis=1))[0][0])
        raise EvaluationInputError(
            f"{name} contains NaN or inf values (first at row {bad_row}); check the extractor"
        )
    return arr


def _as_ids(name: str, x, expected: int, features_name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise EvaluationInputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if len(arr) != expected:
        raise EvaluationInputError(
            f"length mismatch: {name} has {len(arr)} entries but {features_name} has {expected} rows"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            pass  # integral floats (e.g. from a .mat file) are accepted
        else:
            raise EvaluationInputError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def validate_inputs(query_feats, gallery_feats, query_pids, query_camids, gallery_pids, gallery_camids):
    """Check shapes, lengths, dtypes and finiteness; return numpy copies (float32 / int64)."""
    qf = _as_features("query_feats", query_feats)
    gf = _as_features("gallery_feats", gallery_feats)
    if qf.shape[1] != gf.shape[1]:
        raise EvaluationInputError(
            f"feature dimension mismatch: query_feats has D={qf.shape[1]}, gallery_feats has D={gf.shape[1]}"
        )
    qp = _as_ids("query_pids", query_pids, len(qf), "query_feats")
    qc = _as_ids("query_camids", query_camids, len(qf), "query_feats")
    gp = _as_ids("gallery_pids", gallery_pids, len(gf), "gallery_feats")
    gc = _as_ids("gallery_camids", gallery_camids, len(gf), "gallery_feats")
    return qf, gf, qp, qc, gp, gc


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise EvaluationInputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def l2_normalize(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        row = int(np.nonzero(norms[:, 0] == 0)[0][0])
        raise EvaluationInputError(f"{name} row {row} is all zeros: cosine similarity is undefined")
    return (x / norms).astype(np.float32, copy=False)  # float32 already for float32 input


def prepare_features(qf: np.ndarray, gf: np.ndarray, metric: str):
    """Features as the scorer uses them (normalised for cosine) and the per-gallery score offset
    (``-||g||^2/2`` for Euclidean, None for cosine)."""
    if metric == "cosine":
        return l2_normalize(qf, "query_feats"), l2_normalize(gf, "gallery_feats"), None
    offset = -0.5 * np.einsum("ij,ij->i", gf.astype(np.float64), gf.astype(np.float64))
    return qf, gf, offset.astype(np.float32)


def auto_chunk_size(num_gallery: int, memory_bytes: int = DEFAULT_CHUNK_MEMORY) -> int:
    """Queries per chunk so that the chunk's working set stays near ``memory_bytes``."""
    return max(1, int(memory_bytes // (max(num_gallery, 1) * _BYTES_PER_SCORE)))


# --------------------------------------------------------------------------------------------
# positives and junk per query


class _QueryGroups:
    """For each query: the gallery items sharing its pid (padded matrix), which of them are
    positives and which are junk under the protocol, and the protocol's global junk columns."""

    def __init__(self, qp, qc, gp, gc, protocol: str):
        self.gc = gc
        self.gp = gp
        order = np.argsort(gp, kind="stable")  # same-pid items keep ascending gallery index
        sorted_pids = gp[order]
        self.order = order
        self.start = np.searchsorted(sorted_pids, qp, side="left")
        self.stop = np.searchsorted(sorted_pids, qp, side="right")
        self.qp, self.qc = qp, qc
        self.protocol = protocol
        # official: every pid -1 item is junk for every query
        self.global_junk = np.nonzero(gp == -1)[0] if protocol == "official" else np.zeros(0, np.int64)

    def chunk(self, a: int, b: int):
        """Padded same-pid gallery indices ``idx [c, L]`` with masks ``positive`` and ``junk``."""
        lengths = self.stop[a:b] - self.start[a:b]
        width = max(int(lengths.max(initial=0)), 1)
        col = np.arange(width)
        valid = col[None, :] < lengths[:, None]
        pos_in_sorted = np.where(valid, self.start[a:b, None] + col[None, :], 0)
        idx = self.order[pos_in_sorted] if len(self.order) else np.zeros_like(pos_in_sorted)
        same_cam = self.gc[idx] == self.qc[a:b, None]
        junk = valid & same_cam
        positive = valid & ~same_cam
        if self.protocol == "official":
            # pid -1 queries: their same-pid items are pid -1, i.e. junk, never positives
            junk_pid = (self.qp[a:b] == -1)[:, None]
            junk |= valid & junk_pid
            positive &= ~junk_pid
        return idx, positive, junk


# --------------------------------------------------------------------------------------------
# the exact rank kernel


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
    are split into contiguous ranges over ``torch.get_num_threads()`` Python threads (numpy
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

    workers = min(torch.get_num_threads(), math.ceil(c / block))
    if workers > 1:
        cuts = [round(i * c / workers) for i in range(workers + 1)]
        parts = _thread_pool(workers).map(extract, cuts[:-1], cuts[1:])
        found = [f for part in parts for f in part]  # ranges in order: row-major order kept
    else:
        found = extract(0, c)
    flat = np.concatenate(found) if found else np.zeros(0, np.int64)
    return flat // num_gallery, flat % num_gallery


_POOLS: dict[int, ThreadPoolExecutor] = {}


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


def ap_from_ranks(ranks: np.ndarray, n: np.ndarray, protocol: str) -> np.ndarray:
    """Average precision from the ascending 1-based positive ranks ``ranks [c, L]`` (entries
    past ``n`` ignored). ``official``: trapezoidal (MARS compute_AP.m); ``torchreid``: mean of
    ``k / r_k``. NaN where ``n == 0``."""
    c, width = ranks.shape
    k = np.arange(1, width + 1, dtype=np.float64)[None, :]
    valid = k <= n[:, None]
    r = np.where(valid, ranks, 1).astype(np.float64)
    precision_at_hit = k / r
    if protocol == "official":
        with np.errstate(divide="ignore", invalid="ignore"):
            precision_before = np.where(r > 1, (k - 1) / (r - 1), 1.0)
        terms = 0.5 * (precision_before + precision_at_hit)
    else:
        terms = precision_at_hit
    total = np.where(valid, terms, 0.0).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


ScoreFn = Callable[[int, int], torch.Tensor]


def _make_score_fn(qf: np.ndarray, gf: np.ndarray, offset: np.ndarray | None) -> ScoreFn:
    q = torch.from_numpy(qf)
    g_t = torch.from_numpy(gf).t()
    off = None if offset is None else torch.from_numpy(offset)

    out: list[torch.Tensor] = []

    def score(a: int, b: int) -> torch.Tensor:
        # One output buffer reused by every chunk: a fresh [chunk, G] allocation per chunk costs
        # page faults (the kernel zero-fills each new page) comparable to a third of the GEMM.
        # The returned view is only valid until the next call, which is how evaluate_scores uses it.
        if not out or out[0].shape[0] < b - a:
            out[:] = [torch.empty(b - a, g_t.shape[1], dtype=torch.float32)]
        s = torch.mm(q[a:b], g_t, out=out[0][: b - a])
        if off is not None:
            s.add_(off)
        return s

    return score


def evaluate_scores(
    score_fn: ScoreFn,
    num_query: int,
    query_pids: np.ndarray,
    query_camids: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_camids: np.ndarray,
    protocol: str,
    metric: str,
    chunk_size: int,
    ranks: Sequence[int] = DEFAULT_RANKS,
    reranked: bool = False,
    progress: bool = False,
) -> RetrievalReport:
    """Metrics from a chunked score function ``score_fn(a, b) -> [b-a, G]`` (higher = better)."""
    groups = _QueryGroups(query_pids, query_camids, gallery_pids, gallery_camids, protocol)
    global_junk = groups.global_junk
    ap = np.full(num_query, np.nan)
    first = np.zeros(num_query, np.int64)
    hardest = np.zeros(num_query, np.int64)
    npos = np.zeros(num_query, np.int64)
    starts = range(0, num_query, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"evaluate ({protocol})", unit="chunk", total=math.ceil(num_query / chunk_size))
    for a in starts:
        b = min(a + chunk_size, num_query)
        idx, positive, junk = groups.chunk(a, b)
        scores = score_fn(a, b)
        scores = scores.numpy() if isinstance(scores, torch.Tensor) else scores
        if scores.dtype != np.float32:
            scores = scores.astype(np.float32)
        r_np, n_np = positive_ranks_chunk(scores, idx, positive, junk, global_junk)
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
        protocol=protocol,
        metric=metric,
        mAP=m_ap,
        cmc=cmc,
        mINP=minp,
        queries=num_query,
        queries_without_match=num_query - evaluated,
        gallery=len(gallery_pids),
        reranked=reranked,
        average_precision=ap,
        first_hit_rank=first,
        hardest_hit_rank=hardest,
        num_positives=npos,
    )


def evaluate(
    query_feats,
    gallery_feats,
    query_pids,
    query_camids,
    gallery_pids,
    gallery_camids,
    protocol: str = "official",
    metric: str = "cosine",
    rerank: bool = False,
    chunk_size: int | None = None,
    ranks: Sequence[int] = DEFAULT_RANKS,
    progress: bool = False,
    rerank_params: dict | None = None,
) -> RetrievalReport:
    """Exact mAP / CMC / mINP of a query set against a gallery under a named protocol.

    Args:
        query_feats, gallery_feats: ``[Q, D]`` and ``[G, D]`` features (numpy or torch).
        query_pids, query_camids, gallery_pids, gallery_camids: 1-D integer ids.
        protocol: ``"official"`` (MARS MATLAB: pid -1 is junk, trapezoidal AP; pass a gallery
            that contains the queries) or ``"torchreid"`` (junk = same pid & camera,
            non-interpolated AP; pass a gallery without the queries). See the module docstring.
        metric: ``"cosine"`` (L2-normalised features) or ``"euclidean"``.
        rerank: apply k-reciprocal re-ranking (Zhong et al., CVPR 2017) before scoring;
            parameters in ``rerank_params`` (``k1=20, k2=6, lambda_value=0.3``).
        chunk_size: queries per chunk (peak memory ~ 16 bytes * chunk_size * G); default picks
            ~256 MB.
        ranks: CMC ranks to report.
        progress: show a tqdm bar over query chunks.

    Returns:
        A :class:`RetrievalReport`; ``to_dict()`` for the summary, per-query arrays for analysis.
    """
    _check_choice("protocol", protocol, PROTOCOLS)
    _check_choice("metric", metric, METRICS)
    ranks = tuple(int(k) for k in ranks)
    if not ranks or min(ranks) < 1:
        raise EvaluationInputError(f"ranks must be positive integers, got {ranks}")
    qf, gf, qp, qc, gp, gc = validate_inputs(
        query_feats, gallery_feats, query_pids, query_camids, gallery_pids, gallery_camids
    )
    if chunk_size is None:
        chunk_size = auto_chunk_size(len(gf))
    if chunk_size < 1:
        raise EvaluationInputError(f"chunk_size must be >= 1, got {chunk_size}")
    if rerank:
        from reid.eval.rerank import KReciprocalReranker

        reranker = KReciprocalReranker(qf, gf, metric=metric, progress=progress, **(rerank_params or {}))
        score_fn = reranker.score_chunk
    else:
        q, g, offset = prepare_features(qf, gf, metric)
        score_fn = _make_score_fn(q, g, offset)
    return evaluate_scores(
        score_fn, len(qf), qp, qc, gp, gc, protocol, metric, chunk_size, ranks, reranked=rerank, progress=progress
    )


__all__ = [
    "PROTOCOLS",
    "METRICS",
    "RetrievalReport",
    "EvaluationInputError",
    "evaluate",
    "evaluate_scores",
    "format_report",
    "validate_inputs",
    "prepare_features",
    "positive_ranks_chunk",
    "ap_from_ranks",
]
