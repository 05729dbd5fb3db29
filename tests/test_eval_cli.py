"""tools/eval.py: --json output, error messages, and the ranked-list visualiser."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reid.eval import evaluate

REPO = Path(__file__).resolve().parents[1]


def _write_npz(path, rng, with_paths=None, drop=None):
    nq, ng = 6, 30
    arrays = dict(
        query_feats=rng.normal(size=(nq, 8)).astype(np.float32),
        gallery_feats=rng.normal(size=(ng, 8)).astype(np.float32),
        query_pids=np.arange(nq) % 3 + 1,
        query_camids=np.ones(nq, np.int64),
        gallery_pids=rng.integers(1, 5, ng),
        gallery_camids=rng.integers(1, 4, ng),
    )
    if with_paths is not None:
        arrays.update(with_paths)
    if drop:
        arrays.pop(drop)
    np.savez(path, **arrays)
    return arrays


def _run(*args):
    return subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_json_output_is_one_object_matching_the_library(tmp_path):
    arrays = _write_npz(tmp_path / "f.npz", np.random.default_rng(0))
    res = _run("--features", tmp_path / "f.npz", "--protocol", "torchreid", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # exactly one JSON document on stdout
    for key in ("protocol", "metric", "mAP", "rank1", "rank5", "rank10", "rank20", "mINP", "queries",
                "queries_without_match"):
        assert key in out
    ref = evaluate(*(arrays[k] for k in ("query_feats", "gallery_feats", "query_pids", "query_camids",
                                          "gallery_pids", "gallery_camids")), protocol="torchreid")
    assert out["protocol"] == "torchreid" and out["mAP"] == pytest.approx(ref.mAP)
    assert out["queries"] == 6


def test_missing_key_and_missing_file_errors(tmp_path):
    _write_npz(tmp_path / "f.npz", np.random.default_rng(0), drop="gallery_camids")
    res = _run("--features", tmp_path / "f.npz", "--protocol", "official")
    assert res.returncode != 0 and "lacks key(s) gallery_camids" in res.stderr
    res = _run("--features", tmp_path / "nope.npz", "--protocol", "official")
    assert res.returncode != 0 and "features file not found" in res.stderr


def test_help_teaches():
    res = _run("--help")
    assert res.returncode == 0 and "examples:" in res.stdout and "torchreid" in res.stdout


def test_table_and_visualize(tmp_path):
    import cv2

    rng = np.random.default_rng(1)
    def tracklets(prefix, n):
        out = []
        for i in range(n):
            frames = []
            for f in range(4):
                p = tmp_path / "frames" / f"{prefix}{i}_{f}.jpg"
                p.parent.mkdir(exist_ok=True)
                img = np.full((64, 32, 3), (i * 40) % 255, np.uint8)
                img[f * 8:(f + 1) * 8] = 255
                cv2.imwrite(str(p), img)
                frames.append(str(p))
            out.append(frames)
        return out
    q, g = tracklets("q", 6), tracklets("g", 30)
    paths = {
        "query_frame_paths": np.array(sum(q, []), dtype=str),
        "query_frame_offsets": np.arange(0, 25, 4),
        "gallery_frame_paths": np.array(sum(g, []), dtype=str),
        "gallery_frame_offsets": np.arange(0, 121, 4),
    }
    _write_npz(tmp_path / "f.npz", rng, with_paths=paths)
    res = _run("--features", tmp_path / "f.npz", "--protocol", "official", "--visualize", 2,
               "--out", tmp_path / "vis", "--topk", 5)
    assert res.returncode == 0, res.stderr
    assert "protocol: official" in res.stdout
    pngs = sorted((tmp_path / "vis").glob("*.png"))
    assert len(pngs) == 2
    img = cv2.imread(str(pngs[0]))
    assert img is not None and img.shape[1] > img.shape[0]  # a horizontal strip


def test_help_lists_protocols_and_metrics_from_the_registries():
    from reid.eval import METRICS
    from reid.protocols import PROTOCOLS

    res = _run("--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())  # argparse and the epilog wrap lines
    for name, protocol in PROTOCOLS.items():
        assert f"{{{','.join(PROTOCOLS)}}}" in text and name in text
        assert " ".join(protocol.description.split()) in text, name
    for name, description in METRICS.items():
        assert f"{name} {description}" in text


def test_visualised_statuses_follow_the_protocol():
    """Colours come from Protocol.junk_mask / positive_mask: pid -1 is junk only under official,
    same pid + camera is junk under both, same pid on another camera is a match."""
    from reid.eval.visualize import ranked_statuses

    gallery_pids = np.array([7, 7, -1, 3, 7])
    gallery_camids = np.array([1, 2, 2, 2, 1])
    assert ranked_statuses("official", 7, 1, gallery_pids, gallery_camids) == ["junk", "match", "junk", "wrong", "junk"]
    assert ranked_statuses("torchreid", 7, 1, gallery_pids, gallery_camids) == ["junk", "match", "wrong", "wrong", "junk"]
    # a pid -1 query has no match under official: its same-pid items are junk
    assert ranked_statuses("official", -1, 1, gallery_pids, gallery_camids)[2] == "junk"
