"""MSMT17 reader on generated copies of its list-file layout (tests/dataset_layouts.py)."""

from __future__ import annotations

import pytest

from dataset_layouts import make_msmt17, msmt_name
from reid.data.build import build_data, detect_format
from reid.data.tracklet import DatasetError

LISTS = {
    "train": [(msmt_name(0, 1, 0), 0), (msmt_name(0, 4, 1), 0), (msmt_name(1, 15, 2), 1)],
    "val": [(msmt_name(1, 2, 3), 1)],
    "query": [(msmt_name(0, 2, 0), 0), (msmt_name(1, 3, 1), 1)],
    "gallery": [(msmt_name(0, 5, 2), 0), (msmt_name(1, 1, 3), 1), (msmt_name(1, 3, 4), 1)],
}


@pytest.fixture
def v1(tmp_path):
    return make_msmt17(tmp_path / "msmt17" / "MSMT17_V1", LISTS)


def test_lists_give_one_frame_tracklets_with_shifted_pids(v1):
    assert detect_format(v1) == detect_format(v1.parent) == "msmt17"
    data = build_data(v1.parent, protocol="torchreid", progress=False)
    assert data.name == "msmt17" and data.root == v1
    # pid = label + 1 (0 is this package's distractor id); camera = third field of the name
    assert [(t.pid, t.camid, len(t)) for t in data.train] == [(1, 1, 1), (1, 4, 1), (2, 15, 1)]
    assert data.label_to_pid == {0: 1, 1: 2}
    assert [(t.pid, t.camid) for t in data.query] == [(1, 2), (2, 3)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(1, 5), (2, 1), (2, 3)]
    assert data.train[0].frames[0] == str(v1 / "train" / msmt_name(0, 1, 0))
    assert data.query[0].frames[0] == str(v1 / "test" / msmt_name(0, 2, 0))
    assert len(build_data(v1, protocol="official", progress=False).gallery) == 5


def test_use_val_adds_the_validation_list_to_training(v1):
    assert len(build_data(v1, use_val=True, progress=False).train) == 4
    with pytest.raises(DatasetError, match="data.format_options.use_val: 'yes'; expected true or false"):
        build_data(v1, use_val="yes", progress=False)


def test_v2_folders(tmp_path):
    root = make_msmt17(tmp_path / "MSMT17_V2", LISTS, version=2)
    data = build_data(root, progress=False)
    assert data.train[0].frames[0] == str(root / "mask_train_v2" / msmt_name(0, 1, 0))


def test_malformed_lines_name_the_list_and_line(v1):
    path = v1 / "list_gallery.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(" 1", " one")
    lines.append("0001/no_camera.jpg 1")
    lines.append("just_a_path.jpg")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="3 problem") as err:
        build_data(v1, progress=False)
    msg = str(err.value)
    assert f"{path} line 2: label 'one' is not an integer" in msg
    assert f"{path} line 4: image name 'no_camera.jpg' has no camera field" in msg
    assert f"{path} line 5: 1 fields; expected '<image path> <label>'" in msg


def test_missing_image_names_the_list_line(v1):
    (v1 / "test" / msmt_name(1, 1, 3)).unlink()
    with pytest.raises(DatasetError, match=rf"list_gallery.txt line 2: frame .*{msmt_name(1, 1, 3)} does not exist"):
        build_data(v1, progress=False)
    data = build_data(v1, corrupt="skip", protocol="torchreid", progress=False)
    assert len(data.gallery) == 2 and len(data.frame_issues.missing) == 1
    assert len(build_data(v1, check_files=False, protocol="torchreid", progress=False).gallery) == 3


def test_camera_outside_the_benchmark_is_an_error(v1):
    path = v1 / "list_query.txt"
    path.write_text(path.read_text() + f"{msmt_name(1, 16, 9)} 1\n")
    with pytest.raises(DatasetError, match=r"list_query.txt line 3: label 1 / camera 16"):
        build_data(v1, progress=False)


def test_inspect_reports_msmt17(v1):
    from reid.data.inspect import format_summary, inspect_dataset

    out = inspect_dataset(v1, format_options={"use_val": True}, progress=False)
    assert (out["format"], out["kind"], out["train"]["tracklets"], out["test"]["cameras"]) == ("msmt17", "image", 4, 4)
    assert "(msmt17, use_val=True)" in format_summary(out)
