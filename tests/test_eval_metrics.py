"""Exact metrics against plainly written references (full sort per query, literal loops),
sklearn's average precision, pytorch-metric-learning's mAP, and the real MARS index structure."""

from __future__ import annotations

import numpy as np
import pytest

from reid.eval import EvaluationInputError, evaluate, format_report
from reid.eval.metrics import ap_from_ranks

# ---------------------------------------------------------------------------------------------
# naive reference: everything spelled out, one query at a time


def naive_scores(qf, gf, metric):
    qf = qf.astype(np.float64)
    gf = gf.astype(np.float64)
    if metric == "cosine":
        qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        return qf @ gf.T
    return -((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)  # higher = closer


def matlab_compute_ap(good: set, junk: set, ranked: list) -> float:
    """Literal port of MARS-evaluation compute_AP.m (trapezoidal, old_precision starts at 1)."""
    ngood = len(good)
    old_recall, old_precision, ap = 0.0, 1.0, 0.0
    intersect_size, j, good_now = 0, 0, 0
    for item in ranked:
        if item in junk:
            continue
        j += 1
        if item in good:
            intersect_size += 1
            good_now += 1
        recall = intersect_size / ngood
        precision = intersect_size / j
        ap += (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        if good_now == ngood:
            break
    return ap


def naive_evaluate(qf, gf, qp, qc, gp, gc, protocol, metric, ranks=(1, 5, 10, 20)):
    s = naive_scores(qf, gf, metric)
    aps, first, inps, skipped = [], [], [], 0
    for i in range(len(qf)):
        # full sort, ties broken by ascending gallery index
        order = sorted(range(len(gf)), key=lambda j: (-s[i, j], j))
        junk = {j for j in range(len(gf)) if gp[j] == qp[i] and gc[j] == qc[i]}
        if protocol == "official":
            junk |= {j for j in range(len(gf)) if gp[j] == -1}
        good = {j for j in range(len(gf)) if gp[j] == qp[i] and j not in junk}
        if not good:
            skipped += 1
            continue
        if protocol == "official":
            aps.append(matlab_compute_ap(good, junk, order))
        kept = [j for j in order if j not in junk]
        hits, precisions, hit_positions = 0, [], []
        for pos, j in enumerate(kept, start=1):
            if j in good:
                hits += 1
                precisions.append(hits / pos)
                hit_positions.append(pos)
        if protocol == "torchreid":
            aps.append(sum(precisions) / len(good))
        first.append(hit_positions[0])
        inps.append(len(good) / hit_positions[-1])
    first = np.array(first)
    return {
        "mAP": float(np.mean(aps)),
        **{f"rank{k}": float(np.mean(first <= k)) for k in ranks},
        "mINP": float(np.mean(inps)),
        "queries_without_match": skipped,
        "aps": np.array(aps),
    }


# ---------------------------------------------------------------------------------------------
# data


def tie_heavy_features(rng, n, pool):
    """Rows drawn from a small pool of {-1,0,1}^8 vectors with exactly four non-zeros: duplicate
    rows and equal dot products give many exact ties, and every score is exact in float32
    (normalised entries are +-0.5), so reference and library see the very same ties."""
    vecs = np.zeros((pool, 8), np.float32)
    for v in vecs:
        nz = rng.choice(8, 4, replace=False)
        v[nz] = rng.choice([-1.0, 1.0], 4)
    return vecs[rng.integers(0, pool, n)]


def make_split(rng, protocol, ties, nq=30, ng=120, d=8):
    pids = np.array([-1, 0] + list(range(1, 13)))
    qp = rng.choice(np.arange(1, 16), nq)  # pids 13..15 never appear in the gallery: no match
    qc = rng.integers(1, 4, nq)
    gp = rng.choice(pids, ng)
    gc = rng.integers(1, 4, ng)
    # a query whose only same-pid gallery items share its camera: no valid match
    qp[0] = 12
    qc[qp == 12] = 1  # also holds once the queries are appended to the official gallery
    gc[gp == 12] = 1
    if ties:
        qf = tie_heavy_features(rng, nq, 25)
        gf = tie_heavy_features(rng, ng, 25)
    else:
        qf = rng.normal(size=(nq, d)).astype(np.float32)
        gf = rng.normal(size=(ng, d)).astype(np.float32)
    if protocol == "official":  # the official gallery contains the queries
        gf = np.concatenate([gf, qf])
        gp = np.concatenate([gp, qp])
        gc = np.concatenate([gc, qc])
    return qf, gf, qp, qc, gp, gc


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("protocol", ["official", "torchreid"])
def test_matches_naive_reference(protocol, metric, ties):
    seed = ["official", "torchreid"].index(protocol) * 4 + ["cosine", "euclidean"].index(metric) * 2 + ties
    rng = np.random.default_rng(seed)
    qf, gf, qp, qc, gp, gc = make_split(rng, protocol, ties)
    ref = naive_evaluate(qf, gf, qp, qc, gp, gc, protocol, metric)
    rep = evaluate(qf, gf, qp, qc, gp, gc, protocol=protocol, metric=metric, chunk_size=7)
    d = rep.to_dict()
    assert d["protocol"] == protocol and d["metric"] == metric
    assert d["queries"] == len(qf)
    assert d["queries_without_match"] == ref["queries_without_match"] >= 1
    for key in ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP"):
        assert d[key] == pytest.approx(ref[key], abs=1e-12), key
    matched = rep.num_positives > 0
    np.testing.assert_allclose(rep.average_precision[matched], ref["aps"], atol=1e-12)
    assert np.isnan(rep.average_precision[~matched]).all()
    assert (rep.first_hit_rank[~matched] == 0).all()


def test_chunk_size_does_not_change_results():
    rng = np.random.default_rng(3)
    data = make_split(rng, "official", ties=True)
    a = evaluate(*data, chunk_size=1)
    b = evaluate(*data, chunk_size=1000)
    np.testing.assert_array_equal(a.first_hit_rank, b.first_hit_rank)
    np.testing.assert_array_equal(a.hardest_hit_rank, b.hardest_hit_rank)
    assert a.to_dict() == b.to_dict()


def test_protocols_differ_on_the_same_split():
    """pid -1 items are junk only under the official rule; AP conventions differ."""
    rng = np.random.default_rng(4)
    data = make_split(rng, "official", ties=False)
    off = evaluate(*data, protocol="official")
    tr = evaluate(*data, protocol="torchreid")
    assert off.mAP != tr.mAP


def test_closed_form_ap_equals_matlab_loop_on_explicit_ranks():
    # positives at non-junk ranks 1, 3, 4, 9 out of 12
    ranks = np.array([[1, 3, 4, 9]])
    good = {1, 3, 4, 9}
    expected = matlab_compute_ap(good, set(), list(range(1, 13)))
    assert ap_from_ranks(ranks, np.array([4]), "official")[0] == pytest.approx(expected, abs=1e-15)
    assert ap_from_ranks(ranks, np.array([4]), "torchreid")[0] == pytest.approx(
        (1 / 1 + 2 / 3 + 3 / 4 + 4 / 9) / 4, abs=1e-15
    )
    # a perfect list has AP 1 in both conventions
    assert ap_from_ranks(np.array([[1, 2]]), np.array([2]), "official")[0] == 1.0


def test_hand_computed_example():
    """4 gallery items on a line, query at 0: scores strictly ordered, one junk item."""
    qf = np.array([[0.0]], np.float32) + 0
    gf = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)
    qp, qc = np.array([7]), np.array([1])
    gp = np.array([7, 5, 7, 7])
    gc = np.array([2, 2, 1, 3])  # gallery 2 shares the query's camera: junk
    rep = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid", metric="euclidean")
    # non-junk ranked list: g0 (hit), g1 (miss), g3 (hit) -> ranks 1, 3
    assert rep.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert rep.mINP == pytest.approx(2 / 3)
    assert rep.cmc[1] == 1.0
    assert list(rep.first_hit_rank) == [1] and list(rep.hardest_hit_rank) == [3]


# ---------------------------------------------------------------------------------------------
# external references


def test_torchreid_ap_equals_sklearn_average_precision():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(5)
    qf, gf, qp, qc, gp, gc = make_split(rng, "torchreid", ties=False)
    rep = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid", metric="cosine")
    s = naive_scores(qf, gf, "cosine")
    checked = 0
    for i in range(len(qf)):
        keep = ~((gp == qp[i]) & (gc == qc[i]))
        y = gp[keep] == qp[i]
        if not y.any():
            continue
        assert rep.average_precision[i] == pytest.approx(average_precision_score(y, s[i, keep]), abs=1e-10)
        checked += 1
    assert checked >= 10


def test_map_equals_pytorch_metric_learning_without_cameras():
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    rng = np.random.default_rng(6)
    nq, ng = 25, 80
    centers = rng.normal(size=(6, 16))
    qp = rng.integers(0, 6, nq)
    gp = rng.integers(0, 6, ng)
    qf = (centers[qp] + rng.normal(size=(nq, 16))).astype(np.float32)
    gf = (centers[gp] + rng.normal(size=(ng, 16))).astype(np.float32)
    # every camera distinct -> no same-camera junk; query not in the gallery
    qc = np.arange(nq) + 1000
    gc = np.arange(ng)
    # PML's default kNN is FAISS L2 on the raw embeddings: our "euclidean" ranking
    ours = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid", metric="euclidean")
    calc = AccuracyCalculator(include=("mean_average_precision",), k=ng)
    pml = calc.get_accuracy(
        torch.from_numpy(qf), torch.from_numpy(qp), torch.from_numpy(gf), torch.from_numpy(gp),
        ref_includes_query=False,
    )
    assert ours.queries_without_match == 0
    assert ours.mAP == pytest.approx(pml["mean_average_precision"], abs=1e-6)
    # and on pre-normalised embeddings, L2 ranking == our cosine ranking
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    ours_cos = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid", metric="cosine")
    pml_cos = calc.get_accuracy(
        torch.from_numpy(qn), torch.from_numpy(qp), torch.from_numpy(gn), torch.from_numpy(gp),
        ref_includes_query=False,
    )
    assert ours_cos.mAP == pytest.approx(pml_cos["mean_average_precision"], abs=1e-6)


# ---------------------------------------------------------------------------------------------
# real MARS index structure


def test_real_mars_structure_matchless_queries(mars_info_dir):
    from scipy.io import loadmat

    test = loadmat(mars_info_dir / "tracks_test_info.mat")["track_test_info"]
    query_rows = loadmat(mars_info_dir / "query_IDX.mat")["query_IDX"].ravel().astype(np.int64) - 1
    assert test.shape == (12180, 4) and query_rows.shape == (1980,)
    pids, cams = test[:, 2].astype(np.int64), test[:, 3].astype(np.int64)
    rng = np.random.default_rng(7)
    # identity-clustered features (like a trained model's): cheap to score exactly
    _, pid_index = np.unique(pids, return_inverse=True)
    centers = rng.normal(size=(pid_index.max() + 1, 16))
    feats = (centers[pid_index] + 0.7 * rng.normal(size=(len(test), 16))).astype(np.float32)
    qf, qp, qc = feats[query_rows], pids[query_rows], cams[query_rows]

    official = evaluate(qf, feats, qp, qc, pids, cams, protocol="official")
    assert official.queries == 1980 and official.gallery == 12180
    assert official.queries_without_match == 0

    is_query = np.zeros(len(test), bool)
    is_query[query_rows] = True
    g = ~is_query & (pids != -1)
    tr = evaluate(qf, feats[g], qp, qc, pids[g], cams[g], protocol="torchreid")
    assert tr.gallery == 9330
    assert tr.queries_without_match == 140
    assert 0.0 <= tr.mAP <= 1.0 and "torchreid" in format_report(tr)
    assert "140 without any valid match" in format_report(tr)


# ---------------------------------------------------------------------------------------------
# input validation


def _ok_inputs():
    rng = np.random.default_rng(0)
    return dict(
        query_feats=rng.normal(size=(3, 4)),
        gallery_feats=rng.normal(size=(5, 4)),
        query_pids=[1, 2, 3],
        query_camids=[1, 1, 1],
        gallery_pids=[1, 2, 3, 1, 2],
        gallery_camids=[2, 2, 2, 2, 2],
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(gallery_pids=[1, 2, 3]), "gallery_pids has 3 entries but gallery_feats has 5 rows"),
        (dict(query_camids=[1, 1]), "query_camids has 2 entries but query_feats has 3 rows"),
        (dict(gallery_feats=np.zeros((0, 4))), "gallery_feats is empty"),
        (dict(query_feats=np.zeros((0, 4)), query_pids=[], query_camids=[]), "query_feats is empty"),
        (dict(gallery_feats=np.ones((5, 3))), "feature dimension mismatch"),
        (dict(query_feats=np.ones(3)), "query_feats must be a 2-D array"),
        (dict(query_feats=np.array([[1, 2, 3, np.nan]] * 3)), "query_feats contains NaN or inf values (first at row 0)"),
        (dict(gallery_feats=np.array([[1, 2, 3, 4]] * 4 + [[np.inf, 0, 0, 0]])), "row 4"),
        (dict(query_pids=[1.5, 2, 3]), "query_pids must hold integer ids"),
    ],
)
def test_input_errors_name_the_array(change, message):
    kw = _ok_inputs() | change
    with pytest.raises(EvaluationInputError) as err:
        evaluate(**kw)
    assert message in str(err.value)


