"""The MARS on-disk format, spelled once: read by :mod:`reid.data.mars_index` and
:mod:`reid.data.mars`, written by
:mod:`reid.data.synthetic` (Zheng et al., "MARS: A Video Benchmark for Large-Scale Person
Re-identification", ECCV 2016).

Layout under one root::

    ROOT/bbox_train/<id4>/<name>.jpg          e.g. bbox_train/0001/0001C1T0001F001.jpg
    ROOT/bbox_test/<id4>/<name>.jpg           test junk lives in bbox_test/00-1/
    ROOT/info/train_name.txt                  one frame name per line; line k is index k (1-based)
    ROOT/info/test_name.txt
    ROOT/info/tracks_train_info.mat           variable track_train_info, N x 4
    ROOT/info/tracks_test_info.mat            variable track_test_info,  M x 4
    ROOT/info/query_IDX.mat                   variable query_IDX, 1 x Q

Table columns are ``[start, end, pid, camid]``: 1-based inclusive line numbers into the split's
name list, the person id and the camera. ``query_IDX`` holds 1-based rows of the test table. A
frame name ``0001C1T0001F001.jpg`` reads: characters 0-3 the pid code (``00-1`` for junk, pid -1;
``0000`` distractors), character 5 the camera digit, ``T0001`` the tracklet number, ``F001`` the
frame number; the frame sits in ``bbox_<split>/<pid code>/``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.io

SPLITS = ("train", "test")
INFO_DIR = "info"
BBOX_DIRS = {"train": "bbox_train", "test": "bbox_test"}
# split -> (file name, MATLAB variable name)
TRACK_FILES = {
    "train": ("tracks_train_info.mat", "track_train_info"),
    "test": ("tracks_test_info.mat", "track_test_info"),
}
NAME_FILES = {"train": "train_name.txt", "test": "test_name.txt"}
QUERY_FILE, QUERY_KEY = "query_IDX.mat", "query_IDX"
TABLE_COLUMNS = ("start", "end", "pid", "camid")

# the file whose presence marks a MARS info folder (and, under info/, a MARS root)
INFO_MARKER = TRACK_FILES["test"][0]

JUNK_PID, DISTRACTOR_PID = -1, 0
PID_CODE_LENGTH = 4          # characters 0-3 of a frame name
CAMERA_CHAR = 5              # character 5 of a frame name is the camera digit
TRACKLET_FIELD = slice(6, 11)  # characters 6-10: "T" and the 4-digit tracklet number
FRAME_NAME_EXAMPLE = "0001C1T0001F001.jpg"

LAYOUT_HINT = (
    f"expected the MARS layout ROOT/{{{BBOX_DIRS['train']},{BBOX_DIRS['test']}}}/<id4>/<frame>.jpg and "
    f"ROOT/{INFO_DIR}/{{{NAME_FILES['train']},{NAME_FILES['test']},{TRACK_FILES['train'][0]},"
    f"{TRACK_FILES['test'][0]},{QUERY_FILE}}}"
)


def pid_code(pid: int) -> str | None:
    """The 4 characters a frame name starts with for ``pid`` (also its folder name):
    ``0001``..``9999``, ``0000`` distractor, ``00-1`` junk; None when ``pid`` is not encodable."""
    if pid == JUNK_PID:
        return "00-1"
    if 0 <= pid <= 9999:
        return f"{pid:04d}"
    return None


def frame_name(pid: int, camid: int, tracklet: int, frame: int) -> str:
    """MARS frame name, ``frame`` 1-based: ``frame_name(1, 1, 1, 1) == '0001C1T0001F001.jpg'``."""
    code = pid_code(pid)
    if code is None:
        raise ValueError(f"MARS pids are -1 or 0..9999, got {pid}")
    return f"{code}C{camid}T{tracklet:04d}F{frame:03d}.jpg"


def tracklet_number(name: bytes) -> int | None:
    """The ``T<4 digits>`` number of a frame name (``b'0001C1T0001F001.jpg'`` -> 1); None when
    the name does not follow the convention."""
    part = name[TRACKLET_FIELD]
    if len(part) == 5 and part[:1] == b"T" and part[1:].isdigit():
        return int(part[1:])
    return None


def write_mat_variable(path: str | Path, name: str, array: np.ndarray, header: bytes) -> None:
    """Write one variable as a MATLAB 5 ``.mat`` file (the official files' format) with a fixed
    116-byte header text: scipy stamps the creation time there, which would break byte-identity
    of generated datasets."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, {name: array}, do_compression=False, oned_as="row")
    data = bytearray(buf.getvalue())
    data[:116] = header.ljust(116, b" ")
    Path(path).write_bytes(bytes(data))


def query_dtype(n_rows: int) -> type:
    """Integer type of ``query_IDX`` (the official file uses uint16)."""
    return np.uint16 if n_rows <= np.iinfo(np.uint16).max else np.uint32


__all__ = [
    "SPLITS", "INFO_DIR", "BBOX_DIRS", "TRACK_FILES", "NAME_FILES", "QUERY_FILE", "QUERY_KEY",
    "TABLE_COLUMNS", "INFO_MARKER", "JUNK_PID", "DISTRACTOR_PID", "PID_CODE_LENGTH", "CAMERA_CHAR",
    "TRACKLET_FIELD", "FRAME_NAME_EXAMPLE", "LAYOUT_HINT",
    "pid_code", "frame_name", "tracklet_number", "write_mat_variable", "query_dtype",
]
