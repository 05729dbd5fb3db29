"""Exact positive ranks from gallery tiles, when a query's positive scores are only known
approximately before the sweep: score *bands* and bucket counts.

The tiled scorer (:mod:`reid.eval.large_gallery`) walks the gallery in blocks, so the GEMM value
of a positive ``p`` (its score ``s_p``) is only seen in ``p``'s own block, while every block must
already be counted against it. Before the sweep each positive gets an interval ``[lo_p, hi_p]``
that is certain to hold ``s_p``: its dot product in float64 plus or minus a rigorous bound on the
float32 GEMM's rounding (:func:`score_intervals`). Per query, the intervals are merged into
disjoint *bands*; the key line of the query (order-preserving float keys,
:func:`reid.eval.exact_ranks.ordered_keys`, offset by ``row << 32`` as in the exact kernel) is cut
at every band's ends into buckets: band, gap, band, gap ... up to the row's end.

Every tile item at or above the query's lowest band (``score >= min_p lo_p``; junk is -inf and
never is) is dropped into its bucket by one 1-D ``searchsorted``; buckets only *count* their
items, except band buckets, which also keep ``(bucket, key, gallery index)``. After the sweep the
rank of a positive, the number of non-junk items scoring strictly higher plus the tied ones with
a smaller gallery index, plus one, is

    1 + (items in the buckets above p's band) + (p's position in its band, sorted by
    descending key, then ascending gallery index)

with ``p``'s own entry (its true GEMM score) found among its band's items. Items below the band
are below ``s_p``; items above it are above. So the ranks equal those of
:func:`reid.eval.exact_ranks.positive_ranks_chunk` on the full rows, bit for bit, with memory
``O(queries x positives)`` for the counts plus the band items (the items within a few float32
ulps of a positive's score: a handful per positive, unless the features tie massively).
Should a positive's own entry not be in its band (the bound failed: never seen, kept as a check),
it is reported and the caller re-runs that query with a wider band.
"""

from __future__ import annotations

import numpy as np

from reid.eval.exact_ranks import ordered_keys

_ROW_SHIFT = np.int64(32)
_UNIT_ROUNDOFF = 2.0**-24  # float32
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# absolute slack for products and sums that leave float32's normal range (each loses < 2^-149)
_TINY = 2.0**-120