def test_bad_protocol_and_zero_vector():
    kw = _ok_inputs()
    with pytest.raises(EvaluationInputError, match="unknown protocol 'market'"):
        evaluate(**kw, protocol="market")
    kw["gallery_feats"][2] = 0
    with pytest.raises(EvaluationInputError, match="gallery_feats row 2 is all zeros"):
        evaluate(**kw, metric="cosine")
    assert evaluate(**kw, metric="euclidean").queries == 3


# ---------------------------------------------------------------------------------------------
# protocol objects and the metric registry


def test_protocol_object_equals_its_name_and_report_names_it():
    from reid.protocols import get_protocol

    rng = np.random.default_rng(8)
    data = make_split(rng, "official", ties=True)
    for name in ("official", "torchreid"):
        by_name = evaluate(*data, protocol=name, chunk_size=5)
        by_object = evaluate(*data, protocol=get_protocol(name), chunk_size=5)
        assert by_object.protocol == name and isinstance(by_object.protocol, str)
        assert by_object.to_dict() == by_name.to_dict()
        np.testing.assert_array_equal(by_object.average_precision, by_name.average_precision)


def test_ap_rule_comes_from_the_protocol_object():
    import dataclasses

    from reid.protocols import get_protocol

    ranks, n = np.array([[1, 3, 4, 9]]), np.array([4])
    official = get_protocol("official")
    as_torchreid_ap = dataclasses.replace(official, name="official-noninterp", ap="non_interpolated")
    assert ap_from_ranks(ranks, n, official)[0] == ap_from_ranks(ranks, n, "official")[0]
    assert ap_from_ranks(ranks, n, as_torchreid_ap)[0] == ap_from_ranks(ranks, n, "torchreid")[0]


