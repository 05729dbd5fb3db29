"""Reader for the official MARS video ReID layout (Zheng et al., "MARS: A Video Benchmark for
Large-Scale Person Re-identification", ECCV 2016): :func:`load_mars`.

The layout, file names and frame-name convention are spelled in :mod:`reid.data.mars_format`;
reading and validating the ``.mat`` tables and name lists is :mod:`reid.data.mars_index`. This
module turns them into tracklets: one slice of the frame-path list per table row.

Protocols (:func:`split_query_gallery`, from the index alone, rules in :mod:`reid.protocols`):

* ``official`` (the MARS-evaluation MATLAB code): query = the ``query_IDX`` rows; gallery = all
  12180 test rows, queries included (the scorer treats same-pid same-camera as junk).
* ``torchreid``: query = the ``query_IDX`` rows; gallery = test rows minus query rows minus junk
  rows (pid -1): 9330 tracklets on MARS, which leaves 140 queries without a cross-camera match.

Pids and cameras are kept exactly as the files give them; training tracklets additionally get a
contiguous ``label`` (:func:`reid.data.tracklet.assign_train_labels`: sorted unique train pids ->
0..n-1; MARS's 625 train ids -> labels 0..624).

Speed: real MARS lists 1.19M frame names. Paths are built with one join over the byte array of
names, existence is one directory listing per identity folder
(:func:`reid.data.frames.existing_files`), and tracklets are slices of one path list.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid.data.frames import CORRUPT_POLICIES, CorruptFramePolicy, FrameIssues, check_frames, existing_files
from reid.data.mars_format import (
    BBOX_DIRS,
    INFO_DIR,
    INFO_MARKER,
    LAYOUT_HINT,
    NAME_FILES,
    PID_CODE_LENGTH,
    SPLITS,
    tracklet_number,
)
from reid.data.mars_index import check_frame_names, check_slice_ranges, read_mars_index, read_name_list, validate_index
from reid.data.tracklet import DatasetError, Tracklet, VideoReIDData
from reid.data.validation import ErrorCollector
from reid.protocols import Protocol, get_protocol

log = logging.getLogger(__name__)


def is_mars_root(root: str | os.PathLike) -> bool:
    """``root`` is a folder whose ``info/`` holds ``tracks_test_info.mat`` (what marks MARS)."""
    p = Path(root)
    return p.is_dir() and (p / INFO_DIR / INFO_MARKER).is_file()


def split_query_gallery(
    test_table: np.ndarray, query_rows: np.ndarray, protocol: str | Protocol = "official"
) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery rows (0-based, ascending for the gallery) of the test table.

    The gallery is :meth:`reid.protocols.Protocol.gallery_mask` of the test pids (``official``:
    every test row, queries included; ``torchreid``: test rows that are neither queries nor junk,
    pid -1). Query rows are returned in ``query_IDX`` order.
    """
    protocol = get_protocol(protocol)
    query_rows = np.asarray(query_rows, dtype=np.int64)
    is_query = np.zeros(len(test_table), dtype=bool)
    is_query[query_rows] = True
    gallery = np.flatnonzero(protocol.gallery_mask(np.asarray(test_table)[:, 2], is_query))
    return query_rows.copy(), gallery


@dataclass
class _SplitFrames:
    """One split while loading: its table, name list, every frame's path, and which frames are
    kept (the corrupt-frame policy ``skip`` clears entries)."""

    split: str
    table: np.ndarray
    table_path: Path
    name_path: Path
    names: np.ndarray
    paths: list[str]  # absolute, one per name-list line
    frame_line: np.ndarray  # 0-based name-list line of every frame of every row, in row order
    frame_row: np.ndarray  # the row each of those frames belongs to
    keep: np.ndarray  # bool per name-list line

    def track_length(self, row: int) -> int:
        return int(self.table[row, 1] - self.table[row, 0] + 1)


