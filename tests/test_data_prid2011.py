"""PRID-2011 reader on generated copies of its multi-shot layout (tests/dataset_layouts.py)."""

from __future__ import annotations

import json

import pytest

from dataset_layouts import make_prid2011, random_splits
from reid.data.build import build_data, detect_format
from reid.data.tracklet import DatasetError


@pytest.fixture
def tiny(tmp_path):
    splits = [{"train": ["person_0001", "person_0003"], "test": ["person_0002", "person_0005"]}]
    # persons 6..8 are seen by camera B only: no split uses them
    return make_prid2011(tmp_path / "prid2011", list(range(1, 7)), list(range(1, 9)), frames=2, splits=splits)


def test_tiny_split(tiny):
    assert detect_format(tiny) == "prid2011"
    data = build_data(tiny, protocol="torchreid", progress=False)
    assert data.name == "prid2011" and data.num_train_ids == 2
    assert sorted((t.pid, t.camid) for t in data.train) == [(1, 1), (1, 2), (3, 1), (3, 2)]
    # query = camera A of the test persons, gallery = camera B
    assert [(t.pid, t.camid) for t in data.query] == [(2, 1), (5, 1)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(2, 2), (5, 2)]
    assert data.query[0].tracklet_id == "cam_a/person_0002" and len(data.query[0]) == 2


def test_full_size_index_gives_the_standard_89_89_splits(tmp_path):
    # 385 persons in camera A, 749 in camera B, the first 200 in both; 178 of them in the splits
    shared = [p for p in range(1, 201) if p % 9 != 0][:178]
    splits = random_splits([f"person_{p:04d}" for p in shared], 89)
    root = make_prid2011(tmp_path / "prid2011", list(range(1, 386)), list(range(1, 750)), frames=1,
                         images=False, splits=splits)
    assert len(splits) == 10 and all(len(s["train"]) == len(s["test"]) == 89 for s in splits)
    data = build_data(root, protocol="torchreid", split_index=9, progress=False)
    assert (len(data.train), data.num_train_ids, len(data.query), len(data.gallery)) == (178, 89, 89, 89)
    assert {t.pid for t in data.query} == {int(n[-4:]) for n in splits[9]["test"]}
    assert len(build_data(root, protocol="official", split_index=9, progress=False).gallery) == 178


def test_missing_split_file_says_what_to_put_where(tmp_path):
    root = make_prid2011(tmp_path / "prid2011", [1, 2], [1, 2], frames=1)
    with pytest.raises(DatasetError, match=r"splits_prid2011.json: split file not found. PRID-2011 ships none"):
        build_data(root, progress=False)


def test_split_file_option(tiny, tmp_path):
    other = tmp_path / "mine.json"
    other.write_text(json.dumps([{"train": ["person_0002"], "test": ["person_0001", "person_0004"]}]))
    data = build_data(tiny, split_file=str(other), progress=False)
    assert [t.pid for t in data.query] == [1, 4]


def test_person_missing_in_camera_b_names_the_entry(tiny):
    (tiny / "splits_prid2011.json").write_text(json.dumps([{"train": ["person_0001"], "test": ["person_0002", "person_0004"]},
                                                           {"train": ["person_0007"], "test": ["person_0002", "person_0003"]}]))
    with pytest.raises(DatasetError, match=r"split 1, 'train' entry 1 \('person_0007'\): person folder .*cam_a/person_0007"):
        build_data(tiny, split_index=1, progress=False)


def test_malformed_split_json_names_file_and_line(tiny):
    (tiny / "splits_prid2011.json").write_text('[\n{"train": ["person_0001"],\n "test": [}\n]')
    with pytest.raises(DatasetError, match=r"splits_prid2011.json line 3: not valid JSON"):
        build_data(tiny, progress=False)


def test_inspect_reports_prid2011(tiny):
    from reid.data.inspect import inspect_dataset

    out = inspect_dataset(tiny, format_options={"split_index": 0}, progress=False)
    assert (out["format"], out["kind"], out["train"]["tracklets"], out["query"]["tracklets"]) == ("prid2011", "video", 4, 2)