def test_junk_pids_of_a_new_protocol_act_as_removed_items():
    """A protocol that also ignores distractors (pid 0) scores like ``official`` on a gallery
    without them: junk is neither positive nor negative."""
    import dataclasses

    from reid.protocols import get_protocol

    rng = np.random.default_rng(9)
    qf, gf, qp, qc, gp, gc = make_split(rng, "official", ties=False)
    no_distractors = dataclasses.replace(get_protocol("official"), name="no-distractors", junk_pids=(-1, 0))
    ours = evaluate(qf, gf, qp, qc, gp, gc, protocol=no_distractors)
    keep = gp != 0
    ref = evaluate(qf, gf[keep], qp, qc, gp[keep], gc[keep], protocol="official")
    assert ours.protocol == "no-distractors"
    for key in ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP", "queries_without_match"):
        assert ours.to_dict()[key] == pytest.approx(ref.to_dict()[key], abs=1e-12), key


def test_unknown_metric_lists_the_registry_choices():
    from reid.eval import METRICS
    from reid.registry import UnknownChoiceError

    assert METRICS.names() == ("cosine", "euclidean") and "cosine similarity" in METRICS["cosine"]
    with pytest.raises(EvaluationInputError, match="unknown distance metric 'cosin'.*Did you mean 'cosine'"):
        evaluate(**_ok_inputs(), metric="cosin")
    with pytest.raises(UnknownChoiceError, match="eval.metric: unknown distance metric 'l1'"):
        METRICS.check("l1", key="eval.metric")
    with pytest.raises(UnknownChoiceError, match="choices: official, torchreid"):  # also a registry miss
        evaluate(**_ok_inputs(), protocol="market")
