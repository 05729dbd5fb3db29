"""The MARS index: the three ``.mat`` tables and the two frame-name lists, read and validated
(the format is spelled in :mod:`reid.data.mars_format`; tracklets are built by
:func:`reid.data.mars.load_mars`).

Every problem is collected (:class:`~reid.data.validation.ErrorCollector`) and named by file and
1-based ``.mat`` row or name-list line, with what to do about it. Real MARS lists 1.19M frame
names: they are held as one fixed-width byte array and checked against the tables with numpy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from reid.data.mars_format import (
    CAMERA_CHAR,
    FRAME_NAME_EXAMPLE,
    INFO_DIR,
    INFO_MARKER,
    LAYOUT_HINT,
    NAME_FILES,
    PID_CODE_LENGTH,
    QUERY_FILE,
    QUERY_KEY,
    SPLITS,
    TABLE_COLUMNS,
    TRACK_FILES,
    pid_code,
)
from reid.data.tracklet import DatasetError
from reid.data.validation import ErrorCollector

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# ------------------------------------------------------------------ index (.mat) files

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
    for cand in (p, p / INFO_DIR):
        if (cand / INFO_MARKER).is_file():
            return cand
    raise DatasetError(f"{p}: no {INFO_MARKER} here or in {p / INFO_DIR}; {LAYOUT_HINT}")


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
        raise DatasetError(f"{path}: file not found; {LAYOUT_HINT}")
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


# ------------------------------------------------------------------ validation of the tables

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


def check_slice_ranges(
    index: MarsIndex, errors: ErrorCollector, name_counts: dict[str, int], name_paths: dict[str, Path]
) -> None:
    """The least :func:`validate_index` checks, run even with ``validate=False``: every track is
    a valid range of its name list and every query row is a test row (slicing with bad ranges
    would silently build wrong tracklets)."""
    for split in SPLITS:
        t = index.table(split)
        bad = np.flatnonzero(~_valid_rows(t, name_counts[split]))
        errors.add_many(
            [f"{index.table_path(split)} row {r + 1}: lines {t[r, 0]}-{t[r, 1]} are not a valid range "
             f"in the {name_counts[split]} lines of {name_paths[split]}" for r in bad[:10]],
            total=len(bad),
        )
    q = index.query_rows
    if ((q < 0) | (q >= len(index.test))).any():
        errors.add(f"{index.info_dir / QUERY_FILE}: query rows outside the test table")


# ------------------------------------------------------------------ name lists

def read_name_list(path: str | os.PathLike) -> np.ndarray:
    """Read a MARS name list as a fixed-width byte array (``dtype='S<width>'``), one entry per
    line, surrounding whitespace stripped. Line ``k`` (1-based) is entry ``k - 1``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: name list not found; {LAYOUT_HINT}")
    raw = path.read_bytes()
    lines = raw.splitlines()
    if not lines:
        return np.zeros(0, dtype="S1")
    return np.char.strip(np.array(lines, dtype=bytes))


def check_frame_names(
    names: np.ndarray, table: np.ndarray, frame_line: np.ndarray, frame_row: np.ndarray,
    table_path: Path, name_path: Path, errors: ErrorCollector,
) -> None:
    """Every frame name of a track must carry the track's pid code (characters 0-3) and camera
    digit (character 5). ``frame_line`` / ``frame_row``: the 0-based name-list line of every
    frame of every row and the row it belongs to."""
    n = len(names)
    if n == 0:
        return
    need = CAMERA_CHAR + 1  # shortest name that holds pid code and camera
    width = names.dtype.itemsize
    u8 = names.view(np.uint8).reshape(n, width)
    if width < need:  # too short to hold pid and camera at all
        u8 = np.pad(u8, ((0, 0), (0, need - width)))
    short = np.flatnonzero(np.char.str_len(names) < need)
    errors.add_many(
        [f"{name_path} line {i + 1}: '{names[i].decode(errors='replace')}' is not a MARS frame name "
         f"(expected e.g. {FRAME_NAME_EXAMPLE})" for i in short[:10]],
        total=len(short),
    )
    m = len(table)
    exp_pid = np.zeros((m, PID_CODE_LENGTH), dtype=np.uint8)
    exp_cam = np.zeros(m, dtype=np.uint8)
    encodable = np.zeros(m, dtype=bool)
    msgs = []
    for r in range(m):
        pid, cam = int(table[r, 2]), int(table[r, 3])
        code = pid_code(pid)
        if code is None or not 0 <= cam <= 9:
            msgs.append(
                f"{table_path} row {r + 1}: pid {pid} / camera {cam} cannot be written in a MARS frame "
                f"name ({PID_CODE_LENGTH}-character pid, one camera digit)"
            )
            continue
        exp_pid[r] = np.frombuffer(code.encode(), dtype=np.uint8)
        exp_cam[r] = ord(str(cam))
        encodable[r] = True
    errors.add_many(msgs)
    sel = encodable[frame_row]
    fl, fr = frame_line[sel], frame_row[sel]
    wrong = (u8[fl, :PID_CODE_LENGTH] != exp_pid[fr]).any(axis=1) | (u8[fl, CAMERA_CHAR] != exp_cam[fr])
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
            f"'{pid_code(int(table[r, 2]))}C{table[r, 3]}') but its name says pid '{name[:PID_CODE_LENGTH]}', "
            f"camera '{name[CAMERA_CHAR:CAMERA_CHAR + 1]}' ({c} of {length} frames of this track disagree). "
            f"The name list and the table are out of step: use the name list shipped with this table, or "
            f"fix the row"
        )
    errors.add_many(msgs, total=len(bad_rows))


__all__ = [
    "MarsIndex",
    "check_frame_names",
    "check_slice_ranges",
    "find_info_dir",
    "read_mars_index",
    "read_mat_variable",
    "read_name_list",
    "read_track_table",
    "validate_index",
]
