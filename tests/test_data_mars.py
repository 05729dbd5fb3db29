"""MARS reader: index files, protocols, label assignment, tracklet building.

Real-index tests use the official MARS ``.mat`` files (``mars_info_dir``; skipped when absent).
Image-level tests use a mini MARS written here with cv2.imwrite + scipy.io.savemat
(:func:`make_mini_mars`, also used by tests/test_data_validation.py and test_data_inspect.py).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from reid.data.frames import read_frame
from reid.data.mars import load_mars, split_query_gallery
from reid.data.mars_index import read_mars_index, read_mat_variable, read_track_table
from reid.data.tracklet import DatasetError
from reid.data.validation import split_statistics

# (pid, camid, n_frames) per table row
MINI_TRAIN = [(1, 1, 3), (1, 2, 2), (4, 1, 3), (4, 3, 2), (9, 2, 2)]
MINI_TEST = [(-1, 1, 2), (0, 2, 2), (2, 1, 3), (2, 2, 2), (3, 1, 2), (3, 2, 3), (5, 1, 2), (5, 1, 2)]
MINI_QUERY = [2, 5, 6]  # 0-based test rows: (2,c1), (3,c2), (5,c1) -- the last has no cross-camera match


def frame_name(pid: int, cam: int, tracklet: int, frame: int) -> str:
    code = "00-1" if pid == -1 else f"{pid:04d}"
    return f"{code}C{cam}T{tracklet:04d}F{frame:03d}.jpg"


def frame_color(split: str, row: int, frame: int) -> tuple[int, int, int]:
    """A distinct RGB colour per frame, so tests can check which file a path points to."""
    return (40 + 20 * row) % 256, (10 + 30 * frame) % 256, 200 if split == "train" else 100


def make_mini_mars(root: Path, train=MINI_TRAIN, test=MINI_TEST, query=MINI_QUERY, images: bool = True) -> Path:
    """Write a tiny dataset in the exact MARS layout: name lists, the three .mat tables, and one
    8x4 JPEG per frame (solid colour, see :func:`frame_color`)."""
    info = root / "info"
    info.mkdir(parents=True, exist_ok=True)
    for split, tracks in (("train", train), ("test", test)):
        names, table, line = [], [], 1
        for row, (pid, cam, n) in enumerate(tracks):
            table.append([line, line + n - 1, pid, cam])
            for f in range(n):
                name = frame_name(pid, cam, row + 1, f + 1)
                names.append(name)
                if images:
                    d = root / f"bbox_{split}" / name[:4]
                    d.mkdir(parents=True, exist_ok=True)
                    rgb = np.zeros((8, 4, 3), np.uint8)
                    rgb[:] = frame_color(split, row, f)
                    cv2.imwrite(str(d / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
            line += n
        (info / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        key = f"track_{split}_info"
        scipy.io.savemat(info / f"tracks_{split}_info.mat", {key: np.array(table, dtype=np.int32)})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([query], dtype=np.uint16) + 1})
    return root


@pytest.fixture
def mini_mars(tmp_path) -> Path:
    return make_mini_mars(tmp_path / "mars")


# ------------------------------------------------------------------ real index (numbers only)


def test_real_index_shapes_and_zero_based_queries(mars_info_dir):
    index = read_mars_index(mars_info_dir)
    assert index.train.shape == (8298, 4) and index.test.shape == (12180, 4)
    assert index.query_rows.shape == (1980,)
    raw = scipy.io.loadmat(mars_info_dir / "query_IDX.mat")["query_IDX"].reshape(-1)
    np.testing.assert_array_equal(index.query_rows, raw.astype(np.int64) - 1)
    # the root (parent of info/) is accepted as well as the info folder itself
    assert read_mars_index(mars_info_dir).info_dir == mars_info_dir


def test_real_index_protocols(mars_info_dir):
    index = read_mars_index(mars_info_dir)
    q, g_off = split_query_gallery(index.test, index.query_rows, "official")
    _, g_tr = split_query_gallery(index.test, index.query_rows, "torchreid")
    assert len(q) == 1980 and len(g_off) == 12180
    assert set(q.tolist()) <= set(g_off.tolist())  # official: queries stay in the gallery
    assert len(g_tr) == 9330
    assert not set(q.tolist()) & set(g_tr.tolist())
    assert (index.test[g_tr, 2] != -1).all()


def test_real_index_statistics(mars_info_dir):
    index = read_mars_index(mars_info_dir)
    tr, te = index.train, index.test
    s = split_statistics(tr[:, 2], tr[:, 3], tr[:, 1] - tr[:, 0] + 1,
                         te[:, 2], te[:, 3], te[:, 1] - te[:, 0] + 1, index.query_rows)
    assert s["train"] == {"tracklets": 8298, "ids": 625, "frames": 509914, "cameras": 6}
    assert s["test"]["tracklets"] == 12180 and s["test"]["frames"] == 681089
    assert s["test"]["junk_tracklets"] == 870 and s["test"]["distractor_tracklets"] == 3248
    assert s["test"]["ids"] == 634
    assert s["query"]["tracklets"] == 1980
    assert s["protocols"]["official"] == {"gallery": 12180, "queries_without_valid_match": 0}
    assert s["protocols"]["torchreid"] == {"gallery": 9330, "queries_without_valid_match": 140}


@pytest.fixture(scope="module")
def full_scale_names_root(mars_info_dir, tmp_path_factory) -> Path:
    """The real index plus name lists synthesised from it (1.19M names, no images)."""
    root = tmp_path_factory.mktemp("mars_full")
    info = root / "info"
    info.mkdir()
    for f in ("tracks_train_info.mat", "tracks_test_info.mat", "query_IDX.mat"):
        shutil.copy(mars_info_dir / f, info / f)
    for split in ("train", "test"):
        table = scipy.io.loadmat(info / f"tracks_{split}_info.mat")[f"track_{split}_info"]
        names = []
        for row, (s, e, pid, cam) in enumerate(table.tolist()):
            code = "00-1" if pid == -1 else f"{pid:04d}"
            prefix = f"{code}C{cam}T{(row + 1) % 10000:04d}F"
            names.extend(f"{prefix}{f % 1000:03d}.jpg" for f in range(1, e - s + 2))
        (info / f"{split}_name.txt").write_text("\n".join(names) + "\n")
    return root


def test_full_scale_load_from_real_index(full_scale_names_root):
    data = load_mars(full_scale_names_root, protocol="official", check_files=False, progress=False)
    assert len(data.train) == 8298 and data.num_train_ids == 625
    assert sum(len(t) for t in data.train) == 509914
    assert len(data.query) == 1980 and len(data.gallery) == 12180
    # labels: contiguous, sorted by pid
    assert sorted(data.label_to_pid) == list(range(625))
    assert all(data.label_to_pid[t.label] == t.pid for t in data.train)
    pids = [data.label_to_pid[i] for i in range(625)]
    assert pids == sorted(pids)
    # queries are the very gallery objects under "official"
    gallery_ids = {id(t) for t in data.gallery}
    assert all(id(t) in gallery_ids for t in data.query)
    first = data.train[0]
    assert first.frames[0].endswith("bbox_train/0001/0001C1T0001F001.jpg") and len(first) == 16
    assert first.tracklet_id == 1 and first.row == 0

    tr = load_mars(full_scale_names_root, protocol="torchreid", check_files=False, progress=False)
    assert len(tr.gallery) == 9330
    assert all(t.pid != -1 for t in tr.gallery)
    assert not {t.row for t in tr.query} & {t.row for t in tr.gallery}


def test_full_scale_name_mismatch_names_line_and_row(full_scale_names_root, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(full_scale_names_root / "info", root / "info")
    path = root / "info" / "test_name.txt"
    lines = path.read_text().splitlines()
    lines[99_999] = "0999C6" + lines[99_999][6:]  # wrong pid and camera on line 100000
    path.write_text("\n".join(lines) + "\n")
    table = scipy.io.loadmat(root / "info" / "tracks_test_info.mat")["track_test_info"]
    row = int(np.flatnonzero((table[:, 0] <= 100_000) & (table[:, 1] >= 100_000))[0]) + 1
    with pytest.raises(DatasetError) as exc:
        load_mars(root, check_files=False, progress=False)
    msg = str(exc.value)
    assert "test_name.txt line 100000" in msg and f"row {row} of" in msg and "tracks_test_info.mat" in msg
    assert "1 problem(s)" in msg


# ------------------------------------------------------------------ mini MARS with images


def test_mini_load_official(mini_mars):
    data = load_mars(mini_mars, progress=False)
    assert data.name == "mars" and data.protocol == "official"
    assert [t.pid for t in data.train] == [1, 1, 4, 4, 9]
    assert [t.label for t in data.train] == [0, 0, 1, 1, 2]
    assert data.label_to_pid == {0: 1, 1: 4, 2: 9}
    assert [len(t) for t in data.train] == [3, 2, 3, 2, 2]
    assert [t.row for t in data.query] == MINI_QUERY
    assert [t.row for t in data.gallery] == list(range(len(MINI_TEST)))
    assert [(t.pid, t.camid) for t in data.gallery][:2] == [(-1, 1), (0, 2)]  # pids kept as given
    assert all(t.label == -1 for t in data.gallery)
    t = data.train[2]
    assert t.tracklet_id == 3
    assert [Path(f).name for f in t.frames] == [frame_name(4, 1, 3, f) for f in (1, 2, 3)]
    assert Path(t.frames[0]).parent == mini_mars / "bbox_train" / "0004"
    junk = data.gallery[0]
    assert Path(junk.frames[0]).parent == mini_mars / "bbox_test" / "00-1"
    # the path really is that frame: colour written as RGB comes back as RGB
    img = read_frame(t.frames[1])
    assert img.shape == (8, 4, 3) and img.dtype == np.uint8
    np.testing.assert_allclose(img[4, 2], frame_color("train", 2, 1), atol=3)


def test_mini_load_torchreid(mini_mars):
    data = load_mars(mini_mars, protocol="torchreid", progress=False)
    assert [t.row for t in data.query] == MINI_QUERY
    # queries and junk (row 0) removed; distractor (row 1) stays
    assert [t.row for t in data.gallery] == [1, 3, 4, 7]


def test_bad_protocol_and_policy_are_rejected(mini_mars):
    with pytest.raises(ValueError, match="protocol"):
        load_mars(mini_mars, protocol="market", progress=False)
    with pytest.raises(ValueError, match="corrupt"):
        load_mars(mini_mars, corrupt="ignore", progress=False)


def test_missing_variable_and_wrong_shape(tmp_path):
    p = tmp_path / "tracks_train_info.mat"
    scipy.io.savemat(p, {"something_else": np.zeros((3, 4))})
    with pytest.raises(DatasetError, match=r"variable 'track_train_info' not found.*something_else"):
        read_track_table(p, "track_train_info")
    scipy.io.savemat(p, {"track_train_info": np.zeros((3, 5))})
    with pytest.raises(DatasetError, match=r"shape \(3, 5\); expected N x 4"):
        read_track_table(p, "track_train_info")
    scipy.io.savemat(p, {"track_train_info": np.array([[1.5, 2, 1, 1]])})
    with pytest.raises(DatasetError, match="row 1 holds a non-integer"):
        read_track_table(p, "track_train_info")


def test_matlab_v73_file_gives_clear_error(tmp_path, monkeypatch):
    p = tmp_path / "query_IDX.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    p.write_bytes(header.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    with pytest.raises(DatasetError) as exc:
        read_mat_variable(p, "query_IDX")
    msg = str(exc.value)
    assert str(p) in msg and "v7.3" in msg and "-v7" in msg and "h5py" in msg
