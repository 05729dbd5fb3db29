"""Market-1501 and DukeMTMC-reID readers on generated copies of their layout
(tests/dataset_layouts.py): images as one-frame tracklets, junk -1, distractors 0000."""

from __future__ import annotations

import pytest

from dataset_layouts import duke_reid_name, make_image_layout, market_name, write_image
from reid.data.build import build_data, detect_format
from reid.data.inspect import format_summary, inspect_dataset
from reid.data.tracklet import DatasetError

MARKET = {
    # a junk (-1) training image: skipped, as torchreid does
    "bounding_box_train": [market_name(2, 1, 10), market_name(2, 2, 11), market_name(7, 3, 12), market_name(-1, 1, 13)],
    "query": [market_name(2, 1, 20), market_name(7, 3, 21)],
    "bounding_box_test": [market_name(2, 2, 30), market_name(7, 1, 31), market_name(-1, 1, 32),
                          market_name(0, 2, 33), market_name(0, 6, 34)],
}


@pytest.fixture
def market(tmp_path):
    root = make_image_layout(tmp_path / "market1501" / "Market-1501-v15.09.15", MARKET)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0")  # shipped in the release: ignored
    return root


def test_market_counts_junk_and_distractors(market):
    assert detect_format(market) == detect_format(market.parent) == "market1501"
    data = build_data(market.parent, protocol="torchreid", progress=False)
    assert data.name == "market1501" and data.root == market
    assert [(t.pid, t.camid, len(t)) for t in data.train] == [(2, 1, 1), (2, 2, 1), (7, 3, 1)]
    assert data.num_train_ids == 2 and data.train[0].tracklet_id == "0002_c1s1_000010_01"
    assert [(t.pid, t.camid) for t in data.query] == [(2, 1), (7, 3)]
    # torchreid: the gallery is bounding_box_test minus junk; distractors (pid 0) stay as negatives
    assert sorted((t.pid, t.camid) for t in data.gallery) == [(0, 2), (0, 6), (2, 2), (7, 1)]
    official = build_data(market, protocol="official", progress=False)
    # official keeps junk (scored as junk) and the queries in the gallery
    assert len(official.gallery) == 7 and sum(t.pid == -1 for t in official.gallery) == 1


def test_inspect_reports_an_image_dataset(market):
    out = inspect_dataset(market, progress=False)
    assert (out["format"], out["kind"]) == ("market1501", "image")
    assert (out["train"]["tracklets"], out["test"]["tracklets"], out["query"]["tracklets"]) == (3, 7, 2)
    assert (out["test"]["junk_tracklets"], out["test"]["distractor_tracklets"]) == (1, 2)
    assert out["protocols"]["torchreid"]["gallery"] == 4
    assert "one-frame tracklets" in format_summary(out)


def test_market_malformed_name_names_the_file(market):
    bad = write_image(market / "query" / "0002_c1_000020.jpg")
    with pytest.raises(DatasetError, match=rf"{bad}: file name does not parse as a Market-1501 image name "
                                           r"\(e.g. 0002_c1s1_000451_03.jpg\)"):
        build_data(market, progress=False)


def test_market_camera_outside_the_benchmark_is_an_error(market):
    bad = write_image(market / "bounding_box_test" / market_name(2, 7, 40))
    with pytest.raises(DatasetError, match=rf"{bad}: camera 7 outside 1..6"):
        build_data(market, progress=False)


def test_dukemtmc_reid(tmp_path):
    files = {
        "bounding_box_train": [duke_reid_name(1, 2, 46182), duke_reid_name(1, 8, 46183), duke_reid_name(5, 3, 100)],
        "query": [duke_reid_name(9, 1, 5)],
        "bounding_box_test": [duke_reid_name(9, 7, 6), duke_reid_name(11, 8, 7)],
    }
    root = make_image_layout(tmp_path / "dukemtmc-reid" / "DukeMTMC-reID", files)
    # same folders as Market-1501: told apart by the file names
    assert detect_format(root.parent) == "dukemtmc_reid"
    data = build_data(root, protocol="torchreid", progress=False)
    assert data.name == "dukemtmc_reid"
    assert [(t.pid, t.camid) for t in data.train] == [(1, 2), (1, 8), (5, 3)]
    assert [(t.pid, t.camid) for t in data.query] == [(9, 1)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(9, 7), (11, 8)]
    bad = write_image(root / "bounding_box_test" / "0009_c2_f12.jpg")
    with pytest.raises(DatasetError, match=rf"{bad}: file name does not parse as a DukeMTMC-reID image name"):
        build_data(root, progress=False)


def test_unreadable_image_is_named_or_skipped(market):
    bad = market / "bounding_box_test" / market_name(7, 1, 31)
    bad.write_bytes(b"truncated")
    with pytest.raises(DatasetError, match=rf"{bad}: not a decodable image"):
        build_data(market, verify_frames=True, progress=False)
    data = build_data(market, corrupt="skip", protocol="torchreid", progress=False)
    assert len(data.gallery) == 3 and data.frame_issues.dropped_tracklets == [("test", 6)]  # queries, then the sorted test folder