def score_intervals(q_rows: np.ndarray, g_rows: np.ndarray, offset: np.ndarray | None,
                    widen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` float32 with ``lo <= s <= hi`` for the float32 score ``s`` of each pair
    ``fl(fl(q . g) + offset)`` however the GEMM orders its sums.

    Bound (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1): a float32 dot product
    of length ``D`` in any summation order, with or without FMA, is within
    ``gamma_D * sum_k |q_k g_k|`` of the exact one, ``gamma_D = D u / (1 - D u)``, ``u = 2^-24``;
    adding the offset rounds once more (``u |result|``). The interval is twice that bound around
    the float64 dot product (exact to ~1e-16), times ``widen``, rounded outwards to float32;
    ``widen = inf`` gives the whole finite range (always correct, slow)."""
    d = q_rows.shape[1]
    q64, g64 = q_rows.astype(np.float64), g_rows.astype(np.float64)
    dot = np.einsum("ij,ij->i", q64, g64)
    gamma = d * _UNIT_ROUNDOFF / (1 - d * _UNIT_ROUNDOFF)
    err = gamma * np.einsum("ij,ij->i", np.abs(q64), np.abs(g64))
    if offset is not None:
        dot = dot + offset.astype(np.float64)
        err = err + _UNIT_ROUNDOFF * (np.abs(dot) + err)
    margin = widen * (2.0 * err + _TINY)
    with np.errstate(over="ignore", invalid="ignore"):
        lo64, hi64 = dot - margin, dot + margin
        lo, hi = lo64.astype(np.float32), hi64.astype(np.float32)
    lo = np.where(lo > lo64, np.nextafter(lo, np.float32(-np.inf)), lo)
    hi = np.where(hi < hi64, np.nextafter(hi, np.float32(np.inf)), hi)
    # finite ends: -inf (junk) must stay below every band
    lo = np.where(np.isnan(lo64), -_FLOAT32_MAX, np.maximum(lo, -_FLOAT32_MAX)).astype(np.float32)
    hi = np.where(np.isnan(hi64), _FLOAT32_MAX, np.minimum(hi, _FLOAT32_MAX)).astype(np.float32)
    return lo, hi


def _row_keys(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (rows.astype(np.int64) << _ROW_SHIFT) | ordered_keys(values).astype(np.int64)


class BandCounter:
    """The buckets of one chunk of ``c`` queries, their counts and band items, and the ranks.

    Args:
        c: queries in the chunk (rows ``0..c-1``).
        prow: ``[P]`` row of each positive (ascending; the order the ranks come back in).
        pgal: ``[P]`` gallery index of each positive.
        lo, hi: ``[P]`` float32 intervals holding each positive's score (:func:`score_intervals`).
    """

    def __init__(self, c: int, prow: np.ndarray, pgal: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        self.prow, self.pgal = prow.astype(np.int64), pgal.astype(np.int64)
        lo_key, hi_key = _row_keys(prow, lo), _row_keys(prow, hi)
        order = np.argsort(lo_key, kind="stable")
        lo_s, hi_s = lo_key[order], hi_key[order]
        reach = np.maximum.accumulate(hi_s) if len(hi_s) else hi_s
        # a new band where the interval starts past everything the row's earlier ones cover
        start = np.ones(len(lo_s), bool)
        start[1:] = (lo_s[1:] > reach[:-1] + 1) | (prow[order][1:] != prow[order][:-1])
        first = np.flatnonzero(start)
        band_lo = lo_s[first]
        band_hi = np.maximum.reduceat(hi_s, first) if len(first) else hi_s
        rows = np.unique(self.prow)
        row_end = (rows + 1) << _ROW_SHIFT
        # bucket k holds the keys in [bounds[k-1], bounds[k]): band j is the bucket after its lo
        self.bounds = np.sort(np.concatenate([band_lo, band_hi + 1, row_end]))
        self.is_band = np.zeros(len(self.bounds) + 1, bool)
        self.is_band[np.searchsorted(self.bounds, band_lo, side="left") + 1] = True
        self.pos_bucket = np.searchsorted(self.bounds, lo_key, side="right")
        self.row_last_bucket = np.searchsorted(self.bounds, (self.prow + 1) << _ROW_SHIFT, side="left")
        self.threshold = np.full(c, np.inf, np.float32)  # only items >= the lowest band count
        np.minimum.at(self.threshold, self.prow, lo)
        self.counts = np.zeros(len(self.bounds) + 1, np.int64)
        self._items: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, rows: np.ndarray, values: np.ndarray, gallery_index: np.ndarray) -> None:
        """Count tile items (``values[i] >= threshold[rows[i]]``, any order)."""
        keys = _row_keys(rows, values)
        bucket = np.searchsorted(self.bounds, keys, side="right")
        self.counts += np.bincount(bucket, minlength=len(self.counts))
        band = self.is_band[bucket]
        if band.any():
            self._items.append((bucket[band], keys[band], gallery_index[band].astype(np.int64)))

    def ranks(self, num_gallery: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ranks [P], found [P])``: 1-based ranks in the positives' order, and whether each
        positive's own entry was in its band (where not, its rank is meaningless)."""
        if self._items:
            ib, ik, ig = (np.concatenate(parts) for parts in zip(*self._items))
        else:
            ib = ik = ig = np.zeros(0, np.int64)
        # rank order inside a bucket: descending key, then ascending gallery index
        order = np.lexsort((ig, -ik, ib))
        sorted_bucket = ib[order]
        position = np.empty(len(ib), np.int64)
        position[order] = np.arange(len(ib)) - np.searchsorted(sorted_bucket, sorted_bucket, side="left")
        # each positive's own entry: (row, gallery index) is unique among the items
        pair = (ik >> _ROW_SHIFT) * num_gallery + ig
        by_pair = np.argsort(pair)
        target = self.prow * num_gallery + self.pgal
        at = np.minimum(np.searchsorted(pair[by_pair], target), max(len(pair) - 1, 0))
        own = by_pair[at] if len(pair) else np.zeros(len(target), np.int64)
        found = (pair[own] == target) & (ib[own] == self.pos_bucket) if len(pair) else np.zeros(len(target), bool)
        at_least = np.concatenate([self.counts[::-1].cumsum()[::-1], [0]])
        above = at_least[self.pos_bucket + 1] - at_least[self.row_last_bucket + 1]
        within = np.where(found, position[own] if len(pair) else 0, 0)
        return 1 + above + within, found


__all__ = ["score_intervals", "BandCounter"]
