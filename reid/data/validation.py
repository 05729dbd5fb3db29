"""Shared validation machinery for the dataset readers, and split statistics.

:class:`ErrorCollector` gathers every problem a validation pass finds so that the user sees the
first few (each naming file and row/line, and what to do) plus a count, instead of fixing one
error per run. :func:`split_statistics` computes the numbers ``tools/inspect_dataset.py`` prints,
from plain per-tracklet arrays, so it serves the MARS index (no images needed) and loaded
datasets alike; galleries come from the protocol objects of :mod:`reid.protocols`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from reid.data.tracklet import DatasetError
from reid.protocols import PROTOCOLS, Protocol, get_protocol


class ErrorCollector:
    """Collects validation problems and raises one :class:`DatasetError` listing them.

    Args:
        subject: what is being validated (e.g. ``"MARS dataset at /data/mars"``), the first
            words of the final message.
        limit: how many problems the message lists in full; the rest are counted.
    """

    def __init__(self, subject: str, limit: int = 10):
        self.subject = subject
        self.limit = limit
        self.problems: list[str] = []
        # problems counted but not stored (e.g. "and 40000 more frames like this")
        self.extra = 0

    def add(self, message: str) -> None:
        self.problems.append(message)

    def add_many(self, messages: Sequence[str], total: int | None = None) -> None:
        """Add ``messages``; ``total`` (>= len) counts further problems of the same kind."""
        self.problems.extend(messages)
        if total is not None and total > len(messages):
            self.extra += total - len(messages)

    @property
    def count(self) -> int:
        return len(self.problems) + self.extra

    def __bool__(self) -> bool:
        return self.count > 0

    def message(self) -> str:
        shown = self.problems[: self.limit]
        head = f"{self.subject} failed validation: {self.count} problem(s)"
        if self.count > len(shown):
            head += f" (first {len(shown)} shown)"
        body = "\n".join(f"  - {p}" for p in shown)
        rest = self.count - len(shown)
        tail = f"\n  ... and {rest} more" if rest > 0 else ""
        return f"{head}:\n{body}{tail}"

    def raise_if_any(self) -> None:
        if self:
            raise DatasetError(self.message())


def queries_without_valid_match(
    query_pids: np.ndarray, query_cams: np.ndarray, gallery_pids: np.ndarray, gallery_cams: np.ndarray
) -> int:
    """Count queries with no valid match in the gallery.

    A query has a valid match when the gallery holds a tracklet with the same pid (> 0) seen by a
    *different* camera: same-pid same-camera tracklets are junk under both MARS protocols, pid -1
    is junk and pid 0 (distractor) is never a match. Such queries have undefined AP; torchreid
    skips them silently, ``reid.eval`` counts them.
    """
    cams_of_pid: dict[int, set[int]] = defaultdict(set)
    for pid, cam in zip(np.asarray(gallery_pids).tolist(), np.asarray(gallery_cams).tolist()):
        if pid > 0:
            cams_of_pid[pid].add(cam)
    missing = 0
    for pid, cam in zip(np.asarray(query_pids).tolist(), np.asarray(query_cams).tolist()):
        cams = cams_of_pid.get(pid, set())
        if pid <= 0 or not (cams - {cam}):
            missing += 1
    return missing


def split_statistics(
    train_pids: np.ndarray,
    train_cams: np.ndarray,
    train_lengths: np.ndarray,
    test_pids: np.ndarray,
    test_cams: np.ndarray,
    test_lengths: np.ndarray,
    query_positions: np.ndarray,
    protocols: Sequence[str | Protocol] | None = None,
) -> dict:
    """Summary numbers of a video ReID dataset, from one entry per tracklet.

    Args:
        train_*/test_*: pid, camera and number of frames of each train / test tracklet.
        query_positions: 0-based positions of the query tracklets among the test tracklets.
        protocols: protocols (names or :class:`~reid.protocols.Protocol`) for which gallery size
            and queries without a valid match are given; ``None`` = every registered protocol.

    Returns:
        A JSON-ready dict: ``train`` (tracklets, ids, frames, cameras), ``test`` (tracklets, real
        ids (pid > 0), frames, cameras, junk = pid -1 and distractor = pid 0 tracklet counts),
        ``query`` (count) and per protocol ``gallery`` size and ``queries_without_valid_match``.
    """
    train_pids, train_cams = np.asarray(train_pids), np.asarray(train_cams)
    test_pids, test_cams = np.asarray(test_pids), np.asarray(test_cams)
    query_positions = np.asarray(query_positions, dtype=np.int64)
    is_query = np.zeros(len(test_pids), dtype=bool)
    is_query[query_positions] = True
    out = {
        "train": {
            "tracklets": int(len(train_pids)),
            "ids": int(len(np.unique(train_pids))),
            "frames": int(np.sum(train_lengths)),
            "cameras": int(len(np.unique(train_cams))),
        },
        "test": {
            "tracklets": int(len(test_pids)),
            "ids": int(len(np.unique(test_pids[test_pids > 0]))),
            "frames": int(np.sum(test_lengths)),
            "cameras": int(len(np.unique(test_cams))),
            "junk_tracklets": int(np.sum(test_pids == -1)),
            "distractor_tracklets": int(np.sum(test_pids == 0)),
        },
        "query": {"tracklets": int(len(query_positions))},
        "protocols": {},
    }
    qp, qc = test_pids[query_positions], test_cams[query_positions]
    for requested in (PROTOCOLS.names() if protocols is None else protocols):
        protocol = get_protocol(requested, key="protocols")
        g = protocol.gallery_mask(test_pids, is_query)
        out["protocols"][protocol.name] = {
            "gallery": int(g.sum()),
            "queries_without_valid_match": queries_without_valid_match(qp, qc, test_pids[g], test_cams[g]),
        }
    return out


__all__ = [
    "ErrorCollector",
    "queries_without_valid_match",
    "split_statistics",
]
