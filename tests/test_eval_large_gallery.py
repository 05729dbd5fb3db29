"""The tiled large-gallery scorer gives evaluate()'s report bit for bit (ties, junk, every
protocol, both metrics, any tile shape, the band re-run path), and the ANN helpers' truncated
metrics equal the exact ones on full lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reid.eval.large_gallery as lg
from reid.eval import EvaluationInputError, evaluate
from reid.eval.ann import ann_search, recall_at_k, truncated_metrics
from reid.eval.knn import knn_search
from reid.eval.large_gallery import evaluate_large_gallery
from reid.eval.rank_bands import score_intervals

PROTOCOLS = ["official", "torchreid", "single_camera"]


def split(rng, protocol, ties, nq=40, ng=300, d=8):
    """Queries and gallery with junk (pid -1, same pid and camera), distractors (pid 0), queries
    without a match and, with ``ties``, rows from a small pool of {-1, 0, 1} vectors (four
    non-zeros: every score is exact in float32, so equal scores are really equal)."""
    qp = rng.integers(1, 18, nq)  # pids 15..17 are not in the gallery
    qc = rng.integers(1, 4, nq)
    gp = rng.choice(np.array([-1, 0] + list(range(1, 15))), ng)
    gc = rng.integers(1, 4, ng)
    qp[0], qc[0] = 14, 1  # its only same-pid items share its camera
    gc[gp == 14] = 1
    if ties:
        pool = np.zeros((12, d), np.float32)
        for v in pool:
            v[rng.choice(d, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
        qf, gf = pool[rng.integers(0, 12, nq)], pool[rng.integers(0, 12, ng)]
    else:
        qf, gf = rng.normal(size=(nq, d)).astype(np.float32), rng.normal(size=(ng, d)).astype(np.float32)
    if protocol != "torchreid":  # these protocols keep the queries in the gallery
        gf, gp, gc = np.concatenate([gf, qf]), np.concatenate([gp, qp]), np.concatenate([gc, qc])
    return qf, gf, qp, qc, gp, gc


def assert_same_report(rep, ref):
    a, b = rep.to_dict(), ref.to_dict()
    assert a.keys() == b.keys()
    for key in a:  # equal to the last bit (NaN only where both are NaN)
        assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key
    np.testing.assert_array_equal(rep.first_hit_rank, ref.first_hit_rank)
    np.testing.assert_array_equal(rep.hardest_hit_rank, ref.hardest_hit_rank)
    np.testing.assert_array_equal(rep.num_positives, ref.num_positives)
    np.testing.assert_array_equal(rep.average_precision, ref.average_precision)  # NaN == NaN here


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_equals_evaluate_for_any_tile(protocol, metric, ties):
    rng = np.random.default_rng(PROTOCOLS.index(protocol) * 4 + 2 * (metric == "cosine") + ties)
    data = split(rng, protocol, ties)
    ref = evaluate(*data, protocol=protocol, metric=metric)
    assert 0 < ref.mAP < 1 and (ref.queries_without_match >= 1 or protocol == "single_camera")
    for query_block, gallery_block in [(1, 17), (40, 1), (7, 13), (100, 1000)]:
        rep = evaluate_large_gallery(*data, protocol=protocol, metric=metric, query_block=query_block,
                                     gallery_block=gallery_block)
        assert_same_report(rep, ref)


def test_ties_decided_by_gallery_index_across_tiles():
    """Every gallery row equal: every score ties, so ranks are pure gallery-index order even
    when the tied items sit in other tiles than the positive."""
    rng = np.random.default_rng(7)
    gf = np.ones((60, 4), np.float32)
    qf = np.ones((5, 4), np.float32)
    gp, gc = rng.integers(0, 6, 60), rng.integers(1, 3, 60)
    qp, qc = np.arange(1, 6), np.full(5, 3)
    ref = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid")
    rep = evaluate_large_gallery(qf, gf, qp, qc, gp, gc, protocol="torchreid", query_block=2, gallery_block=7)
    assert_same_report(rep, ref)
    q1 = np.flatnonzero(gp == 1)
    assert rep.first_hit_rank[0] == q1[0] + 1  # only earlier items outrank the first positive


def test_larger_random_case_and_single_camera_index():
    rng = np.random.default_rng(11)
    nq, ng, d = 120, 4000, 24
    gp, gc = rng.integers(0, 400, ng), rng.integers(1, 3, ng)
    centres = rng.normal(size=(400, d)).astype(np.float32)
    gf = centres[gp] + rng.normal(size=(ng, d)).astype(np.float32)
    own = rng.choice(ng, nq, replace=False)  # the queries are gallery items
    qf, qp, qc = gf[own].copy(), gp[own], gc[own]
    for protocol, index in [("torchreid", None), ("single_camera", own)]:
        ref = evaluate(qf, gf, qp, qc, gp, gc, protocol=protocol, query_gallery_index=index)
        assert 0.1 < ref.mAP < 1 and ref.queries_without_match < nq
        rep = evaluate_large_gallery(qf, gf, qp, qc, gp, gc, protocol=protocol, query_gallery_index=index,
                                     query_block=32, gallery_block=700)
        assert_same_report(rep, ref)


def test_positive_outside_its_band_is_rerun_wider(monkeypatch):
    """Zero-width bands miss most positives' GEMM scores: those queries are re-run (the last
    widening is the whole range) and the result is still exact."""
    calls = []
    sweep = lg._sweep

    def spy(*args):
        calls.append((len(args[2].qp), args[5]))
        return sweep(*args)

    monkeypatch.setattr(lg, "_sweep", spy)
    monkeypatch.setattr(lg, "_WIDEN", (0.0, 0.0, np.inf))
    data = split(np.random.default_rng(3), "official", ties=False)
    ref = evaluate(*data, protocol="official", metric="euclidean")
    rep = evaluate_large_gallery(*data, protocol="official", metric="euclidean", query_block=8, gallery_block=40)
    assert_same_report(rep, ref)
    assert calls[0] == (40, 0.0) and calls[-1][1] == np.inf and 0 < calls[-1][0] < 40


def test_euclidean_beyond_float32_range_and_wide_input():
    data = list(split(np.random.default_rng(5), "torchreid", ties=False))
    data[0], data[1] = data[0].astype(np.float64) * 1e30, data[1].astype(np.float64) * 1e30
    ref = evaluate(*data, protocol="torchreid", metric="euclidean")
    rep = evaluate_large_gallery(*data, protocol="torchreid", metric="euclidean", query_block=9, gallery_block=31)
    assert_same_report(rep, ref)


def test_zero_gallery_row_is_the_same_error_as_evaluate():
    qf, gf, qp, qc, gp, gc = split(np.random.default_rng(2), "torchreid", ties=False)
    gf[123] = 0
    with pytest.raises(EvaluationInputError) as ours:
        evaluate_large_gallery(qf, gf, qp, qc, gp, gc, protocol="torchreid")
    with pytest.raises(EvaluationInputError) as theirs:
        evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid")
    assert str(ours.value) == str(theirs.value) and "row 123" in str(ours.value)


def test_score_intervals_hold_the_gemm_scores_and_are_narrow():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(64, 256)).astype(np.float32)
    g = rng.normal(size=(500, 256)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    s = torch.mm(torch.from_numpy(q), torch.from_numpy(g).t()).numpy()
    rows, cols = np.divmod(np.arange(s.size), s.shape[1])
    lo, hi = score_intervals(q[rows], g[cols], None)
    assert ((lo <= s.ravel()) & (s.ravel() <= hi)).all()
    assert (hi - lo).max() < 1e-4  # a few hundred ulps: bands stay a handful of items wide


# ---------------------------------------------------------------------------------------------
# approximate search and truncated metrics


@pytest.mark.parametrize("protocol", ["official", "torchreid"])
def test_truncated_metrics_of_full_exact_lists_equal_exact_metrics(protocol):
    qf, gf, qp, qc, gp, gc = split(np.random.default_rng(9), protocol, ties=False)
    ref = evaluate(qf, gf, qp, qc, gp, gc, protocol=protocol).to_dict()
    _, idx = knn_search(qf, gf, len(gf), use_gpu=False)
    got = truncated_metrics(idx, qp, qc, gp, gc, protocol)
    for key in ("mAP", "rank1", "rank5", "mINP", "queries_without_match"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key


def test_truncation_counts_unretrieved_positives_as_zero():
    # one query, positives at gallery 0, 2, 5; the list [0, 1, 2] retrieves two of them
    gp, gc = np.array([1, 0, 1, 0, 0, 1]), np.array([2, 2, 2, 2, 2, 2])
    got = truncated_metrics(np.array([[0, 1, 2]]), [1], [1], gp, gc, "torchreid", ranks=(1, 2))
    assert got["mAP"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert got["rank1"] == 1.0 and got["mINP"] == 0.0  # the hardest positive was not retrieved


def test_ann_indexes_and_recall():
    rng = np.random.default_rng(4)
    q, g = rng.normal(size=(30, 16)).astype(np.float32), rng.normal(size=(500, 16)).astype(np.float32)
    _, exact = knn_search(q, g, 10, use_gpu=False)
    _, full, info = ann_search(q, g, 10, index="ivf_flat", nlist=8, nprobe=8, train_size=500)
    assert info == {"index": "ivf_flat", "metric": "cosine", "k": 10, "nlist": 8, "nprobe": 8, "train_size": 500,
                    "niter": 10}
    assert recall_at_k(full, exact) == 1.0  # every list scanned: exact
    _, partial, _ = ann_search(q, g, 10, index="ivf_flat", nlist=32, nprobe=1, train_size=500)
    assert 0.0 < recall_at_k(partial, exact) < 1.0
    _, hnsw, info = ann_search(q, g, 10, metric="euclidean", index="hnsw", efSearch=64)
    assert info["index"] == "hnsw" and info["efSearch"] == 64 and recall_at_k(hnsw, exact) > 0
    with pytest.raises(EvaluationInputError, match="nprobe"):
        ann_search(q, g, 10, index="hnsw", nprobe=3)


def test_evaluate_hands_over_to_the_large_scorer_from_the_threshold(monkeypatch):
    import reid.eval.metrics as metrics

    rng = np.random.default_rng(11)
    data = split(rng, "official", ties=True)
    classic = evaluate(*data, protocol="official", large_gallery=False)
    calls = []
    real = lg.evaluate_large_gallery

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(lg, "evaluate_large_gallery", spy)
    monkeypatch.setattr(metrics, "LARGE_GALLERY_MIN_ITEMS", len(data[1]) + 1)
    assert_same_report(evaluate(*data, protocol="official"), classic)
    assert not calls, "below the threshold evaluate keeps its own path"
    monkeypatch.setattr(metrics, "LARGE_GALLERY_MIN_ITEMS", len(data[1]))
    assert_same_report(evaluate(*data, protocol="official"), classic)
    assert len(calls) == 1, "from the threshold on evaluate hands over"
    assert_same_report(evaluate(*data, protocol="official", large_gallery=True, chunk_size=7), classic)
    # re-ranking needs the whole matrix: never handed over, and refused when forced
    evaluate(*data, protocol="official", rerank=True)
    assert len(calls) == 2
    with pytest.raises(EvaluationInputError, match="large_gallery=True cannot re-rank"):
        evaluate(*data, protocol="official", rerank=True, large_gallery=True)
