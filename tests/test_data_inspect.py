"""tools/inspect_dataset.py: summary numbers, JSON output, exit status on invalid data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from test_data_mars import MINI_TEST, MINI_TRAIN, frame_name, make_mini_mars

TOOL = Path(__file__).resolve().parents[1] / "tools" / "inspect_dataset.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("inspect_dataset", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _json(tool, capsys, *argv) -> dict:
    assert tool.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("where", ["info", "parent"])
def test_index_only_on_real_mars(tool, capsys, mars_info_dir, tmp_path, where):
    root = mars_info_dir
    if where == "parent":  # the dataset root (holding info/) is accepted too
        (tmp_path / "info").symlink_to(mars_info_dir, target_is_directory=True)
        root = tmp_path
    s = _json(tool, capsys, "--root", str(root), "--index-only")
    assert s["train"]["tracklets"] == 8298 and s["train"]["ids"] == 625
    assert s["test"]["tracklets"] == 12180 and s["query"]["tracklets"] == 1980
    assert s["test"]["junk_tracklets"] == 870 and s["test"]["distractor_tracklets"] == 3248
    assert s["protocols"]["official"] == {"gallery": 12180, "queries_without_valid_match": 0}
    assert s["protocols"]["torchreid"] == {"gallery": 9330, "queries_without_valid_match": 140}


def test_single_protocol_and_table(tool, capsys, mars_info_dir):
    s = _json(tool, capsys, "--root", str(mars_info_dir), "--index-only", "--protocol", "torchreid")
    assert list(s["protocols"]) == ["torchreid"]
    assert tool.main(["--root", str(mars_info_dir), "--index-only"]) == 0
    table = capsys.readouterr().out
    assert "torchreid" in table and "9330" in table and "140" in table


def test_full_check_of_mini_mars(tool, capsys, tmp_path):
    root = make_mini_mars(tmp_path / "mars")
    s = _json(tool, capsys, "--root", str(root), "--verify-frames")
    assert s["train"] == {"tracklets": 5, "ids": 3, "frames": 12, "cameras": 3}
    assert s["test"]["junk_tracklets"] == 1 and s["test"]["distractor_tracklets"] == 1
    assert s["test"]["ids"] == 3
    # query (5, cam 1) has only a same-camera tracklet -> no valid match under either protocol;
    # (3, cam 2) matches (3, cam 1) in both; (2, cam 1) matches (2, cam 2) in both
    assert s["protocols"]["official"] == {"gallery": len(MINI_TEST), "queries_without_valid_match": 1}
    assert s["protocols"]["torchreid"] == {"gallery": 4, "queries_without_valid_match": 1}
    assert s["frames_decoded"] == sum(n for *_, n in MINI_TRAIN + MINI_TEST)


def test_manifest_summary(tool, capsys, tmp_path):
    from test_data_custom import _good_rows, _write

    path = _write(tmp_path, _good_rows(tmp_path))
    s = _json(tool, capsys, "--root", str(path))
    assert s["format"] == "csv" and s["train"]["ids"] == 2 and s["query"]["tracklets"] == 2
    assert s["protocols"]["torchreid"]["gallery"] == 2 and s["protocols"]["official"]["gallery"] == 5


def test_invalid_dataset_exits_2_with_message(tool, capsys, tmp_path):
    root = make_mini_mars(tmp_path / "mars")
    victim = root / "bbox_train" / "0004" / frame_name(4, 3, 4, 1)
    victim.unlink()
    assert tool.main(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "tracks_train_info.mat" in err
    assert tool.main(["--root", str(tmp_path / "nothing")]) == 2
    assert "matches no accepted dataset layout" in capsys.readouterr().err


def test_help_teaches(tool, capsys):
    with pytest.raises(SystemExit) as exc:
        tool.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--index-only" in out and "examples:" in out and "9330" in out
