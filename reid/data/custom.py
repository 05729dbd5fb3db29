"""Your own tracklets: a CSV manifest (and a simple folder convention) read into the same
:class:`~reid.data.tracklet.VideoReIDData` as MARS.

CSV manifest, one row per frame, header required (extra columns are ignored)::

    path,pid,camid,tracklet_id,frame_index,split,is_query
    train/p7/c1_0/000.jpg,7,1,0,0,train,0
    train/p7/c1_0/001.jpg,7,1,0,1,train,0
    test/p3/c2_5/000.jpg,3,2,5,0,test,1
    test/p3/c1_9/000.jpg,3,1,9,0,test,0

* ``path``: the frame, relative to the manifest's folder or absolute.
* ``pid``, ``camid``: integers, kept as given (pid -1 = junk and 0 = distractor, as in MARS).
* ``tracklet_id``: any label; rows are grouped into tracklets by ``(split, pid, camid,
  tracklet_id)`` and ordered by ``frame_index`` (an integer, unique within a tracklet).
* ``split``: ``train`` or ``test``; ``is_query``: ``1`` marks a test tracklet as a query (all its
  rows must agree), ``0`` or empty otherwise; train rows must not be queries.

Protocols as for MARS (:mod:`reid.protocols`): ``official`` keeps the queries in the gallery (all
test tracklets); ``torchreid`` removes them and drops pid -1 from the gallery. Training
tracklets get contiguous labels (sorted unique train pids -> 0..n-1).

Folder convention (:func:`load_folder`)::

    ROOT/train/<pid>/<camid>_<tracklet>/<frames>.jpg
    ROOT/query/<pid>/<camid>_<tracklet>/<frames>.jpg
    ROOT/gallery/<pid>/<camid>_<tracklet>/<frames>.jpg

frames ordered by file name; ``query`` tracklets are test queries, ``gallery`` tracklets the
other test tracklets.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid.data.frames import CORRUPT_POLICIES, CorruptFramePolicy, FrameIssues, check_frames, existing_files
from reid.data.tracklet import DatasetError, Tracklet, VideoReIDData
from reid.data.validation import ErrorCollector
from reid.protocols import Protocol, get_protocol

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("path", "pid", "camid", "tracklet_id", "frame_index", "split", "is_query")
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FOLDER_PARTS = ("train", "query", "gallery")


def is_manifest(root: str | os.PathLike) -> bool:
    """``root`` is a ``.csv`` file (a manifest in the format above)."""
    p = Path(root)
    return p.is_file() and p.suffix.lower() == ".csv"


def is_folder_dataset(root: str | os.PathLike) -> bool:
    """``root`` is a folder with ``train/``, ``query/`` and ``gallery/`` sub-folders."""
    p = Path(root)
    return p.is_dir() and all((p / part).is_dir() for part in FOLDER_PARTS)


@dataclass
class _FrameRecord:
    path: str  # absolute
    pid: int
    camid: int
    tracklet_id: int | str
    frame_index: int
    split: str
    is_query: bool
    where: str  # "<file> line N" or the frame's path, for messages


def _parse_int(value: str, column: str, where: str, errors: ErrorCollector) -> int | None:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        errors.add(f"{where}: {column} {value!r} is not an integer")
        return None


def _tracklet_key(value: str) -> int | str:
    value = value.strip()
    try:
        return int(value)
    except ValueError:
        return value


def _read_manifest_records(csv_path: Path, errors: ErrorCollector) -> list[_FrameRecord]:
    folder = csv_path.absolute().parent
    records: list[_FrameRecord] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetError(f"{csv_path}: empty file; expected a header line {','.join(MANIFEST_COLUMNS)}") from None
        header = [h.strip() for h in header]
        missing = [c for c in MANIFEST_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"{csv_path} line 1: missing column(s) {missing}; the header is {header}, expected "
                f"the columns {','.join(MANIFEST_COLUMNS)} (any order, extra columns ignored)"
            )
        col = {c: header.index(c) for c in MANIFEST_COLUMNS}
        next_line = reader.line_num + 1
        for row in reader:
            line, next_line = next_line, reader.line_num + 1
            where = f"{csv_path} line {line}"
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) < len(header):
                errors.add(f"{where}: {len(row)} fields, the header has {len(header)}")
                continue
            n_err = errors.count
            path = row[col["path"]].strip()
            if not path:
                errors.add(f"{where}: empty path")
            pid = _parse_int(row[col["pid"]], "pid", where, errors)
            camid = _parse_int(row[col["camid"]], "camid", where, errors)
            frame_index = _parse_int(row[col["frame_index"]], "frame_index", where, errors)
            tracklet = row[col["tracklet_id"]].strip()
            if not tracklet:
                errors.add(f"{where}: empty tracklet_id")
            split = row[col["split"]].strip()
            if split not in SPLITS:
                errors.add(f"{where}: unknown split {split!r}; expected one of {SPLITS}")
            q = row[col["is_query"]].strip()
            if q not in ("", "0", "1"):
                errors.add(f"{where}: is_query {q!r}; expected 0 or 1 (or empty for 0)")
            elif q == "1" and split == "train":
                errors.add(f"{where}: a train row marked is_query=1; only test tracklets can be queries")
            if errors.count > n_err:
                continue
            full = path if os.path.isabs(path) else os.path.normpath(os.path.join(folder, path))
            records.append(
                _FrameRecord(full, pid, camid, _tracklet_key(tracklet), frame_index, split, q == "1", where)
            )
    return records


def _group_records(
    records: list[_FrameRecord], source: str, errors: ErrorCollector, by_query: bool = False
) -> list[tuple[tuple, list[_FrameRecord]]]:
    """Tracklets in order of first appearance, frames sorted by ``frame_index``; checks that
    rows of one tracklet agree on ``is_query`` and do not repeat a ``frame_index``.

    ``by_query`` keeps query and non-query frames apart even under the same key (the folder
    convention, where ``query/`` and ``gallery/`` may reuse a tracklet name)."""
    groups: dict[tuple, list[_FrameRecord]] = {}
    for rec in records:
        key = (rec.split, rec.pid, rec.camid, rec.tracklet_id) + ((rec.is_query,) if by_query else ())
        groups.setdefault(key, []).append(rec)
    out = []
    for key, recs in groups.items():
        split, pid, camid, tid = key[:4]
        desc = f"tracklet (split={split}, pid={pid}, camid={camid}, tracklet_id={tid})"
        disagree = [r for r in recs if r.is_query != recs[0].is_query]
        if disagree:
            errors.add(
                f"{disagree[0].where}: is_query={int(disagree[0].is_query)} but {recs[0].where} of the same "
                f"{desc} says is_query={int(recs[0].is_query)}; all rows of a tracklet must agree"
            )
        seen: dict[int, _FrameRecord] = {}
        for r in recs:
            if r.frame_index in seen:
                errors.add(
                    f"{r.where}: frame_index {r.frame_index} repeats {seen[r.frame_index].where} in the same "
                    f"{desc}; frame indices must be unique within a tracklet"
                )
            else:
                seen[r.frame_index] = r
        out.append((key[:4], sorted(recs, key=lambda r: r.frame_index)))
    return out


def _build(
    groups: list[tuple[tuple, list[_FrameRecord]]],
    source: str,
    name: str,
    root: Path,
    protocol: Protocol,
    validate: bool,
    check_files: bool,
    verify_frames: bool,
    policy: CorruptFramePolicy,
    workers: int,
    progress: bool,
    errors: ErrorCollector,
) -> VideoReIDData:
    # queries need something to match: another test tracklet with the same pid
    test_pid_count: dict[int, int] = {}
    for (split, pid, _, _), _recs in groups:
        if split == "test":
            test_pid_count[pid] = test_pid_count.get(pid, 0) + 1
    if validate:
        for (split, pid, camid, tid), recs in groups:
            if recs[0].is_query and test_pid_count.get(pid, 0) < 2:
                errors.add(
                    f"{recs[0].where}: query tracklet (pid={pid}, camid={camid}, tracklet_id={tid}) has no "
                    f"other test tracklet with pid {pid}, so it can never be matched; add its gallery "
                    f"tracklets or drop it from the queries"
                )
        if any(split == "test" for (split, *_), _ in groups) and not any(r[0].is_query for _, r in groups):
            errors.add(f"{source}: test rows but no query (set is_query=1 on the query tracklets' rows)")
    errors.raise_if_any()

    issues = FrameIssues(policy=policy.name)
    scan = verify_frames or policy.decode_at_load
    flat = [r for _, recs in groups for r in recs]
    keep = np.ones(len(flat), dtype=bool)
    if (validate and check_files) or scan:
        exists = existing_files([r.path for r in flat])
        for i in np.flatnonzero(~exists):
            if policy.drop_bad:
                issues.missing.append((flat[i].path, flat[i].where))
            else:
                errors.add(
                    f"{flat[i].where}: frame {flat[i].path} does not exist; fix the path (relative paths "
                    f"are resolved against the manifest's folder) or load with corrupt='skip'"
                )
        keep &= exists
    errors.raise_if_any()
    if scan:
        todo = np.flatnonzero(keep)
        bad = check_frames([flat[i].path for i in todo], workers=workers, desc="decoding frames", progress=progress)
        issues.scanned = len(todo)
        for k, p, reason in bad:
            if policy.drop_bad:
                keep[todo[k]] = False
                issues.corrupt.append((p, reason))
            else:
                errors.add(f"{flat[todo[k]].where}: frame {p}: {reason}; replace the file or load with corrupt='skip'")
        errors.raise_if_any()

    train: list[Tracklet] = []
    test: list[Tracklet] = []
    is_query: list[bool] = []
    pos = 0
    for row, ((split, pid, camid, tid), recs) in enumerate(groups):
        frames = tuple(r.path for r, ok in zip(recs, keep[pos : pos + len(recs)].tolist()) if ok)
        pos += len(recs)
        if not frames:
            issues.dropped_tracklets.append((split, row))
            continue
        t = Tracklet(frames, pid, camid, tid, row)
        if split == "train":
            train.append(t)
        else:
            test.append(t)
            is_query.append(recs[0].is_query)

    q = np.array(is_query, dtype=bool)
    g = protocol.gallery_mask(np.array([t.pid for t in test], dtype=np.int64), q)
    data = VideoReIDData.from_tracklets(
        name, root, protocol.name, train,
        query=[t for t, isq in zip(test, is_query) if isq],
        gallery=[t for t, keep_g in zip(test, g.tolist()) if keep_g],
        frame_issues=issues, corrupt=policy.name,
    )
    if issues.dropped_frames or issues.dropped_tracklets:
        log.warning("%s: %s", source, issues.summary())
    return data


def load_manifest(
    csv_path: str | os.PathLike,
    protocol: str | Protocol = "official",
    validate: bool = True,
    check_files: bool = True,
    verify_frames: bool = False,
    corrupt: str = "error",
    workers: int = 4,
    progress: bool = True,
) -> VideoReIDData:
    """Load a CSV manifest (format in the module docstring) into train / query / gallery.

    Validation collects every problem, each naming the manifest and the 1-based CSV line:
    missing columns, non-integer pid / camid / frame_index, unknown split, bad ``is_query``,
    rows of one tracklet disagreeing on ``is_query``, a repeated ``frame_index`` within a
    tracklet, missing frame files, and queries with no other test tracklet of the same pid.
    ``verify_frames`` / ``corrupt`` behave as in :func:`reid.data.mars.load_mars`.

    Tracklet ``row`` is the tracklet's 0-based order of first appearance in the manifest.
    """
    # resolved once here; the builder below receives the objects
    protocol = get_protocol(protocol)
    policy = CORRUPT_POLICIES.get(corrupt, key="corrupt")
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: manifest file not found")
    errors = ErrorCollector(f"manifest {csv_path}")
    records = _read_manifest_records(csv_path, errors)
    if not records and not errors:
        raise DatasetError(f"{csv_path}: the manifest has a header but no rows")
    groups = _group_records(records, str(csv_path), errors)
    return _build(
        groups, str(csv_path), csv_path.stem, csv_path.absolute().parent, protocol, validate,
        check_files, verify_frames, policy, workers, progress, errors,
    )


def load_folder(
    root: str | os.PathLike,
    protocol: str | Protocol = "official",
    validate: bool = True,
    verify_frames: bool = False,
    corrupt: str = "error",
    workers: int = 4,
    progress: bool = True,
) -> VideoReIDData:
    """Load the folder convention ``ROOT/{train,query,gallery}/<pid>/<camid>_<tracklet>/<frame>``.

    Frames are the image files of a tracklet folder (``.jpg .jpeg .png .bmp .webp``) in file-name
    order. ``query`` tracklets are test queries; ``gallery`` tracklets the other test tracklets.
    A folder name that does not fit the convention is an error naming it. The frames come from
    listing the folders, so they exist: there is no separate file check.
    """
    protocol = get_protocol(protocol)
    policy = CORRUPT_POLICIES.get(corrupt, key="corrupt")
    root = Path(root)
    errors = ErrorCollector(f"dataset folder {root}")
    if not is_folder_dataset(root):
        raise DatasetError(f"{root}: expected sub-folders train/, query/ and gallery/ (see reid.data.custom)")
    records: list[_FrameRecord] = []
    for part in FOLDER_PARTS:
        for pid_dir in sorted((root / part).iterdir()):
            if not pid_dir.is_dir():
                continue
            try:
                pid = int(pid_dir.name)
            except ValueError:
                errors.add(f"{pid_dir}: folder name is not an integer pid")
                continue
            for tdir in sorted(pid_dir.iterdir()):
                if not tdir.is_dir():
                    continue
                cam, _, tid = tdir.name.partition("_")
                try:
                    camid = int(cam)
                except ValueError:
                    errors.add(f"{tdir}: expected a folder named <camid>_<tracklet>, e.g. 1_0003")
                    continue
                if not tid:
                    errors.add(f"{tdir}: expected a folder named <camid>_<tracklet>, e.g. 1_0003")
                    continue
                frames = sorted(p for p in tdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if not frames:
                    errors.add(f"{tdir}: no image files")
                split = "train" if part == "train" else "test"
                for i, fp in enumerate(frames):
                    records.append(
                        _FrameRecord(str(fp.absolute()), pid, camid, _tracklet_key(tid), i, split,
                                     part == "query", str(fp))
                    )
    errors.raise_if_any()
    groups = _group_records(records, str(root), errors, by_query=True)
    return _build(
        groups, str(root), root.name, root, protocol, validate, False, verify_frames, policy,
        workers, progress, errors,
    )


__all__ = ["MANIFEST_COLUMNS", "is_folder_dataset", "is_manifest", "load_folder", "load_manifest"]
