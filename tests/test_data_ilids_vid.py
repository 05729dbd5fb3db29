"""iLIDS-VID reader on generated copies of its release layout (tests/dataset_layouts.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dataset_layouts import make_ilids_vid, random_splits
from reid.data.build import build_data, detect_format
from reid.data.ilids_vid import ilids_vid_splits
from reid.data.inspect import inspect_dataset
from reid.data.tracklet import DatasetError

TINY_SPLITS = [
    {"train": ["person001", "person002", "person003"], "test": ["person004", "person005", "person007"]},
    {"train": ["person004", "person005", "person007"], "test": ["person001", "person002", "person003"]},
]


@pytest.fixture
def tiny(tmp_path):
    return make_ilids_vid(tmp_path / "ilids-vid", [1, 2, 3, 4, 5, 7], frames=3, splits=TINY_SPLITS)


def test_split_selected_by_index_gives_torchreid_query_and_gallery(tiny):
    assert detect_format(tiny) == "ilids_vid"
    data = build_data(tiny, protocol="torchreid", split_index=1, progress=False)
    assert (data.name, data.protocol, data.corrupt) == ("ilids_vid", "torchreid", "error")
    # every training person contributes one sequence per camera; pids are the folder numbers
    assert len(data.train) == 6 and data.num_train_ids == 3
    assert sorted({(t.pid, t.camid) for t in data.train}) == [(p, c) for p in (4, 5, 7) for c in (1, 2)]
    assert data.label_to_pid == {0: 4, 1: 5, 2: 7}
    # query = cam1 of the test persons, gallery = their cam2 (torchreid's split exactly)
    assert [(t.pid, t.camid) for t in data.query] == [(1, 1), (2, 1), (3, 1)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(1, 2), (2, 2), (3, 2)]
    frames = data.query[0].frames
    assert len(frames) == 3 and list(frames) == sorted(frames) and frames[0].endswith("cam1_person001_00001.png")


def test_official_keeps_the_queries_in_the_gallery(tiny):
    data = build_data(tiny, protocol="official", progress=False)  # split 0 by default
    assert [t.pid for t in data.train][::2] == [1, 2, 3]
    assert len(data.gallery) == 6 and all(any(q is g for g in data.gallery) for q in data.query)


def test_full_size_release_mat_gives_the_standard_150_150_splits(tmp_path):
    # 300 persons with gaps in their numbers (as in the release: person001..person319)
    persons = [p for p in range(1, 320) if p % 17 != 0][:300]
    rng = np.random.default_rng(0)
    rows = np.stack([rng.permutation(300) + 1 for _ in range(10)])
    root = make_ilids_vid(tmp_path / "ilids-vid", persons, frames=1, images=False, mat_rows=rows)
    splits, source = ilids_vid_splits(root)
    assert source.name == "train_test_splits_ilidsvid.mat" and len(splits) == 10
    names = [f"person{p:03d}" for p in persons]
    for split, row in zip(splits, rows.tolist()):
        assert len(split["train"]) == len(split["test"]) == 150
        assert sorted(split["train"] + split["test"]) == names
        # Wang et al.: the first half of each row is the test set (1-based indices into sorted cam1 folders)
        assert split["test"] == sorted(names[i - 1] for i in row[:150])
    data = build_data(root, protocol="torchreid", split_index=3, progress=False)
    assert (len(data.train), data.num_train_ids, len(data.query), len(data.gallery)) == (300, 150, 150, 150)
    assert {t.pid for t in data.query} == {int(n[6:]) for n in splits[3]["test"]}
    assert len(build_data(root, protocol="official", split_index=3, progress=False).gallery) == 300


def test_torchreid_splits_json_is_preferred_over_the_mat(tmp_path):
    persons = list(range(1, 301))
    rows = np.stack([np.arange(1, 301)] * 10)
    splits = random_splits([f"person{p:03d}" for p in persons], 150)
    root = make_ilids_vid(tmp_path / "r", persons, frames=1, images=False, splits=splits, mat_rows=rows)
    got, source = ilids_vid_splits(root)
    assert source.name == "splits.json" and got == splits


def test_split_index_out_of_range_names_the_file_and_key(tiny):
    with pytest.raises(DatasetError, match=r"data.format_options.split_index: 2 is out of range; .*splits.json holds 2"):
        build_data(tiny, split_index=2, progress=False)
    with pytest.raises(DatasetError, match="split_index: -1"):
        build_data(tiny, split_index=-1, progress=False)


def test_unknown_option_is_refused_naming_the_key(tiny):
    with pytest.raises(DatasetError, match=r"data.format_options: the ilids_vid reader does not take \['split'\]"):
        build_data(tiny, split=1, progress=False)


def test_formats_without_options_refuse_them(tmp_path):
    with pytest.raises(DatasetError, match="the mars format takes no options"):
        build_data(tmp_path, fmt="mars", split_index=1)
    with pytest.raises(DatasetError, match="not the embedded synthetic dataset"):
        build_data(None, split_index=1)


def test_split_naming_a_missing_person_names_file_split_and_entry(tiny):
    bad = json.loads((tiny / "splits.json").read_text())
    bad[0]["test"][1] = "person099"
    (tiny / "splits.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"splits.json: split 0, 'test' entry 2 \('person099'\): person folder .*"
                                           r"cam1/person099 does not exist"):
        build_data(tiny, progress=False)


def test_person_in_both_parts_is_an_error(tiny):
    bad = json.loads((tiny / "splits.json").read_text())
    bad[0]["test"][0] = "person001"
    (tiny / "splits.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"'test' entry 1 \('person001'\): listed again \(first in 'train'\)"):
        build_data(tiny, progress=False)


def test_no_split_file_says_which_files_are_expected(tmp_path):
    root = make_ilids_vid(tmp_path / "r", [1, 2], frames=1)
    with pytest.raises(DatasetError, match=r"no split file: expected .*splits.json .*train_test_splits_ilidsvid.mat"):
        build_data(root, progress=False)


def test_corrupt_frame_is_named_or_skipped(tiny):
    bad = tiny / "i-LIDS-VID/sequences/cam2/person004/cam2_person004_00002.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"'test' entry 1 \('person004'\): frame .*cam2_person004_00002.png"):
        build_data(tiny, verify_frames=True, progress=False)
    data = build_data(tiny, corrupt="skip", progress=False)
    assert data.corrupt == "skip" and len(data.frame_issues.corrupt) == 1
    assert [len(t) for t in data.gallery if t.camid == 2 and t.pid == 4] == [2]


def test_inspect_reports_the_format_and_split(tiny):
    out = inspect_dataset(tiny, format_options={"split_index": 1}, progress=False)
    assert (out["format"], out["kind"], out["format_options"]) == ("ilids_vid", "video", {"split_index": 1})
    assert (out["train"]["ids"], out["test"]["tracklets"], out["query"]["tracklets"]) == (3, 6, 3)
    assert out["protocols"]["torchreid"] == {"gallery": 3, "queries_without_valid_match": 0}
