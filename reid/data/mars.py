"""Reader for the official MARS video ReID layout (Zheng et al., "MARS: A Video Benchmark for
Large-Scale Person Re-identification", ECCV 2016).

Layout under one root::

    ROOT/bbox_train/<id4>/<name>.jpg          e.g. bbox_train/0001/0001C1T0001F001.jpg
    ROOT/bbox_test/<id4>/<name>.jpg           test junk lives in bbox_test/00-1/
    ROOT/info/train_name.txt                  one frame name per line; line k is index k (1-based)
    ROOT/info/test_name.txt
    ROOT/info/tracks_train_info.mat           variable track_train_info, N x 4
    ROOT/info/tracks_test_info.mat            variable track_test_info,  M x 4
    ROOT/info/query_IDX.mat                   variable query_IDX, 1 x 1980

Table columns are ``[start, end, pid, camid]``: 1-based inclusive line numbers into the split's
name list, the person id and the camera. ``query_IDX`` holds 1-based rows of the test table. A
frame name ``0001C1T0001F001.jpg`` reads: characters 0-3 the pid (``00-1`` for junk, pid -1),
character 5 the camera digit, ``T0001`` the tracklet number, ``F001`` the frame number; the frame
sits in ``bbox_<split>/<first 4 characters of its name>/``.

Protocols (:func:`split_query_gallery`, from the index alone):

* ``official`` (the MARS-evaluation MATLAB code): query = the ``query_IDX`` rows; gallery = all
  12180 test rows, queries included (the scorer treats same-pid same-camera as junk).
* ``torchreid``: query = the ``query_IDX`` rows; gallery = test rows minus query rows minus junk
  rows (pid -1): 9330 tracklets on MARS, which leaves 140 queries without a cross-camera match.

Pids and cameras are kept exactly as the files give them; training tracklets additionally get a
contiguous ``label`` (:func:`reid.data.tracklet.assign_train_labels`: sorted unique train pids ->
0..n-1; MARS's 625 train ids -> labels 0..624).

Speed: real MARS lists 1.19M frame names. Names are held as one fixed-width byte array, checked
against the tables with numpy (one comparison over all frames, not a Python loop), and tracklets
are slices of one path list.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from reid.data.frames import FrameIssues, check_frames, check_policy
from reid.data.tracklet import DatasetError, Tracklet, VideoReIDData
from reid.data.validation import ErrorCollector, check_protocol, gallery_mask

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
TRACK_FILES = {
    "train": ("tracks_train_info.mat", "track_train_info"),
    "test": ("tracks_test_info.mat", "track_test_info"),
}
NAME_FILES = {"train": "train_name.txt", "test": "test_name.txt"}
QUERY_FILE, QUERY_KEY = "query_IDX.mat", "query_IDX"
TABLE_COLUMNS = ("start", "end", "pid", "camid")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_LAYOUT_HINT = (
    "expected the MARS layout ROOT/{bbox_train,bbox_test}/<id4>/<frame>.jpg and "
    "ROOT/info/{train_name.txt,test_name.txt,tracks_train_info.mat,tracks_test_info.mat,query_IDX.mat}"
)


# --------------------------------------------------------------------------------------------
# index (.mat) files


@dataclass(frozen=True)
class MarsIndex:
    """The three MARS index tables.

    Attributes:
        train: ``(N, 4)`` int64 ``[start, end, pid, camid]``, 1-based inclusive as in the file.
        test: ``(M, 4)`` int64, same columns.
        query_rows: ``(Q,)`` int64, **0-based** rows of ``test`` (the file is 1-based).
        info_dir: folder the tables were read from (for error messages).
    """

    train: np.ndarray
    test: np.ndarray
    query_rows: np.ndarray
    info_dir: Path

    def table(self, split: str) -> np.ndarray:
        return self.train if split == "train" else self.test

    def table_path(self, split: str) -> Path:
        return self.info_dir / TRACK_FILES[split][0]


def find_info_dir(path: str | os.PathLike) -> Path:
    """The MARS ``info`` folder: ``path`` itself when it holds ``tracks_test_info.mat``, else
    ``path/info``. Raises :class:`DatasetError` when neither does."""
    p = Path(path)
    for cand in (p, p / "info"):
        if (cand / TRACK_FILES["test"][0]).is_file():
            return cand
    raise DatasetError(
        f"{p}: no {TRACK_FILES['test'][0]} here or in {p / 'info'}; {_LAYOUT_HINT}"
    )


def _read_mat_hdf5(path: Path, key: str) -> np.ndarray:
    try:
        import h5py  # optional: only MATLAB v7.3 files need it
    except ImportError:
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read. Re-save it in MATLAB "
            f"with save('{path.name}', '{key}', '-v7'), or `pip install h5py` to read it as is."
        ) from None
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DatasetError(f"{path}: variable '{key}' not found; variables present: {sorted(f.keys())}")
            # MATLAB stores column-major: h5py sees the transpose
            return np.asarray(f[key][()]).T
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read this HDF5 .mat file ({type(exc).__name__}: {exc})") from None


def read_mat_variable(path: str | os.PathLike, key: str) -> np.ndarray:
    """Read one variable of a ``.mat`` file with :func:`scipy.io.loadmat`.

    MATLAB v7.3 files are HDF5: read with ``h5py`` when it is installed, otherwise a
    :class:`DatasetError` says how to re-save the file. A truncated or non-MAT file gives a
    :class:`DatasetError` naming it, never a bare scipy traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found; {_LAYOUT_HINT}")
    with open(path, "rb") as f:
        head = f.read(520)
    if b"MATLAB 7.3" in head[:128] or head[512:520] == _HDF5_SIGNATURE or head[:8] == _HDF5_SIGNATURE:
        return _read_mat_hdf5(path, key)
    try:
        contents = scipy.io.loadmat(str(path), variable_names=[key])
    except NotImplementedError:  # scipy's own v7.3 detection
        return _read_mat_hdf5(path, key)
    except Exception as exc:
        raise DatasetError(
            f"{path}: cannot read this .mat file ({type(exc).__name__}: {exc}). It is truncated or "
            f"not a MATLAB file; copy it again from the MARS release (info/ folder)."
        ) from None
    if key not in contents:
        try:
            present = [name for name, *_ in scipy.io.whosmat(str(path))]
        except Exception:
            present = []
        raise DatasetError(f"{path}: variable '{key}' not found; variables present: {present}")
    return np.asarray(contents[key])


