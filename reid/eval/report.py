"""The result of an evaluation: :class:`RetrievalReport` and its printed table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from reid.eval.features import METRICS


class MetricOutOfBoundsError(AssertionError):
    """A metric outside [0, 1]: a bug in the evaluator, never a user error. The message lists
    the offending values."""


def _out_of_bounds(report: "RetrievalReport") -> list[str]:
    """``name=value`` for every summary metric outside [0, 1] (NaN only allowed when no query has
    a match) and for the per-query APs outside [0, 1] (NaN allowed: queries without a match).

    The bounds hold exactly in floating point, not just up to rounding: every AP term, every
    ``n / r_n`` and every CMC indicator is <= 1, and rounding is monotonic, so sums of ``m`` such
    terms are <= ``m`` and their means <= 1."""
    no_match_at_all = report.queries_without_match == report.queries
    summary = {"mAP": report.mAP, "mINP": report.mINP, **{f"rank{k}": v for k, v in report.cmc.items()}}
    bad = [
        f"{name}={value!r}"
        for name, value in summary.items()
        if not (0.0 <= value <= 1.0 or (no_match_at_all and math.isnan(value)))
    ]
    ap = np.asarray(report.average_precision, dtype=np.float64)
    wrong = np.nonzero(~np.isnan(ap) & ~((ap >= 0.0) & (ap <= 1.0)))[0]
    if len(wrong):
        bad.append(f"average_precision[{int(wrong[0])}]={float(ap[wrong[0]])!r} ({len(wrong)} queries)")
    return bad


@dataclass
class RetrievalReport:
    """Result of :func:`reid.eval.evaluate`. Metrics are fractions in [0, 1]; ``protocol`` and
    ``metric`` are the names.

    Per-query arrays (length = number of queries, in query order), for analysis:
        average_precision: AP of each query under the report's protocol; NaN without a match.
        first_hit_rank: 1-based rank of the first positive among non-junk items (0 = no match).
        hardest_hit_rank: 1-based rank of the last (hardest) positive (0 = no match).
        num_positives: number of positives (valid matches) of each query.

    Raises:
        MetricOutOfBoundsError: on construction, if a metric lies outside [0, 1] (a bug).
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

    def __post_init__(self) -> None:
        # an explicit raise, not ``assert``: the check must survive ``python -O``
        bad = _out_of_bounds(self)
        if bad:
            raise MetricOutOfBoundsError(
                f"retrieval metrics outside [0, 1] ({self.protocol}, {self.metric}): {', '.join(bad)}; "
                "this is a bug in reid.eval, please report it with the inputs"
            )

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
    metric = METRICS[report.metric] if report.metric in METRICS else report.metric
    lines = [
        f"Retrieval evaluation -- protocol: {report.protocol}"
        + (" (+ k-reciprocal re-ranking)" if report.reranked else ""),
        f"  metric: {metric}",
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


__all__ = ["MetricOutOfBoundsError", "RetrievalReport", "format_report"]
