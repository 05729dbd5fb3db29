"""The ranked-list viewer (issue 12): worst-first by AP by default, the query apart and its own
tracklet not listed, distractors and junk marked, captions with rank / pid / camera / score, and
an index.html linking every PNG with its AP."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from reid.eval import evaluate
from reid.eval.visualize import order_queries, ranked_statuses, visualize_queries


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """6 queries inside a 24-item official gallery (cameras 1-3, one distractor pid 0, one junk -1)."""
    root = tmp_path_factory.mktemp("vis")
    rng = np.random.default_rng(0)
    ng = 24
    gp = np.arange(ng) % 6 + 1
    gp[22], gp[23] = 0, -1
    gc = (np.arange(ng) // 6) % 3 + 1  # blocks of 6: every query has matches on other cameras
    gf = rng.normal(size=(ng, 8)).astype(np.float32)
    q = np.array([0, 1, 2, 3, 4, 5])
    paths = []
    for i in range(ng):
        frames = []
        for f in range(2):
            p = root / "frames" / f"g{i}_{f}.png"
            p.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(p), np.full((32, 16, 3), (i * 10) % 255, np.uint8))
            frames.append(str(p))
        paths.append(frames)
    arrays = dict(query_feats=gf[q], gallery_feats=gf, query_pids=gp[q], query_camids=gc[q], gallery_pids=gp,
                  gallery_camids=gc, query_gallery_index=q)
    return root, arrays, [paths[i] for i in q], paths


def test_order_worst_best_random():
    ap = np.array([0.5, np.nan, 0.1, 0.9, 0.1])
    np.testing.assert_array_equal(order_queries(ap, 5, "worst"), [2, 4, 0, 3, 1])  # NaN (no match) last
    np.testing.assert_array_equal(order_queries(ap, 2, "best"), [3, 0])
    assert len(set(order_queries(ap, 3, "random", seed=1).tolist())) == 3
    with pytest.raises(ValueError, match="worst, best, random"):
        order_queries(ap, 2, "middle")


def test_statuses_mark_distractors_and_self():
    gp, gc = np.array([7, 0, 7, 3]), np.array([1, 2, 2, 2])
    assert ranked_statuses("official", 7, 1, gp, gc) == ["junk", "distractor", "match", "wrong"]
    single = ranked_statuses("single_camera", 7, 1, gp, gc, is_self=np.array([True, False, False, False]))
    assert single == ["junk", "distractor", "match", "wrong"]


def test_pngs_index_and_worst_first_order(case, tmp_path):
    _, arrays, q_paths, g_paths = case
    report = evaluate(*(arrays[k] for k in ("query_feats", "gallery_feats", "query_pids", "query_camids",
                                            "gallery_pids", "gallery_camids")), protocol="official")
    written = visualize_queries(arrays, q_paths, g_paths, tmp_path, 4, "official", topk=5)
    assert len(written) == 4 and len(list(tmp_path.glob("*.png"))) == 4
    shown = [int(re.search(r"query_(\d+)", p.name).group(1)) for p in written]
    ap = report.average_precision
    assert not np.isnan(ap).any() and len(set(ap.tolist())) > 2  # a case where the order means something
    assert shown == order_queries(ap, 4, "worst").tolist()
    assert all(ap[a] <= ap[b] for a, b in zip(shown, shown[1:]))  # worst first
    html = (tmp_path / "index.html").read_text()
    links = re.findall(r'<a href="([^"]+\.png)">query', html)
    assert links == [p.name for p in written]  # the index lists every PNG, in order
    assert all((tmp_path / name).is_file() for name in links)
    assert f"{100 * ap[shown[0]]:.2f}%" in html
    best = visualize_queries(arrays, q_paths, g_paths, tmp_path / "best", 2, "official", topk=5, order="best")
    assert [int(re.search(r"query_(\d+)", p.name).group(1)) for p in best] == order_queries(ap, 2, "best").tolist()


def test_the_query_itself_is_not_listed(case, tmp_path, monkeypatch):
    """Under official the query's own entry ranks first (identical features) and would be '#1
    junk': it is left out, and the list still holds topk tracklets."""
    import reid.eval.visualize as vis

    _, arrays, q_paths, g_paths = case
    seen = []

    def fake_save(query_frames, gallery_frames, statuses, out_path, captions=None, **kw):
        seen.append((query_frames, gallery_frames, statuses, captions, kw["query_caption"]))
        return out_path

    monkeypatch.setattr(vis, "save_ranked_list", fake_save)
    vis.visualize_queries(arrays, q_paths, g_paths, tmp_path, 6, "official", topk=5)
    for query_frames, gallery_frames, statuses, captions, query_caption in seen:
        assert query_frames not in gallery_frames and len(gallery_frames) == 5
        assert re.fullmatch(r"#1 \w+\npid -?\d+ cam \d+\nsim -?\d\.\d{3}", captions[0])
        assert query_caption.startswith("query ") and "pid" in query_caption and ("AP" in query_caption
                                                                              or "no valid match" in query_caption)
    # without query_gallery_index the self entry is found from the bit-identical features
    seen.clear()
    no_index = {k: v for k, v in arrays.items() if k != "query_gallery_index"}
    vis.visualize_queries(no_index, q_paths, g_paths, tmp_path, 6, "official", topk=5)
    assert all(q not in g for q, g, *_ in seen)
