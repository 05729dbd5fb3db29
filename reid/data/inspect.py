"""What a dataset holds, validated: the library behind ``tools/inspect_dataset.py``.

:func:`inspect_dataset` runs the same validation the trainer does (through
:func:`reid.data.build.build_data`: name lists vs tables, frame names vs pid / camera,
contiguous tracks, query rows, files present, optionally every frame decoded) and returns the
split sizes, junk / distractor counts, and per protocol the gallery size and the number of
queries without a valid (cross-camera, real-id) match (:func:`reid.data.validation.split_statistics`).
:func:`format_summary` prints that dict as a table. Invalid data raises
:class:`~reid.data.tracklet.DatasetError`.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from reid.data.build import build_data, detect_format
from reid.data.mars_index import find_info_dir, read_mars_index
from reid.data.tracklet import Tracklet, VideoReIDData
from reid.data.validation import split_statistics
from reid.protocols import Protocol


def _index_statistics(root: str | os.PathLike, protocols: Sequence[str | Protocol] | None) -> dict:
    """Statistics from the MARS ``.mat`` tables alone (no name lists, no images)."""
    index = read_mars_index(root, validate=True)
    train, test = index.train, index.test
    return split_statistics(
        train[:, 2], train[:, 3], train[:, 1] - train[:, 0] + 1,
        test[:, 2], test[:, 3], test[:, 1] - test[:, 0] + 1,
        index.query_rows, protocols,
    )


def _data_statistics(data: VideoReIDData, protocols: Sequence[str | Protocol] | None) -> dict:
    """Statistics of data loaded under ``official`` (the gallery is every test tracklet, the
    queries included, as the same objects)."""
    test = data.gallery
    position = {id(t): i for i, t in enumerate(test)}
    query_positions = np.array([position[id(t)] for t in data.query], dtype=np.int64)

    def column(ts: list[Tracklet], attr: str) -> np.ndarray:
        return np.array([getattr(t, attr) for t in ts], dtype=np.int64)

    def lengths(ts: list[Tracklet]) -> np.ndarray:
        return np.array([len(t) for t in ts], dtype=np.int64)

    return split_statistics(
        column(data.train, "pid"), column(data.train, "camid"), lengths(data.train),
        column(test, "pid"), column(test, "camid"), lengths(test), query_positions, protocols,
    )


def inspect_dataset(
    root: str | os.PathLike,
    index_only: bool = False,
    protocols: Sequence[str | Protocol] | None = None,
    verify_frames: bool = False,
    progress: bool = True,
    format_options: dict | None = None,
) -> dict:
    """Validate the dataset at ``root`` and summarise it.

    Args:
        root: anything :func:`~reid.data.build.build_data` reads; with ``index_only`` a MARS root
            or its ``info/`` folder.
        index_only: read only the MARS ``.mat`` tables (validated).
        protocols: protocols to report gallery sizes for; ``None`` = every registered protocol.
        verify_frames: also decode every frame (minutes on real MARS).
        progress: show progress bars.
        format_options: the format's own options (``data.format_options``, e.g.
            ``{"split_index": 3}`` for iLIDS-VID / PRID-2011).

    Returns:
        ``{"root", "format", "kind", "train", "test", "query", "protocols"}`` (see
        :func:`~reid.data.validation.split_statistics`; ``kind`` is ``"image"`` when every
        tracklet is one frame, else ``"video"``), plus ``format_options`` when given and
        ``frames_decoded`` when frames were decoded.
    """
    if index_only:
        stats = _index_statistics(root, protocols)
        return {"root": str(find_info_dir(root)), "format": "mars (index only)", **stats}
    fmt = detect_format(root)
    options = dict(format_options or {})
    data = build_data(root, fmt=fmt, protocol="official", verify_frames=verify_frames, progress=progress, **options)
    every = data.train + data.gallery
    kind = "image" if every and all(len(t) == 1 for t in every) else "video"
    out = {"root": str(root), "format": fmt, "kind": kind, **_data_statistics(data, protocols)}
    if options:
        out["format_options"] = options
    issues = data.frame_issues
    if issues is not None and issues.scanned:
        out["frames_decoded"] = issues.scanned
    return out


def format_summary(summary: dict) -> str:
    """The :func:`inspect_dataset` dict as a text table."""
    tr, te = summary["train"], summary["test"]
    options = "".join(f", {k}={v}" for k, v in summary.get("format_options", {}).items())
    rows = [
        f"dataset: {summary['root']} ({summary['format']}{options})",
        *(["images: one-frame tracklets (tracklets = images)"] if summary.get("kind") == "image" else []),
        "",
        f"{'split':<8}{'tracklets':>11}{'ids':>8}{'frames':>11}{'cameras':>9}",
        f"{'train':<8}{tr['tracklets']:>11}{tr['ids']:>8}{tr['frames']:>11}{tr['cameras']:>9}",
        f"{'test':<8}{te['tracklets']:>11}{te['ids']:>8}{te['frames']:>11}{te['cameras']:>9}   (ids: pid > 0)",
        "",
        f"queries:                      {summary['query']['tracklets']}",
        f"junk tracklets (pid -1):      {te['junk_tracklets']}",
        f"distractor tracklets (pid 0): {te['distractor_tracklets']}",
        "",
        f"{'protocol':<12}{'gallery':>9}   queries without a valid match",
    ]
    for name, p in summary["protocols"].items():
        rows.append(f"{name:<12}{p['gallery']:>9}   {p['queries_without_valid_match']}")
    rows.append("")
    rows.append("official: queries stay in the gallery; torchreid: queries and pid -1 removed from it.")
    rows.append("valid match: same pid > 0 seen by a different camera.")
    if "frames_decoded" in summary:
        rows.append(f"frames decoded without error: {summary['frames_decoded']}")
    return "\n".join(rows)


__all__ = ["format_summary", "inspect_dataset"]
