"""Validation of broken MARS copies, the corrupt-frame policy, and frame reading.

Every failure must name the file and the 1-based row / line; several problems are reported
together (first ~10 plus a count).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from reid.data.frames import FrameReadError, check_frames, read_frame
from reid.data.mars import load_mars
from reid.data.mars_index import read_mars_index
from reid.data.tracklet import DatasetError
from reid.data.validation import ErrorCollector
from test_data_mars import MINI_TEST, MINI_TRAIN, frame_name, make_mini_mars


@pytest.fixture
def mars(tmp_path) -> Path:
    return make_mini_mars(tmp_path / "mars")


def _error(root: Path, **kw) -> str:
    with pytest.raises(DatasetError) as exc:
        load_mars(root, progress=False, **kw)
    return str(exc.value)


def _rewrite_table(root: Path, split: str, fn) -> None:
    path = root / "info" / f"tracks_{split}_info.mat"
    key = f"track_{split}_info"
    table = scipy.io.loadmat(path)[key]
    scipy.io.savemat(path, {key: fn(table.copy())})


def test_missing_frame_names_path_line_and_row(mars):
    # test row 4 (1-based) = (2, cam 2, 2 frames) starts at line 8 of test_name.txt
    victim = mars / "bbox_test" / "0002" / frame_name(2, 2, 4, 2)
    victim.unlink()
    msg = _error(mars)
    assert str(victim) in msg
    assert "line 9 of" in msg and "test_name.txt" in msg
    assert re.search(r"row 4 of \S*tracks_test_info\.mat", msg)
    assert "1 of 2 frames of this track missing" in msg
    # without the file check the copy loads (the check is what caught it)
    assert len(load_mars(mars, check_files=False, progress=False).gallery) == len(MINI_TEST)


def test_missing_frames_are_collected_not_first_only(mars):
    for row, (pid, cam, n) in enumerate(MINI_TRAIN):
        (mars / "bbox_train" / f"{pid:04d}" / frame_name(pid, cam, row + 1, 1)).unlink()
    msg = _error(mars)
    assert "5 problem(s)" in msg
    for row in range(1, 6):
        assert re.search(rf"row {row} of \S*tracks_train_info\.mat", msg)


def test_swapped_camera_in_name(mars):
    path = mars / "info" / "train_name.txt"
    lines = path.read_text().splitlines()
    # line 4 is the first frame of train row 2 (pid 1, camera 2): claim camera 1
    assert lines[3] == frame_name(1, 2, 2, 1)
    lines[3] = lines[3][:5] + "1" + lines[3][6:]
    path.write_text("\n".join(lines) + "\n")
    msg = _error(mars, check_files=False)
    assert "train_name.txt line 4" in msg
    assert re.search(r"row 2 of \S*tracks_train_info\.mat", msg)
    assert "camera '1'" in msg and "'0001C2'" in msg


def test_junk_names_use_00_minus_1(mars):
    path = mars / "info" / "test_name.txt"
    lines = path.read_text().splitlines()
    lines[0] = "0001" + lines[0][4:]  # junk track (pid -1) whose frame says pid 0001
    path.write_text("\n".join(lines) + "\n")
    msg = _error(mars, check_files=False)
    assert "test_name.txt line 1" in msg and "'00-1C1'" in msg


def test_truncated_mat_file(mars):
    path = mars / "info" / "tracks_test_info.mat"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    msg = _error(mars)
    assert str(path) in msg and "truncated" in msg


def test_name_list_shorter_than_table(mars):
    path = mars / "info" / "test_name.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")  # last track (row 8, 2 frames) and 1 frame of row 7
    msg = _error(mars)
    n = len(lines) - 3
    assert f"has only {n} lines" in msg and "test_name.txt" in msg
    assert re.search(r"tracks_test_info\.mat row 7: track ends at line", msg)
    assert re.search(r"tracks_test_info\.mat row 8: track ends at line", msg)


def test_name_list_longer_than_table(mars):
    path = mars / "info" / "train_name.txt"
    path.write_text(path.read_text() + frame_name(9, 2, 5, 3) + "\n")
    msg = _error(mars)
    assert "train_name.txt has 13 lines" in msg and "lines 13-13 belong to no track" in msg


def test_overlapping_tracks(mars):
    def overlap(t):
        t[2, 0] -= 1  # train row 3 now starts inside row 2
        return t

    _rewrite_table(mars, "train", overlap)
    msg = _error(mars)
    assert re.search(r"tracks_train_info\.mat row 3: lines 5-8 overlap row 2", msg)


def test_non_contiguous_tracks(mars):
    def gap(t):
        t[3, 0] += 1  # train row 4 skips its first line
        return t

    _rewrite_table(mars, "train", gap)
    msg = _error(mars)
    assert re.search(r"tracks_train_info\.mat row 4: starts at line 10 but the previous track \(row 3\) ends at line 8", msg)
    assert "lines 9-9" in msg


def test_reversed_and_nonpositive_ranges(mars):
    def bad(t):
        t[0, 0] = 0
        t[1, 0], t[1, 1] = t[1, 1] + 1, t[1, 1]
        return t

    _rewrite_table(mars, "train", bad)
    msg = _error(mars)
    assert re.search(r"tracks_train_info\.mat row 1: start index 0 < 1", msg)
    assert re.search(r"tracks_train_info\.mat row 2: start 6 > end 5", msg)


def test_query_rows_out_of_range_and_duplicated(mars):
    q = np.array([[3, 3, 99]], dtype=np.uint16)  # 1-based
    scipy.io.savemat(mars / "info" / "query_IDX.mat", {"query_IDX": q})
    with pytest.raises(DatasetError) as exc:
        read_mars_index(mars / "info")
    msg = str(exc.value)
    assert "query_IDX.mat entry 3: query row 99 is outside the 8 rows" in msg
    assert "test row 3 is listed 2 times (entries 1, 2)" in msg


def test_corrupt_jpeg_policy_error(mars):
    victim = mars / "bbox_test" / "0003" / frame_name(3, 2, 6, 2)
    victim.write_bytes(b"this is not a jpeg" * 10)
    # found only by the decode scan (the file exists)
    assert len(load_mars(mars, progress=False).gallery) == len(MINI_TEST)
    msg = _error(mars, verify_frames=True, workers=2)
    assert str(victim) in msg and "not a decodable image" in msg
    # row 6 of the test table starts at line 12
    assert "line 13 of" in msg and re.search(r"row 6 of \S*tracks_test_info\.mat", msg)
    assert "corrupt='skip'" in msg


def test_corrupt_jpeg_policy_skip_drops_frames_and_empty_tracklets(mars, caplog):
    bad_frame = mars / "bbox_test" / "0003" / frame_name(3, 2, 6, 2)
    bad_frame.write_bytes(b"\xff\xd8\xff garbage")
    # every frame of train row 5 (pid 9) corrupt -> that tracklet (and id 9) disappears
    for f in (1, 2):
        (mars / "bbox_train" / "0009" / frame_name(9, 2, 5, f)).write_bytes(b"")
    missing = mars / "bbox_test" / "0005" / frame_name(5, 1, 8, 1)
    missing.unlink()
    with caplog.at_level("WARNING"):
        data = load_mars(mars, corrupt="skip", progress=False)
    issues = data.frame_issues
    assert len(issues.corrupt) == 3 and len(issues.missing) == 1
    assert issues.dropped_tracklets == [("train", 4)]
    assert issues.scanned == sum(n for *_, n in MINI_TRAIN + MINI_TEST) - 1
    assert [t.pid for t in data.train] == [1, 1, 4, 4] and data.num_train_ids == 2
    row6 = next(t for t in data.gallery if t.row == 5)
    assert len(row6) == 2 and str(bad_frame) not in row6.frames
    row8 = next(t for t in data.gallery if t.row == 7)
    assert len(row8) == 1
    assert "4 dropped" not in caplog.text and "1 missing, 3 corrupt" in caplog.text
    assert data.frame_issues.to_dict()["dropped_tracklets"] == 1


def test_missing_split_folder(mars):
    import shutil

    shutil.rmtree(mars / "bbox_test")
    msg = _error(mars)
    assert "bbox_test: folder not found" in msg


def test_error_collector_truncates_with_count():
    errors = ErrorCollector("thing", limit=3)
    errors.add_many([f"problem {i}" for i in range(5)], total=40)
    with pytest.raises(DatasetError) as exc:
        errors.raise_if_any()
    msg = str(exc.value)
    assert "40 problem(s) (first 3 shown)" in msg and "problem 2" in msg and "problem 3" not in msg
    assert "... and 37 more" in msg
    ErrorCollector("empty").raise_if_any()  # nothing collected, nothing raised


def test_read_frame_errors(tmp_path):
    with pytest.raises(FrameReadError, match="does not exist") as exc:
        read_frame(tmp_path / "nope.jpg")
    assert exc.value.path == str(tmp_path / "nope.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(FrameReadError, match="empty"):
        read_frame(empty)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(FrameReadError, match=str(junk)):
        read_frame(junk)


def test_check_frames_reports_positions(mars):
    frames = sorted(str(p) for p in (mars / "bbox_train").rglob("*.jpg"))
    Path(frames[4]).write_bytes(b"broken")
    for workers in (1, 3):
        bad = check_frames(frames, workers=workers, progress=False)
        assert [(i, p) for i, p, _ in bad] == [(4, frames[4])]
