"""Tests of the embedded synthetic MARS dataset (the ``reid.data.synthetic`` package, tools/make_synthetic_mars.py).

All on the tiny size (6 + 6 ids, 3 cameras, 3-5 frames per tracklet): each generation < 1 s.
"""

from __future__ import annotations

import csv
import filecmp
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from reid.data import synthetic
from reid.data.synthetic import (
    ADVERSE_KINDS,
    SyntheticMarsParams,
    camera_spec,
    ensure_synthetic_mars,
    make_contact_sheet,
    make_synthetic_mars,
    person_spec,
    read_stamp,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(ids_train=6, ids_test=6, cameras=3, seed=0, tiny=True)  # the conftest fixture's params
SMALL = dict(ids_train=3, ids_test=3, cameras=2, tiny=True, progress=False)
FRAME_RE = re.compile(r"^(?P<pid>\d{4}|00-1)C(?P<cam>[1-9])T(?P<t>\d{4})F(?P<f>\d{3})\.jpg$")


def _names(root: Path, split: str) -> list[str]:
    return (root / "info" / f"{split}_name.txt").read_text().splitlines()


def _table(root: Path, split: str) -> np.ndarray:
    return scipy.io.loadmat(root / "info" / f"tracks_{split}_info.mat")[f"track_{split}_info"]


def _queries(root: Path) -> np.ndarray:
    return scipy.io.loadmat(root / "info" / "query_IDX.mat")["query_IDX"]


def _pid_of(name: str) -> int:
    return -1 if name.startswith("00-1") else int(name[:4])


# --------------------------------------------------------------------------------------- layout
def test_layout_and_names_match_mars(tiny_synthetic_mars: Path) -> None:
    root = tiny_synthetic_mars
    for split in ("train", "test"):
        names = _names(root, split)
        assert names, f"{split}_name.txt is empty"
        assert len(set(names)) == len(names), f"duplicate names in {split}_name.txt"
        on_disk = sorted(p.relative_to(root / f"bbox_{split}").as_posix() for p in (root / f"bbox_{split}").rglob("*.jpg"))
        assert on_disk == sorted(f"{n[:4]}/{n}" for n in names), f"bbox_{split} does not hold exactly the listed frames"
        for n in names:
            assert FRAME_RE.match(n), f"{split}: {n!r} is not a MARS frame name"
    test_folders = {p.name for p in (root / "bbox_test").iterdir()}
    assert {"00-1", "0000"} <= test_folders
    assert not {"00-1", "0000"} & {p.name for p in (root / "bbox_train").iterdir()}
    img = cv2.imread(str(root / "bbox_train" / _names(root, "train")[0][:4] / _names(root, "train")[0]))
    assert img is not None and img.shape == (128, 64, 3)


def test_mat_files_use_official_variable_names_and_dtypes(tiny_synthetic_mars: Path, request) -> None:
    info = tiny_synthetic_mars / "info"
    for fname, var in (("tracks_train_info.mat", "track_train_info"), ("tracks_test_info.mat", "track_test_info")):
        mat = scipy.io.loadmat(info / fname)
        assert [k for k in mat if not k.startswith("__")] == [var]
        assert mat[var].ndim == 2 and mat[var].shape[1] == 4 and mat[var].shape[0] > 0
        assert mat[var].dtype == np.int32  # as in the official files
    q = scipy.io.loadmat(info / "query_IDX.mat")
    assert [k for k in q if not k.startswith("__")] == ["query_IDX"]
    assert q["query_IDX"].shape[0] == 1 and q["query_IDX"].shape[1] > 0
    assert q["query_IDX"].dtype == np.uint16
    # same conventions as the real MARS files, when they are around
    real_dir = REPO_ROOT.parent / "shared" / "data" / "mars-info"
    if (real_dir / "query_IDX.mat").is_file():
        real = scipy.io.loadmat(real_dir / "query_IDX.mat")["query_IDX"]
        assert real.dtype == q["query_IDX"].dtype and real.shape[0] == 1
        assert scipy.io.loadmat(real_dir / "tracks_test_info.mat")["track_test_info"].dtype == np.int32


def test_tables_index_name_lists(tiny_synthetic_mars: Path) -> None:
    root = tiny_synthetic_mars
    for split in ("train", "test"):
        names, table = _names(root, split), _table(root, split)
        assert table[0, 0] == 1 and table[-1, 1] == len(names), "tables must cover the name list"
        assert (table[1:, 0] == table[:-1, 1] + 1).all(), "tracklets must be contiguous and in order"
        for row, (start, end, pid, cam) in enumerate(table.tolist()):
            frames = names[start - 1 : end]
            assert frames, f"{split} row {row}: empty tracklet"
            ms = [FRAME_RE.match(n) for n in frames]
            assert {_pid_of(n) for n in frames} == {pid}, f"{split} row {row}: pid {pid} vs names {frames[0]}"
            assert {int(m["cam"]) for m in ms} == {cam}, f"{split} row {row}: camera mismatch"
            assert len({m["t"] for m in ms}) == 1, f"{split} row {row}: spans two tracklets"
            assert [int(m["f"]) for m in ms] == list(range(1, len(frames) + 1))
    train_pids = set(_table(root, "train")[:, 2].tolist())
    test_pids = set(_table(root, "test")[:, 2].tolist())
    assert min(train_pids) > 0, "junk/distractors belong to the test split only"
    assert not train_pids & test_pids, "train and test identities must be disjoint"
    assert len(train_pids) == 6 and len(test_pids - {-1, 0}) == 6


def test_one_query_per_pid_camera_each_with_cross_camera_match(tiny_synthetic_mars: Path) -> None:
    table = _table(tiny_synthetic_mars, "test")
    qrows = _queries(tiny_synthetic_mars).ravel().astype(int) - 1
    assert (qrows >= 0).all() and (qrows < len(table)).all()
    q_pairs = [tuple(table[r, 2:4]) for r in qrows]
    assert all(pid > 0 for pid, _ in q_pairs), "queries are real test ids only"
    assert len(set(q_pairs)) == len(q_pairs), "more than one query for a (pid, camera)"
    real = table[table[:, 2] > 0]
    assert set(q_pairs) == {tuple(r) for r in real[:, 2:4].tolist()}, "every (pid, camera) needs its query"
    non_query = np.setdiff1d(np.arange(len(table)), qrows)
    for r in qrows:
        pid, cam = table[r, 2], table[r, 3]
        other_cam = (table[:, 2] == pid) & (table[:, 3] != cam)
        assert other_cam.any(), f"query row {r}: no cross-camera match (official protocol)"
        # torchreid protocol: the gallery drops the queries, a match must still exist
        assert other_cam[non_query].any(), f"query row {r}: no cross-camera match once queries leave the gallery"


def test_junk_and_distractors_exist(tiny_synthetic_mars: Path) -> None:
    table = _table(tiny_synthetic_mars, "test")
    assert (table[:, 2] == -1).sum() == 2 and (table[:, 2] == 0).sum() == 2
    for pid, cams in ((p, set(table[table[:, 2] == p, 3].tolist())) for p in set(table[:, 2].tolist()) if p > 0):
        assert len(cams) >= 2, f"test pid {pid} seen by one camera only"


def test_stamp_and_annotations_describe_the_data(tiny_synthetic_mars: Path) -> None:
    stamp = read_stamp(tiny_synthetic_mars)
    assert stamp is not None and stamp["version"] == synthetic.GENERATOR_VERSION
    assert stamp["params"] == SyntheticMarsParams.create(**TINY).to_json()
    assert stamp["counts"]["test_tracklets"] == len(_table(tiny_synthetic_mars, "test"))
    with open(tiny_synthetic_mars / synthetic.ANNOTATIONS_NAME) as fh:
        rows = list(csv.DictReader(fh))
    # one row per frame, test split first, each split in name-list order
    assert [r["name"] for r in rows] == _names(tiny_synthetic_mars, "test") + _names(tiny_synthetic_mars, "train")
    kinds = {r["adverse"] for r in rows}
    assert kinds <= {"none", *ADVERSE_KINDS, "junk_background", "junk_fragment"}
    assert "none" in kinds and kinds & set(ADVERSE_KINDS), "tiny data should still contain adverse frames"
    assert all(_pid_of(r["name"]) == int(r["pid"]) for r in rows)


# --------------------------------------------------------------------------------- determinism
def _same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    one = make_synthetic_mars(tmp_path / "one", seed=3, **SMALL)
    two = make_synthetic_mars(tmp_path / "two", seed=3, workers=2, **SMALL)  # pool must not matter
    three = make_synthetic_mars(tmp_path / "three", seed=4, **SMALL)
    assert _same_tree(one, two)
    assert not _same_tree(one, three)
    jpgs = sorted((one / "bbox_train").rglob("*.jpg"))
    assert len({p.read_bytes() for p in jpgs}) == len(jpgs), "every frame should be distinct"


def _tree_hash(root: Path) -> str:
    """One sha256 over the sorted ``(relative path, sha256 of the file)`` pairs of a folder."""
    h = hashlib.sha256()
    for p in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{p.relative_to(root).as_posix()}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


# Regression golden from the previous implementation: the single-module generator
# (reid/data/synthetic.py before it became a package, commit 6cc050e) generated the TINY dataset
# with make_synthetic_mars(out, **TINY, progress=False), hashed with _tree_hash (197 files).
# Any change here means the same seed no longer gives the same bytes: cached datasets, reported
# numbers and GENERATOR_VERSION would all need revisiting.
TINY_GOLDEN_SHA256 = "50d235434b0be0673580f2fb3f30b7f6cbe5798f162412e7e3d9ff1e3d8b081e"


def test_tiny_dataset_is_byte_identical_to_the_previous_generator(tmp_path: Path) -> None:
    out = make_synthetic_mars(tmp_path / "tiny", progress=False, **TINY)
    assert _tree_hash(out) == TINY_GOLDEN_SHA256


def test_refuses_non_empty_output_and_bad_parameters(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="full"):
        make_synthetic_mars(tmp_path / "full", **SMALL)
    with pytest.raises(ValueError, match="cameras"):
        SyntheticMarsParams.create(cameras=1)
    with pytest.raises(ValueError, match="frames_min"):
        SyntheticMarsParams.create(frames_min=10, frames_max=5)
    with pytest.raises(ValueError, match="adverse_rates"):
        SyntheticMarsParams.create(adverse_rates={"rain": 0.1})
    with pytest.raises(TypeError, match="colour"):
        SyntheticMarsParams.create(colour=3)


# ------------------------------------------------------------------------------ ensure / cache
def test_ensure_is_cached_and_regenerates_unstamped(tmp_path: Path, capsys) -> None:
    out = tmp_path / "syn"
    assert ensure_synthetic_mars(out, **SMALL) == out
    assert "generating" in capsys.readouterr().out
    stamp_mtime = (out / synthetic.STAMP_NAME).stat().st_mtime_ns
    marker = out / "bbox_train" / "marker"
    marker.write_text("still here")
    assert ensure_synthetic_mars(out, **SMALL) == out
    assert "generating" not in capsys.readouterr().out
    assert marker.exists() and (out / synthetic.STAMP_NAME).stat().st_mtime_ns == stamp_mtime

    (out / synthetic.STAMP_NAME).unlink()  # looks like an interrupted or foreign folder
    ensure_synthetic_mars(out, **SMALL)
    assert "generating" in capsys.readouterr().out
    assert not marker.exists() and read_stamp(out) is not None

    ensure_synthetic_mars(out, **{**SMALL, "seed": 9})  # other parameters: regenerate
    assert read_stamp(out)["params"]["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"], "temporary folders left behind"


def test_ensure_interrupted_generation_leaves_nothing_complete(tmp_path: Path, monkeypatch) -> None:
    real_make = synthetic.make_synthetic_mars

    def crash(out, **kw):
        real_make(out, **kw)
        (Path(out) / synthetic.STAMP_NAME).unlink()
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(synthetic.cache, "make_synthetic_mars", crash)  # the name ensure_synthetic_mars calls
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_mars(tmp_path / "syn", **SMALL)
    assert list(tmp_path.iterdir()) == [], "an interrupted generation must leave no dataset folder"


def test_default_folder_honours_reid_datasets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REID_DATASETS", str(tmp_path / "ds"))
    assert synthetic.default_dataset_dir() == tmp_path / "ds" / "synthetic_mars"
    monkeypatch.delenv("REID_DATASETS")
    assert synthetic.default_dataset_dir() == REPO_ROOT / "datasets" / "synthetic_mars"
    monkeypatch.setenv("REID_DATASETS", str(tmp_path / "ds"))
    assert ensure_synthetic_mars(**SMALL) == tmp_path / "ds" / "synthetic_mars"
    assert (tmp_path / "ds" / "synthetic_mars" / "info" / "query_IDX.mat").is_file()


# ------------------------------------------------------------------------------ content checks
def test_twins_share_upper_body_and_differ_below() -> None:
    base, twin = person_spec(0, 0, 1), person_spec(0, 0, 2, twin_of=1)
    assert (twin.upper_rgb, twin.pattern, twin.long_sleeves) == (base.upper_rgb, base.pattern, base.long_sleeves)
    assert twin.lower != base.lower
    assert (twin.lower_type, twin.bag, twin.hat_rgb is None) != (base.lower_type, base.bag, base.hat_rgb is None)
    params = SyntheticMarsParams.create(ids_train=20, ids_test=20)
    twins = {p.pid for p in synthetic.plan_dataset(params) if p.twin_of is not None}
    assert len(twins) == 2 * round(0.25 * 20 / 2), "twin_fraction of each split should be twins"


def test_cameras_differ_and_colour_cast_is_mild() -> None:
    cams = [camera_spec(0, c) for c in range(1, 5)]
    assert len({c.background for c in cams}) == 4
    for c in cams:
        assert all(0.85 <= x <= 1.15 for x in c.cast), "a strong cast would destroy colour identity"
        assert abs(sum(c.view_probs) - 1) < 1e-9


def test_identity_is_recoverable_across_cameras(tiny_synthetic_mars: Path) -> None:
    """A learnability proxy without a network: hue-saturation histograms of the body region match
    a query to its identity in another camera far above chance."""
    root = tiny_synthetic_mars
    names, table = _names(root, "test"), _table(root, "test")

    def descriptor(row: int) -> np.ndarray:
        start, end = table[row, :2]
        hists = []
        for n in names[start - 1 : end]:
            hsv = cv2.cvtColor(cv2.imread(str(root / "bbox_test" / n[:4] / n)), cv2.COLOR_BGR2HSV)
            body = hsv[20:120, 16:48]
            h = cv2.calcHist([body], [0, 1], None, [18, 4], [0, 180, 0, 256]).ravel()
            hists.append(h / h.sum())
        return np.sqrt(np.mean(hists, axis=0))  # Hellinger embedding

    feats = np.stack([descriptor(r) for r in range(len(table))])
    hits = trials = 0
    for r in _queries(root).ravel().astype(int) - 1:
        valid = (table[:, 2] != -1) & ~((table[:, 2] == table[r, 2]) & (table[:, 3] == table[r, 3]))
        cand = np.flatnonzero(valid)
        best = cand[np.argmax(feats[cand] @ feats[r])]
        hits += int(table[best, 2] == table[r, 2])
        trials += 1
    n_people = len(set(table[:, 2].tolist()) - {-1})
    assert hits / trials >= 3.0 / n_people, f"rank-1 {hits}/{trials} is near chance (1/{n_people})"


def test_adverse_cases_change_the_picture() -> None:
    params = SyntheticMarsParams.create(tiny=True, ids_train=2, ids_test=2)
    plan = next(p for p in synthetic.plan_dataset(params) if p.kind == "person")
    plan = plan.with_frames(2)
    clean, _, _ = synthetic.render_tracklet(params, plan, forced="")
    for kind in ADVERSE_KINDS:
        bad, labels, _ = synthetic.render_tracklet(params, plan, forced=kind)
        assert labels == [kind, kind]
        diff = np.abs(bad[0].astype(int) - clean[0].astype(int)).mean()
        assert diff > 4.0, f"{kind}: frame barely changed (mean abs diff {diff:.1f})"
    # background-only frames really lack the person: the centre matches the empty scene better
    empty, _, _ = synthetic.render_tracklet(params, plan, forced="background")
    assert clean[0].shape == (params.height, params.width, 3)
    assert np.abs(clean[0][30:100, 20:44].astype(int) - empty[0][30:100, 20:44].astype(int)).mean() > 15


# ---------------------------------------------------------------------------- readers and CLIs
def test_round_trip_through_mars_reader(tiny_synthetic_mars: Path) -> None:
    from reid.data.mars import load_mars

    table = _table(tiny_synthetic_mars, "test")
    n_queries = _queries(tiny_synthetic_mars).shape[1]
    data = load_mars(tiny_synthetic_mars, protocol="official")
    assert data.num_train_ids == 6 and len(data.train) == len(_table(tiny_synthetic_mars, "train"))
    assert sorted({t.label for t in data.train}) == list(range(6))
    assert len(data.query) == n_queries and len(data.gallery) == len(table)
    for t in data.train + data.gallery:
        assert all(Path(f).is_file() for f in t.frames)
        assert {_pid_of(Path(f).name) for f in t.frames} == {t.pid}
    tr = load_mars(tiny_synthetic_mars, protocol="torchreid")
    assert len(tr.query) == n_queries and all(t.pid != -1 for t in tr.gallery)
    for q in tr.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in tr.gallery), f"query row {q.row} lost its match"


