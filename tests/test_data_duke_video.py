"""DukeMTMC-VideoReID reader on a generated copy of its layout (tests/dataset_layouts.py)."""

from __future__ import annotations

import pytest

from dataset_layouts import make_duke_video, write_image
from reid.data.build import build_data, detect_format
from reid.data.tracklet import DatasetError

TRACKLETS = {
    "train": [(1, 1, 1, 3), (1, 2, 2, 2), (2, 1, 3, 2)],
    "query": [(5, 1, 1, 2), (6, 3, 2, 2)],
    # pid 7: a gallery-only (distractor) identity
    "gallery": [(5, 2, 2, 3), (6, 4, 8, 2), (7, 1, 1, 2)],
}


@pytest.fixture
def release(tmp_path):
    return make_duke_video(tmp_path / "dukemtmc-vidreid" / "DukeMTMC-VideoReID", TRACKLETS)


def test_counts_pids_cameras_and_frame_order(release):
    # found as its own format, not as the generic train/query/gallery folder convention
    assert detect_format(release) == "duke_video"
    assert detect_format(release.parent) == "duke_video"  # torchreid's dukemtmc-vidreid/ folder
    data = build_data(release.parent, protocol="torchreid", progress=False)
    assert data.name == "duke_video" and data.root == release
    assert [(t.pid, t.camid, t.tracklet_id, len(t)) for t in data.train] == [(1, 1, 1, 3), (1, 2, 2, 2), (2, 3, 1, 2)]
    assert data.num_train_ids == 2
    assert [(t.pid, t.camid) for t in data.query] == [(5, 1), (6, 2)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(5, 2), (6, 8), (7, 1)]
    # frames ordered by their F number (written in reverse)
    assert [f.rsplit("/", 1)[1][:13] for f in data.gallery[0].frames] == [
        "0005_C2_F0001", "0005_C2_F0002", "0005_C2_F0003"]
    official = build_data(release, protocol="official", progress=False)
    assert len(official.gallery) == 5 and all(any(q is g for g in official.gallery) for q in official.query)


def test_old_frame_names_parse(tmp_path):
    root = tmp_path / "d"
    for part, pid, cam in (("train", 1, 3), ("query", 2, 1), ("gallery", 2, 4)):
        for f in (2, 1):
            write_image(root / part / f"{pid:04d}" / "0001" / f"{pid:04d}C{cam}F{f:04d}X0000{f}.jpg")
    data = build_data(root, progress=False)
    assert (data.train[0].camid, data.query[0].camid, data.gallery[1].camid) == (3, 1, 4)
    assert data.train[0].frames[0].endswith("0001C3F0001X00001.jpg")


def test_malformed_frame_name_names_the_file(release):
    bad = write_image(release / "gallery" / "0005" / "0002" / "0005_C2_frame9.jpg")
    with pytest.raises(DatasetError, match=rf"{bad}: frame name does not parse; expected <pid4>_C<camera>"):
        build_data(release, progress=False)


def test_name_pid_and_camera_must_agree_with_folder_and_tracklet(release):
    wrong_pid = write_image(release / "train" / "0002" / "0001" / "0009_C3_F0009_X00001.jpg")
    wrong_cam = write_image(release / "train" / "0001" / "0002" / "0001_C5_F0009_X00001.jpg")
    with pytest.raises(DatasetError, match="2 problem") as err:
        build_data(release, progress=False)
    assert f"{wrong_pid}: the name says pid 9 but the file is in the folder of pid 2" in str(err.value)
    assert f"{wrong_cam}: camera 5 but the tracklet's first frame says camera 2" in str(err.value)


def test_query_without_gallery_match_is_an_error(release):
    make_duke_video(release, {"query": [(9, 1, 1, 1)]})
    with pytest.raises(DatasetError, match=r"query/0009/0001: query \(pid 9, camera 1\) has no other test tracklet"):
        build_data(release, progress=False)
    assert len(build_data(release, validate=False, progress=False).query) == 3


def test_inspect_reports_duke_video(release):
    from reid.data.inspect import inspect_dataset

    out = inspect_dataset(release, progress=False)
    assert (out["format"], out["kind"], out["train"]["ids"], out["test"]["tracklets"]) == ("duke_video", "video", 2, 5)
    assert out["protocols"]["torchreid"] == {"gallery": 3, "queries_without_valid_match": 0}
