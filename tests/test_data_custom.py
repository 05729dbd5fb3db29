"""Custom CSV manifests, the folder convention, and build_data's format detection."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid.data.build import build_data, detect_format
from reid.data.custom import MANIFEST_COLUMNS, load_folder, load_manifest
from reid.data.tracklet import DatasetError
from test_data_mars import make_mini_mars

HEADER = ",".join(MANIFEST_COLUMNS)


def _jpeg(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 4, 3), value, np.uint8))
    return path


def _good_rows(root: Path) -> list[str]:
    """Train: pid 7 (2 tracklets), pid 3 (1). Test: pid 3 query cam 1 + gallery cam 2,
    pid 5 query cam 2 + gallery cam 1, a junk (-1) tracklet. Frames listed out of order."""
    rows = []
    spec = [  # split, pid, cam, tid, n, is_query
        ("train", 7, 1, "a", 3, 0), ("train", 7, 2, "b", 2, 0), ("train", 3, 1, "0", 2, 0),
        ("test", 3, 1, "10", 2, 1), ("test", 3, 2, "11", 3, 0),
        ("test", 5, 2, "12", 2, 1), ("test", 5, 1, "13", 2, 0), ("test", -1, 1, "14", 1, 0),
    ]
    for split, pid, cam, tid, n, q in spec:
        for f in reversed(range(n)):  # reversed: ordering must come from frame_index
            rel = Path(split) / f"p{pid}" / f"c{cam}_{tid}" / f"{f:03d}.jpg"
            _jpeg(root / rel, 10 * f)
            rows.append(f"{rel},{pid},{cam},{tid},{f},{split},{q}")
    return rows


def _write(root: Path, rows: list[str], header: str = HEADER) -> Path:
    path = root / "manifest.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def manifest(tmp_path) -> tuple[Path, list[str]]:
    rows = _good_rows(tmp_path)
    return _write(tmp_path, rows), rows


def _error(path: Path, **kw) -> str:
    with pytest.raises(DatasetError) as exc:
        load_manifest(path, progress=False, **kw)
    return str(exc.value)


def test_manifest_round_trip_official(manifest, tmp_path):
    path, _ = manifest
    data = load_manifest(path, progress=False)
    assert data.protocol == "official" and data.name == "manifest"
    assert [(t.pid, t.camid, t.tracklet_id) for t in data.train] == [(7, 1, "a"), (7, 2, "b"), (3, 1, 0)]
    assert [t.label for t in data.train] == [1, 1, 0] and data.label_to_pid == {0: 3, 1: 7}
    first = data.train[0]
    assert [Path(f).name for f in first.frames] == ["000.jpg", "001.jpg", "002.jpg"]
    assert all(Path(f).is_absolute() and Path(f).is_file() for f in first.frames)
    assert [(t.pid, t.camid) for t in data.query] == [(3, 1), (5, 2)]
    assert len(data.gallery) == 5  # queries stay in the gallery
    assert {id(t) for t in data.query} <= {id(t) for t in data.gallery}
    assert [t.row for t in data.train + data.gallery] == list(range(8))


def test_manifest_torchreid_and_absolute_paths(manifest, tmp_path):
    path, rows = manifest
    # absolute paths work as well as relative ones
    rows = [f"{tmp_path / r.split(',', 1)[0]},{r.split(',', 1)[1]}" for r in rows]
    other = tmp_path / "elsewhere"
    other.mkdir()
    data = load_manifest(_write(other, rows), protocol="torchreid", progress=False)
    assert [(t.pid, t.camid) for t in data.gallery] == [(3, 2), (5, 1)]  # no queries, no junk
    assert len(data.query) == 2


def test_missing_column(tmp_path):
    path = _write(tmp_path, ["a.jpg,1,1,0,0,train"], header="path,pid,camid,tracklet_id,frame_index,split")
    msg = _error(path)
    assert f"{path} line 1: missing column(s) ['is_query']" in msg


@pytest.mark.parametrize(
    "column,value,expected",
    [
        (1, "seven", "pid 'seven' is not an integer"),
        (2, "c1", "camid 'c1' is not an integer"),
        (4, "1.5", "frame_index '1.5' is not an integer"),
        (5, "validation", "unknown split 'validation'"),
        (6, "yes", "is_query 'yes'"),
    ],
)
def test_bad_cell_names_line(manifest, column, value, expected):
    path, rows = manifest
    cells = rows[4].split(",")
    cells[column] = value
    rows[4] = ",".join(cells)
    msg = _error(_write(path.parent, rows))
    assert f"{path} line 6: {expected}" in msg


def test_train_row_cannot_be_query(manifest):
    path, rows = manifest
    rows[0] = rows[0][:-1] + "1"
    assert f"{path} line 2: a train row marked is_query=1" in _error(_write(path.parent, rows))


def test_tracklet_disagreeing_on_is_query(manifest):
    path, rows = manifest
    # rows 8-9 (lines 9-10) are the pid 3 query tracklet; flip its second row
    i = next(k for k, r in enumerate(rows) if ",3,1,10,0,test," in r)
    rows[i] = rows[i][:-1] + "0"
    msg = _error(_write(path.parent, rows))
    assert re.search(rf"{re.escape(str(path))} line {i + 2}: is_query=0 but .* line {i + 1} .* must agree", msg)


def test_duplicate_frame_index(manifest):
    path, rows = manifest
    dup = rows[0].replace("/002.jpg", "/009.jpg")  # a different file with frame_index 2 again
    _jpeg(path.parent / dup.split(",")[0])
    rows.append(dup)
    msg = _error(_write(path.parent, rows))
    assert f"{path} line {len(rows) + 1}: frame_index 2 repeats {path} line 2" in msg


def test_missing_file(manifest):
    path, rows = manifest
    assert rows[4].startswith("train/p7/c2_b/000.jpg")
    rows[4] = rows[4].replace("000.jpg", "404.jpg")
    msg = _error(_write(path.parent, rows))
    assert f"{path} line 6: frame " in msg and "404.jpg does not exist" in msg
    # the same manifest under corrupt="skip": the frame is dropped and reported
    data = load_manifest(path, corrupt="skip", progress=False)
    assert len(data.frame_issues.missing) == 1 and len(data.train[1]) == 1


def test_query_without_any_test_match(manifest):
    path, rows = manifest
    rows = [r for r in rows if ",5,1,13," not in r]  # drop pid 5's only gallery tracklet
    msg = _error(_write(path.parent, rows))
    assert re.search(rf"{re.escape(str(path))} line \d+: query tracklet \(pid=5, camid=2, tracklet_id=12\) has no other test tracklet", msg)


def test_several_problems_reported_together(manifest):
    path, rows = manifest
    rows[0] = rows[0].replace(",7,1,", ",x,1,")
    rows[1] = rows[1].replace(",train,", ",dev,")
    msg = _error(_write(path.parent, rows))
    assert "2 problem(s)" in msg and "line 2: pid 'x'" in msg and "line 3: unknown split 'dev'" in msg


def test_corrupt_frame_in_manifest(manifest):
    path, rows = manifest
    bad = path.parent / rows[2].split(",")[0]
    bad.write_bytes(b"not an image")
    msg = _error(path, verify_frames=True)
    assert f"{path} line 4: frame {bad}" in msg and "not a decodable image" in msg
    data = load_manifest(path, corrupt="skip", progress=False)
    assert len(data.frame_issues.corrupt) == 1 and len(data.train[0]) == 2


def test_folder_convention(tmp_path):
    root = tmp_path / "ds"
    for part, pid, cam, tid, n in [("train", 4, 1, "0001", 2), ("train", 8, 2, "0002", 1),
                                   ("query", 4, 1, "0001", 2), ("gallery", 4, 2, "0001", 3),
                                   ("gallery", 0, 1, "0009", 1)]:
        for f in range(n):
            _jpeg(root / part / str(pid) / f"{cam}_{tid}" / f"{f:04d}.jpg")
    data = load_folder(root, progress=False)
    assert [(t.pid, t.label, len(t)) for t in data.train] == [(4, 0, 2), (8, 1, 1)]
    assert [(t.pid, t.camid, t.tracklet_id, len(t)) for t in data.query] == [(4, 1, 1, 2)]
    assert len(data.gallery) == 3  # official: query stays in the gallery
    assert len(load_folder(root, protocol="torchreid", progress=False).gallery) == 2
    assert detect_format(root) == "folder"
    (root / "train" / "notapid").mkdir()
    with pytest.raises(DatasetError, match="notapid: folder name is not an integer pid"):
        load_folder(root, progress=False)


def test_build_data_detects_formats(manifest, tmp_path):
    path, _ = manifest
    assert detect_format(path) == "csv"
    assert len(build_data(path, progress=False).query) == 2
    mars = make_mini_mars(tmp_path / "mars")
    assert detect_format(mars) == "mars"
    data = build_data(mars, protocol="torchreid", progress=False)
    assert data.name == "mars" and data.protocol == "torchreid"
    with pytest.raises(DatasetError, match="matches no accepted dataset layout.*info/tracks_test_info.mat.*csv"):
        build_data(tmp_path / "manifest_dir_that_is_not_there")
    with pytest.raises(ValueError, match="fmt: unknown dataset format 'market1502' .*choices: mars, csv, .*folder"):
        build_data(mars, fmt="market1502")


def test_build_data_synthetic_goes_through_mars_reader(tmp_path):
    data = build_data(None, synthetic_params={"out": tmp_path / "syn", "ids_train": 4, "ids_test": 4,
                                              "cameras": 2, "tiny": True, "progress": False},
                      progress=False)
    assert data.name == "synthetic_mars" and data.num_train_ids == 4  # read by the MARS reader, named for what it is
    assert data.query and data.gallery
    assert all(Path(f).is_file() for t in data.train for f in t.frames)