def _find_int(obj, value: int) -> bool:
    if isinstance(obj, dict):
        return any(_find_int(v, value) for v in obj.values())
    if isinstance(obj, list):
        return any(_find_int(v, value) for v in obj)
    return isinstance(obj, int) and not isinstance(obj, bool) and obj == value


def test_inspect_dataset_cli_reads_synthetic(tiny_synthetic_mars: Path) -> None:
    tool = REPO_ROOT / "tools" / "inspect_dataset.py"
    proc = subprocess.run([sys.executable, str(tool), "--root", str(tiny_synthetic_mars), "--json"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert _find_int(report, len(_table(tiny_synthetic_mars, "train"))), "train tracklet count missing"
    assert _find_int(report, int(_queries(tiny_synthetic_mars).shape[1])), "query count missing"


def test_cli_help_and_preview(tmp_path: Path) -> None:
    tool = REPO_ROOT / "tools" / "make_synthetic_mars.py"
    helptext = subprocess.run([sys.executable, str(tool), "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--ids-train" in helptext and "examples:" in helptext and "MARS" in helptext
    out, png = tmp_path / "syn", tmp_path / "sheet.png"
    proc = subprocess.run([sys.executable, str(tool), "--out", str(out), "--tiny", "--ids-train", "3", "--ids-test", "3",
                           "--cameras", "2", "--preview", str(png)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout[proc.stdout.index("{") : proc.stdout.rindex("}") + 1])["test_ids"] == 3
    sheet = cv2.imread(str(png))
    # rows = 3 test ids, columns = 2 cameras + 5 adverse cases, tiles of the 128x64 frame
    assert sheet is not None and sheet.shape[0] >= 3 * 128 and sheet.shape[1] >= 7 * 64
    bad = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path / "x"), "--cameras", "1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cameras" in bad.stderr


def test_contact_sheet_in_process(tmp_path: Path) -> None:
    path = make_contact_sheet(tmp_path / "s.png", SyntheticMarsParams.create(tiny=True, ids_train=2, ids_test=2), n_ids=2)
    img = cv2.imread(str(path))
    assert img is not None and img.std() > 20, "contact sheet looks blank"