def _frame_layout(table: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the given rows, the 0-based name-list line of every frame and the row it belongs to
    (vectorised: concatenated ``arange(start-1, end)`` without a Python loop)."""
    starts = table[rows, 0] - 1
    lens = table[rows, 1] - table[rows, 0] + 1
    total = int(lens.sum())
    offsets = np.repeat(np.cumsum(lens) - lens, lens)
    frame_line = np.arange(total, dtype=np.int64) - offsets + np.repeat(starts, lens)
    frame_row = np.repeat(rows, lens)
    return frame_line, frame_row


def _frame_paths(root: Path, split: str, names: np.ndarray) -> list[str]:
    """Absolute path (str) of every name: ``root/bbox_<split>/<pid code>/<name>``."""
    if len(names) == 0:
        return []
    rel = np.char.add(np.char.add(names.astype(f"S{PID_CODE_LENGTH}"), b"/"), names)
    base = os.fsencode(str(root / BBOX_DIRS[split])) + b"/"
    # one join + one decode for all paths instead of 1.19M os.fsdecode calls (names hold no
    # newline: they came from splitting lines); surrogateescape is what os.fsdecode uses
    joined = base + (b"\n" + base).join(rel.tolist())
    return joined.decode(sys.getfilesystemencoding(), "surrogateescape").split("\n")


def _group_by_row(
    positions: np.ndarray, frame_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, first, counts = np.unique(frame_row[positions], return_index=True, return_counts=True)
    return rows, positions[first], counts


def _check_files_exist(
    root: Path, sp: _SplitFrames, policy: CorruptFramePolicy, issues: FrameIssues, errors: ErrorCollector
) -> None:
    """Missing frames: dropped (and recorded) under a dropping policy, errors otherwise."""
    split_dir = root / BBOX_DIRS[sp.split]
    if not split_dir.is_dir():
        errors.add(f"{split_dir}: folder not found; {LAYOUT_HINT}")
        return
    missing = np.flatnonzero(~existing_files(sp.paths)[sp.frame_line])
    if len(missing) == 0:
        return
    lines = sp.frame_line[missing]
    if policy.drop_bad:
        sp.keep[lines] = False
        issues.missing.extend((sp.paths[i], f"line {i + 1} of {sp.name_path}") for i in lines.tolist())
        return
    mrows, mfirst, mcounts = _group_by_row(missing, sp.frame_row)
    errors.add_many(
        [f"{sp.paths[sp.frame_line[i]]} does not exist (line {sp.frame_line[i] + 1} of {sp.name_path}, "
         f"row {r + 1} of {sp.table_path}; {c} of {sp.track_length(r)} frames of this track "
         f"missing). Copy the complete {BBOX_DIRS[sp.split]} folder, or load with corrupt='skip' to drop "
         f"missing frames" for r, i, c in zip(mrows[:10], mfirst[:10], mcounts[:10])],
        total=len(mrows),
    )


def _decode_scan(
    sp: _SplitFrames, policy: CorruptFramePolicy, issues: FrameIssues, errors: ErrorCollector,
    workers: int, progress: bool,
) -> None:
    """Decode every kept frame; undecodable ones are dropped or become errors."""
    todo = sp.frame_line[sp.keep[sp.frame_line]]
    todo_paths = [sp.paths[i] for i in todo.tolist()]
    issues.scanned += len(todo_paths)
    bad = check_frames(todo_paths, workers=workers, desc=f"decoding MARS {sp.split} frames", progress=progress)
    if not bad:
        return
    if policy.drop_bad:
        sp.keep[todo[[b[0] for b in bad]]] = False
        issues.corrupt.extend((p, reason) for _, p, reason in bad)
        return
    line_to_row = dict(zip(sp.frame_line.tolist(), sp.frame_row.tolist()))
    errors.add_many(
        [f"{p}: {reason} (line {todo[k] + 1} of {sp.name_path}, row {line_to_row[int(todo[k])] + 1} of "
         f"{sp.table_path}). Re-extract this file from the MARS archive, or load with corrupt='skip' "
         f"to drop unreadable frames" for k, p, reason in bad[:10]],
        total=len(bad),
    )


def _tracklets(sp: _SplitFrames, issues: FrameIssues) -> list[Tracklet | None]:
    """One tracklet per table row (None where every frame was dropped), row order."""
    dropped_any = not sp.keep.all()
    out: list[Tracklet | None] = []
    for r, (s, e, pid, cam) in enumerate(sp.table.tolist()):
        frames = sp.paths[s - 1 : e]
        if dropped_any and not sp.keep[s - 1 : e].all():
            frames = [f for f, ok in zip(frames, sp.keep[s - 1 : e].tolist()) if ok]
            if not frames:
                issues.dropped_tracklets.append((sp.split, r))
                out.append(None)
                continue
        number = tracklet_number(sp.names[s - 1])
        out.append(Tracklet(tuple(frames), int(pid), int(cam), r if number is None else number, r))
    return out


def load_mars(
    root: str | os.PathLike,
    protocol: str | Protocol = "official",
    validate: bool = True,
    check_files: bool = True,
    verify_frames: bool = False,
    corrupt: str = "error",
    workers: int = 4,
    progress: bool = True,
) -> VideoReIDData:
    """Load MARS from ``root`` into train / query / gallery tracklets under ``protocol``.

    Args:
        root: dataset root holding ``bbox_train/``, ``bbox_test/`` and ``info/``.
        protocol: a name in :data:`reid.protocols.PROTOCOLS` (``"official"``, ``"torchreid"``) or
            a :class:`~reid.protocols.Protocol` (see :func:`split_query_gallery`).
        validate: check before returning: name lists agree with the tables (lengths, every
            frame's pid and camera characters), indices in range, tracks contiguous and
            non-overlapping, query rows in range and unique; with ``check_files`` also that every
            frame file exists. All problems are collected into one :class:`DatasetError` naming
            file and 1-based row / line. Index ranges are always checked.
        check_files: check that every frame exists (one directory listing per identity folder).
        verify_frames: decode every frame up front (slow on real MARS: minutes) and fail on
            undecodable ones (``corrupt="error"``).
        corrupt: a name in :data:`reid.data.frames.CORRUPT_POLICIES`; ``"skip"`` always decodes
            every frame, drops missing and undecodable frames and tracklets left empty, and
            reports them (logged, and kept in the returned object's ``frame_issues`` attribute,
            a :class:`FrameIssues`).
        workers: decoding threads for the frame scan.
        progress: show progress bars.

    Returns:
        :class:`VideoReIDData` named ``"mars"`` with ``protocol`` and ``corrupt`` recorded;
        ``train`` tracklets carry contiguous labels (sorted unique train pids -> 0..n-1), pids
        and cameras are as in the tables, and the test tracklets in ``query`` and ``gallery`` are
        shared objects.
    """
    # resolved once here; everything below receives the objects
    protocol = get_protocol(protocol)
    policy = CORRUPT_POLICIES.get(corrupt, key="corrupt")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; {LAYOUT_HINT}")
    subject = f"MARS dataset at {root}"
    info = root / INFO_DIR
    index = read_mars_index(info, validate=False)
    name_paths = {s: info / NAME_FILES[s] for s in SPLITS}
    names = {s: read_name_list(name_paths[s]) for s in SPLITS}

    # 1. structure (always: slicing with bad ranges would silently build wrong tracklets)
    errors = ErrorCollector(subject)
    name_counts = {s: len(names[s]) for s in SPLITS}
    if validate:
        validate_index(index, errors, name_counts, name_paths)
    else:
        check_slice_ranges(index, errors, name_counts, name_paths)
    errors.raise_if_any()

    splits: dict[str, _SplitFrames] = {}
    for s in SPLITS:
        table = index.table(s)
        frame_line, frame_row = _frame_layout(table, np.arange(len(table)))
        splits[s] = _SplitFrames(
            s, table, index.table_path(s), name_paths[s], names[s], _frame_paths(root, s, names[s]),
            frame_line, frame_row, np.ones(len(names[s]), dtype=bool),
        )

    # 2. names and files
    issues = FrameIssues(policy=policy.name)
    scan = verify_frames or policy.decode_at_load
    errors = ErrorCollector(subject)
    for sp in splits.values():
        if validate:
            check_frame_names(sp.names, sp.table, sp.frame_line, sp.frame_row, sp.table_path, sp.name_path, errors)
        if (validate and check_files) or scan:
            _check_files_exist(root, sp, policy, issues, errors)
    errors.raise_if_any()

    # 3. decode scan (frames that exist)
    if scan:
        for sp in splits.values():
            _decode_scan(sp, policy, issues, errors, workers, progress)
        errors.raise_if_any()

    # 4. tracklets, split under the protocol
    train = [t for t in _tracklets(splits["train"], issues) if t is not None]
    test = _tracklets(splits["test"], issues)
    query_rows, gallery_rows = split_query_gallery(index.test, index.query_rows, protocol)
    data = VideoReIDData.from_tracklets(
        "mars", root, protocol.name, train,
        query=[test[r] for r in query_rows.tolist() if test[r] is not None],
        gallery=[test[r] for r in gallery_rows.tolist() if test[r] is not None],
        frame_issues=issues, corrupt=policy.name,
    )
    if issues.dropped_frames or issues.dropped_tracklets:
        log.warning("MARS at %s: %s", root, issues.summary())
    return data


__all__ = ["is_mars_root", "load_mars", "split_query_gallery"]