def _as_integer_array(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    if arr.dtype.kind not in "iuf":
        raise DatasetError(f"{path}: variable '{key}' has dtype {arr.dtype}; expected numbers")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            r = int(np.argwhere(bad)[0][0])
            raise DatasetError(
                f"{path}: variable '{key}' row {r + 1} holds a non-integer value {arr[bad][0]!r}; "
                f"indices, pids and cameras must be whole numbers"
            )
    return arr.astype(np.int64)


def read_track_table(path: str | os.PathLike, key: str) -> np.ndarray:
    """Read an ``N x 4`` MARS track table ``[start, end, pid, camid]`` as int64."""
    path = Path(path)
    arr = read_mat_variable(path, key)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DatasetError(
            f"{path}: variable '{key}' has shape {arr.shape}; expected N x 4 columns {list(TABLE_COLUMNS)}"
        )
    return _as_integer_array(arr, path, key)


def read_mars_index(info_dir: str | os.PathLike, validate: bool = True) -> MarsIndex:
    """Read the three MARS ``.mat`` index files (no name lists, no images needed).

    Args:
        info_dir: the ``info`` folder, or the dataset root holding it.
        validate: check the tables (indices positive, start <= end, tracks contiguous and
            non-overlapping, query rows in range and unique) and raise :class:`DatasetError`
            listing the problems.
    """
    info = find_info_dir(info_dir)
    train = read_track_table(info / TRACK_FILES["train"][0], TRACK_FILES["train"][1])
    test = read_track_table(info / TRACK_FILES["test"][0], TRACK_FILES["test"][1])
    qpath = info / QUERY_FILE
    q = read_mat_variable(qpath, QUERY_KEY)
    if q.ndim > 2 or (q.ndim == 2 and min(q.shape) > 1):
        raise DatasetError(f"{qpath}: variable '{QUERY_KEY}' has shape {q.shape}; expected a 1 x Q vector")
    query_rows = _as_integer_array(q.reshape(-1), qpath, QUERY_KEY) - 1
    index = MarsIndex(train=train, test=test, query_rows=query_rows, info_dir=info)
    if validate:
        errors = ErrorCollector(f"MARS index in {info}")
        validate_index(index, errors)
        errors.raise_if_any()
    return index


# --------------------------------------------------------------------------------------------
# validation of the tables (index only)


def _valid_rows(table: np.ndarray, n_names: int | None) -> np.ndarray:
    start, end = table[:, 0], table[:, 1]
    ok = (start >= 1) & (start <= end)
    if n_names is not None:
        ok &= end <= n_names
    return ok


def _validate_table(
    split: str, table: np.ndarray, table_path: Path, errors: ErrorCollector,
    n_names: int | None = None, name_path: Path | None = None,
) -> None:
    start, end, pid = table[:, 0], table[:, 1], table[:, 2]
    rows = np.arange(len(table))
    msgs: list[str] = []
    for r in rows[start < 1]:
        msgs.append(f"{table_path} row {r + 1}: start index {start[r]} < 1 (indices are 1-based line numbers)")
    for r in rows[(start >= 1) & (start > end)]:
        msgs.append(f"{table_path} row {r + 1}: start {start[r]} > end {end[r]} (an empty or reversed track)")
    if n_names is not None:
        for r in rows[(start >= 1) & (start <= end) & (end > n_names)]:
            msgs.append(
                f"{table_path} row {r + 1}: track ends at line {end[r]} but {name_path} has only "
                f"{n_names} lines; the name list is shorter than the table (truncated copy, or the "
                f"wrong split's list)"
            )
    if split == "train":
        for r in rows[pid < 0]:
            msgs.append(f"{table_path} row {r + 1}: pid {pid[r]} in the training split (junk ids are test-only)")
    else:
        for r in rows[pid < -1]:
            msgs.append(f"{table_path} row {r + 1}: pid {pid[r]}; MARS pids are -1 (junk), 0 (distractor) or > 0")
    errors.add_many(msgs)

    # contiguity: in start order, each track begins right after the previous one ends
    ok = _valid_rows(table, n_names)
    vrows = rows[ok]
    if len(vrows) == 0:
        if len(table) == 0:
            errors.add(f"{table_path}: the table has no rows")
        return
    order = vrows[np.argsort(start[vrows], kind="stable")]
    s, e = start[order], end[order]
    run_max = np.maximum.accumulate(e)
    # position (in `order`) of the track holding the running maximum end
    holder = np.maximum.accumulate(np.where(e == run_max, np.arange(len(e)), 0))
    msgs = []
    if s[0] > 1:
        msgs.append(
            f"{table_path}: lines 1-{s[0] - 1} of {name_path or NAME_FILES[split]} belong to no track "
            f"(the first track, row {order[0] + 1}, starts at line {s[0]}); tracks must cover the name list contiguously"
        )
    prev_end, prev_row = run_max[:-1], order[holder[:-1]]
    cur_s, cur_e, cur_row = s[1:], e[1:], order[1:]
    overlap = np.flatnonzero(cur_s <= prev_end)
    gap = np.flatnonzero(cur_s > prev_end + 1)
    for k in overlap:
        msgs.append(
            f"{table_path} row {cur_row[k] + 1}: lines {cur_s[k]}-{cur_e[k]} overlap row {prev_row[k] + 1} "
            f"(which ends at line {prev_end[k]}); each frame belongs to exactly one track"
        )
    for k in gap:
        msgs.append(
            f"{table_path} row {cur_row[k] + 1}: starts at line {cur_s[k]} but the previous track "
            f"(row {prev_row[k] + 1}) ends at line {prev_end[k]}: lines {prev_end[k] + 1}-{cur_s[k] - 1} of "
            f"{name_path or NAME_FILES[split]} belong to no track; tracks must be contiguous"
        )
    errors.add_many(msgs)
    if n_names is not None and run_max[-1] < n_names and not (end > n_names).any():
        errors.add(
            f"{name_path} has {n_names} lines but {table_path} uses only lines 1-{run_max[-1]}: "
            f"lines {run_max[-1] + 1}-{n_names} belong to no track; the name list does not match the table"
        )


def validate_index(
    index: MarsIndex, errors: ErrorCollector, name_counts: dict[str, int] | None = None,
    name_paths: dict[str, Path] | None = None,
) -> None:
    """Add to ``errors`` every structural problem of the tables (and, given the name-list
    lengths, of their agreement with the name lists)."""
    for split in SPLITS:
        _validate_table(
            split, index.table(split), index.table_path(split), errors,
            None if name_counts is None else name_counts[split],
            None if name_paths is None else name_paths[split],
        )
    qpath = index.info_dir / QUERY_FILE
    q, m = index.query_rows, len(index.test)
    msgs = []
    for k in np.flatnonzero((q < 0) | (q >= m)):
        msgs.append(
            f"{qpath} entry {k + 1}: query row {q[k] + 1} is outside the {m} rows of "
            f"{index.table_path('test')} (query_IDX holds 1-based test-table rows)"
        )
    uniq, first, counts = np.unique(q, return_index=True, return_counts=True)
    for u, f, c in zip(uniq[counts > 1], first[counts > 1], counts[counts > 1]):
        dup = np.flatnonzero(q == u) + 1
        msgs.append(f"{qpath}: test row {u + 1} is listed {c} times (entries {', '.join(map(str, dup[:5]))}); queries must be unique")
    if len(q) == 0:
        msgs.append(f"{qpath}: no query rows")
    errors.add_many(msgs)


def split_query_gallery(
    test_table: np.ndarray, query_rows: np.ndarray, protocol: str = "official"
) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery rows (0-based, ascending for the gallery) of the test table.

    ``official``: gallery = every test row, queries included. ``torchreid``: gallery = test rows
    that are neither queries nor junk (pid -1). Query rows are returned in ``query_IDX`` order.
    """
    check_protocol(protocol)
    query_rows = np.asarray(query_rows, dtype=np.int64)
    is_query = np.zeros(len(test_table), dtype=bool)
    is_query[query_rows] = True
    gallery = np.flatnonzero(gallery_mask(np.asarray(test_table)[:, 2], is_query, protocol))
    return query_rows.copy(), gallery


# --------------------------------------------------------------------------------------------
# name lists and frames


def read_name_list(path: str | os.PathLike) -> np.ndarray:
    """Read a MARS name list as a fixed-width byte array (``dtype='S<width>'``), one entry per
    line, surrounding whitespace stripped. Line ``k`` (1-based) is entry ``k - 1``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: name list not found; {_LAYOUT_HINT}")
    raw = path.read_bytes()
    lines = raw.splitlines()
    if not lines:
        return np.zeros(0, dtype="S1")
    return np.char.strip(np.array(lines, dtype=bytes))


def _pid_code(pid: int) -> str | None:
    """The 4 characters a MARS frame name starts with for ``pid`` (None if not encodable)."""
    if pid == -1:
        return "00-1"
    if 0 <= pid <= 9999:
        return f"{pid:04d}"
    return None


def _check_names(
    split: str, names: np.ndarray, table: np.ndarray, rows: np.ndarray, frame_row: np.ndarray,
    frame_line: np.ndarray, table_path: Path, name_path: Path, errors: ErrorCollector,
) -> None:
    """Every frame name of a track must carry the track's pid (chars 0-3) and camera (char 5)."""
    n = len(names)
    if n == 0:
        return
    width = names.dtype.itemsize
    u8 = names.view(np.uint8).reshape(n, width)
    if width < 6:  # too short to hold pid and camera at all
        u8 = np.pad(u8, ((0, 0), (0, 6 - width)))
    short = np.flatnonzero(np.char.str_len(names) < 6)
    errors.add_many(
        [f"{name_path} line {i + 1}: '{names[i].decode(errors='replace')}' is not a MARS frame name "
         f"(expected e.g. 0001C1T0001F001.jpg)" for i in short[:10]],
        total=len(short),
    )
    m = len(table)
    exp_pid = np.zeros((m, 4), dtype=np.uint8)
    exp_cam = np.zeros(m, dtype=np.uint8)
    encodable = np.zeros(m, dtype=bool)
    msgs = []
    for r in rows:
        pid, cam = int(table[r, 2]), int(table[r, 3])
        code = _pid_code(pid)
        if code is None or not 0 <= cam <= 9:
            msgs.append(
                f"{table_path} row {r + 1}: pid {pid} / camera {cam} cannot be written in a MARS frame "
                f"name (4-character pid, one camera digit)"
            )
            continue
        exp_pid[r] = np.frombuffer(code.encode(), dtype=np.uint8)
        exp_cam[r] = ord(str(cam))
        encodable[r] = True
    errors.add_many(msgs)
    sel = encodable[frame_row]
    fl, fr = frame_line[sel], frame_row[sel]
    wrong = (u8[fl, :4] != exp_pid[fr]).any(axis=1) | (u8[fl, 5] != exp_cam[fr])
    bad = np.flatnonzero(wrong)
    if len(bad) == 0:
        return
    bad_rows, first, counts = np.unique(fr[bad], return_index=True, return_counts=True)
    msgs = []
    for r, f, c in zip(bad_rows[: errors.limit], first[: errors.limit], counts[: errors.limit]):
        line = int(fl[bad[f]])
        name = names[line].decode(errors="replace")
        length = table[r, 1] - table[r, 0] + 1
        msgs.append(
            f"{name_path} line {line + 1}: frame '{name}' is in row {r + 1} of {table_path} "
            f"(pid {table[r, 2]}, camera {table[r, 3]}, expected a name starting "
            f"'{_pid_code(int(table[r, 2]))}C{table[r, 3]}') but its name says pid '{name[:4]}', camera "
            f"'{name[5:6]}' ({c} of {length} frames of this track disagree). The name list and the "
            f"table are out of step: use the name list shipped with this table, or fix the row"
        )
    errors.add_many(msgs, total=len(bad_rows))


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


def _frame_paths(root: Path, split: str, names: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Relative (``<id4>/<name>``, bytes) and absolute (str) paths of every name."""
    rel = np.char.add(np.char.add(names.astype("S4"), b"/"), names)
    if len(rel) == 0:
        return rel, []
    base = os.fsencode(str(root / f"bbox_{split}")) + b"/"
    # one join + one decode for all paths instead of 1.19M os.fsdecode calls (names hold no
    # newline: they came from splitting lines); surrogateescape is what os.fsdecode uses
    joined = base + (b"\n" + base).join(rel.tolist())
    absolute = joined.decode(sys.getfilesystemencoding(), "surrogateescape").split("\n")
    return rel, absolute


def _existing_relative_paths(split_dir: Path) -> np.ndarray:
    """All ``<folder>/<file>`` byte paths under ``split_dir`` (one ``listdir`` per identity
    folder instead of one ``stat`` per frame: ~1500 calls on MARS rather than 1.19M)."""
    found: list[bytes] = []
    with os.scandir(os.fsencode(str(split_dir))) as it:
        for entry in it:
            if entry.is_dir():
                prefix = entry.name + b"/"
                found.extend(prefix + f for f in os.listdir(entry.path))
    return np.array(found, dtype=bytes) if found else np.zeros(0, dtype="S1")


def _group_by_row(
    positions: np.ndarray, frame_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, first, counts = np.unique(frame_row[positions], return_index=True, return_counts=True)
    return rows, positions[first], counts


# --------------------------------------------------------------------------------------------
# loading


def load_mars(
    root: str | os.PathLike,
    protocol: str = "official",
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
        protocol: ``"official"`` or ``"torchreid"`` (see :func:`split_query_gallery`).
        validate: check before returning: name lists agree with the tables (lengths, every
            frame's pid and camera characters), indices in range, tracks contiguous and
            non-overlapping, query rows in range and unique; with ``check_files`` also that every
            frame file exists. All problems are collected into one :class:`DatasetError` naming
            file and 1-based row / line. Index ranges are always checked.
        check_files: check that every frame exists (one directory listing per identity folder).
        verify_frames: decode every frame up front (slow on real MARS: minutes) and fail on
            undecodable ones (``corrupt="error"``).
        corrupt: ``"error"`` or ``"skip"``; ``"skip"`` always decodes every frame, drops missing
            and undecodable frames and tracklets left empty, and reports them (logged, and kept
            in the returned object's ``frame_issues`` attribute, a :class:`FrameIssues`).
        workers: decoding threads for the frame scan.
        progress: show progress bars.

    Returns:
        :class:`VideoReIDData` named ``"mars"``; ``train`` tracklets carry contiguous labels
        (sorted unique train pids -> 0..n-1), pids and cameras are as in the tables, and the
        test tracklets in ``query`` and ``gallery`` are shared objects.
    """
    check_protocol(protocol)
    check_policy(corrupt)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; {_LAYOUT_HINT}")
    info = root / "info"
    index = read_mars_index(info, validate=False)
    name_paths = {s: info / NAME_FILES[s] for s in SPLITS}
    names = {s: read_name_list(name_paths[s]) for s in SPLITS}

    # 1. structure (always: slicing with bad ranges would silently build wrong tracklets)
    errors = ErrorCollector(f"MARS dataset at {root}")
    validate_index(index, errors, {s: len(names[s]) for s in SPLITS}, name_paths)
    if not validate:
        # keep only what slicing needs: ranges inside the name list
        errors = ErrorCollector(f"MARS dataset at {root}")
        for s in SPLITS:
            t = index.table(s)
            bad = np.flatnonzero(~_valid_rows(t, len(names[s])))
            errors.add_many(
                [f"{index.table_path(s)} row {r + 1}: lines {t[r, 0]}-{t[r, 1]} are not a valid range "
                 f"in the {len(names[s])} lines of {name_paths[s]}" for r in bad[:10]],
                total=len(bad),
            )
        q = index.query_rows
        if ((q < 0) | (q >= len(index.test))).any():
            errors.add(f"{info / QUERY_FILE}: query rows outside the test table")
    errors.raise_if_any()

    # 2. names and files
    issues = FrameIssues(policy=corrupt)
    scan = verify_frames or corrupt == "skip"
    layouts, paths, keep = {}, {}, {}
    errors = ErrorCollector(f"MARS dataset at {root}")
    for split in SPLITS:
        table, tpath, npath = index.table(split), index.table_path(split), name_paths[split]
        rows = np.arange(len(table))
        frame_line, frame_row = _frame_layout(table, rows)
        layouts[split] = (frame_line, frame_row)
        if validate:
            _check_names(split, names[split], table, rows, frame_row, frame_line, tpath, npath, errors)
        rel, paths[split] = _frame_paths(root, split, names[split])
        keep[split] = np.ones(len(names[split]), dtype=bool)
        if (validate and check_files) or scan:
            split_dir = root / f"bbox_{split}"
            if not split_dir.is_dir():
                errors.add(f"{split_dir}: folder not found; {_LAYOUT_HINT}")
                continue
            exists = np.isin(rel[frame_line], _existing_relative_paths(split_dir))
            missing = np.flatnonzero(~exists)
            if len(missing) and corrupt == "skip":
                keep[split][frame_line[missing]] = False
                issues.missing.extend(
                    (paths[split][frame_line[i]], f"line {frame_line[i] + 1} of {npath}") for i in missing
                )
            elif len(missing):
                mrows, mfirst, mcounts = _group_by_row(missing, frame_row)
                errors.add_many(
                    [f"{paths[split][frame_line[i]]} does not exist (line {frame_line[i] + 1} of {npath}, "
                     f"row {r + 1} of {tpath}; {c} of {table[r, 1] - table[r, 0] + 1} frames of this track "
                     f"missing). Copy the complete bbox_{split} folder, or load with corrupt='skip' to drop "
                     f"missing frames" for r, i, c in zip(mrows[:10], mfirst[:10], mcounts[:10])],
                    total=len(mrows),
                )
    errors.raise_if_any()

    # 3. decode scan (frames that exist)
    if scan:
        for split in SPLITS:
            frame_line, frame_row = layouts[split]
            todo = frame_line[keep[split][frame_line]]
            todo_paths = [paths[split][i] for i in todo.tolist()]
            issues.scanned += len(todo_paths)
            bad = check_frames(todo_paths, workers=workers, desc=f"decoding MARS {split} frames", progress=progress)
            if not bad:
                continue
            if corrupt == "skip":
                keep[split][todo[[b[0] for b in bad]]] = False
                issues.corrupt.extend((p, reason) for _, p, reason in bad)
            else:
                line_to_row = dict(zip(frame_line.tolist(), frame_row.tolist()))
                tpath, npath = index.table_path(split), name_paths[split]
                errors.add_many(
                    [f"{p}: {reason} (line {todo[k] + 1} of {npath}, row {line_to_row[int(todo[k])] + 1} of "
                     f"{tpath}). Re-extract this file from the MARS archive, or load with corrupt='skip' "
                     f"to drop unreadable frames" for k, p, reason in bad[:10]],
                    total=len(bad),
                )
        errors.raise_if_any()

    # 4. tracklets: one slice of the path list per row
    tracklets: dict[str, list[Tracklet | None]] = {}
    for split in SPLITS:
        table, p, k, nm = index.table(split), paths[split], keep[split], names[split]
        dropped_any = not k.all()
        out: list[Tracklet | None] = []
        for r, (s, e, pid, cam) in enumerate(table.tolist()):
            frames = p[s - 1 : e]
            if dropped_any and not k[s - 1 : e].all():
                frames = [f for f, ok in zip(frames, k[s - 1 : e].tolist()) if ok]
                if not frames:
                    issues.dropped_tracklets.append((split, r))
                    out.append(None)
                    continue
            out.append(Tracklet(tuple(frames), int(pid), int(cam), _tracklet_number(nm[s - 1], r), r))
        tracklets[split] = out

    query_rows, gallery_rows = split_query_gallery(index.test, index.query_rows, protocol)
    test = tracklets["test"]
    data = VideoReIDData.from_tracklets(
        "mars", root, protocol, [t for t in tracklets["train"] if t is not None],
        query=[test[r] for r in query_rows.tolist() if test[r] is not None],
        gallery=[test[r] for r in gallery_rows.tolist() if test[r] is not None],
        frame_issues=issues,
    )
    if issues.dropped_frames or issues.dropped_tracklets:
        log.warning("MARS at %s: %s", root, issues.summary())
    return data


def _tracklet_number(first_name: bytes, row: int) -> int:
    """``T<4 digits>`` of a MARS frame name (``0001C1T0001F001.jpg`` -> 1); the 0-based table row
    when the name does not follow the convention."""
    part = first_name[6:11]
    if len(part) == 5 and part[:1] == b"T" and part[1:].isdigit():
        return int(part[1:])
    return row


__all__ = [
    "MarsIndex",
    "find_info_dir",
    "load_mars",
    "read_mars_index",
    "read_mat_variable",
    "read_name_list",
    "read_track_table",
    "split_query_gallery",
    "validate_index",
]
