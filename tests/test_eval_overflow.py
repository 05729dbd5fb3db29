"""Evaluation is correct for any finite input (issue 13, item 3).

Features multiplied by 1e19 (finite in float32) used to overflow the float32 scorers: euclidean
returned mAP 125 % and mINP 200 %, cosine a wrong mAP, 1e-30 an "all zeros" error. Ranking by
cosine similarity is invariant to a positive scale of each row and ranking by Euclidean distance
to one common positive scale of query and gallery, so every scale must give the unscaled
features' results, on every path: exact metrics, FAISS lists, re-ranking.

"Equal" means equal, not approximately: every report field and per-query array. With exact ties
(the tie-heavy features below) that needs scaled features that float32 arithmetic treats exactly
like the unscaled ones: a power-of-two scale (exact in every float operation) anywhere, or any
scale beyond the range float32 scoring can take, where the evaluator divides by the maximum
magnitude and recovers the unscaled {-1, 0, 1} entries exactly. (An ordinary scale such as 1e12
rounds the entries, and float32 rounding then decides exact ties differently: the same as before
this fix and in any float32 scorer, so not tested for ties.) Gaussian features have no exact ties
and are tested at decimal scales.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from reid.eval import EvaluationInputError, evaluate
from reid.eval.features import l2_normalize, prepare_features
from reid.eval.knn import knn_search
from reid.eval.report import MetricOutOfBoundsError, RetrievalReport
from reid.eval.rerank import KReciprocalReranker

# decimal scales beyond float32 scoring's range, and powers of two inside it (see the docstring)
TIE_SCALES = [1e-30, 2.0**-30, 2.0**30, 1e19]
GAUSSIAN_SCALES = [1e-30, 1e-12, 1e12, 1e19]
PER_QUERY = ("average_precision", "first_hit_rank", "hardest_hit_rank", "num_positives")


def _split(seed: int, protocol: str, ties: bool, nq: int = 24, ng: int = 90, d: int = 8):
    """Ids with junk (pid -1), distractors (pid 0) and a matchless query; features either drawn
    from a small pool of {-1, 0, 1} rows (many exact ties; every scaled entry is one rounded
    value, so the scaled features are exact multiples of the unscaled ones) or Gaussian."""
    rng = np.random.default_rng(seed)
    qp = rng.integers(1, 10, nq)
    qc = rng.integers(1, 4, nq)
    gp = rng.choice(np.array([-1, 0] + list(range(1, 9))), ng)
    gc = rng.integers(1, 4, ng)
    if ties:
        pool = rng.choice(np.array([-1.0, 0.0, 1.0], np.float32), size=(12, d))
        pool[:, 0] = 1.0  # no all-zero row (cosine is undefined there)
        qf, gf = pool[rng.integers(0, 12, nq)], pool[rng.integers(0, 12, ng)]
    else:
        qf = rng.normal(size=(nq, d)).astype(np.float32)
        gf = rng.normal(size=(ng, d)).astype(np.float32)
    if protocol == "official":
        gf, gp, gc = np.concatenate([gf, qf]), np.concatenate([gp, qp]), np.concatenate([gc, qc])
    return qf, gf, qp, qc, gp, gc


def _assert_same_report(a: RetrievalReport, b: RetrievalReport) -> None:
    assert a.to_dict() == b.to_dict()
    for name in PER_QUERY:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _scaled(x: np.ndarray, scale: float, dtype=np.float32) -> np.ndarray:
    return (x.astype(np.float64) * scale).astype(dtype)


@pytest.fixture(autouse=True)
def _overflow_warnings_are_errors():
    # the old code overflowed with only a RuntimeWarning: make any such warning fail the test
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


@pytest.mark.parametrize(
    "ties, scale", [(True, s) for s in TIE_SCALES] + [(False, s) for s in GAUSSIAN_SCALES]
)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("protocol", ["official", "torchreid"])
def test_any_scale_gives_the_unscaled_results(protocol, metric, ties, scale):
    qf, gf, qp, qc, gp, gc = _split(11 + ties, protocol, ties)
    reference = evaluate(qf, gf, qp, qc, gp, gc, protocol=protocol, metric=metric, chunk_size=5)
    scaled = evaluate(_scaled(qf, scale), _scaled(gf, scale), qp, qc, gp, gc,
                      protocol=protocol, metric=metric, chunk_size=5)
    _assert_same_report(scaled, reference)


def test_the_issue_figures_are_gone():
    """The report's case: Gaussian features x 1e19 gave euclidean mAP 125 %, mINP 200 %."""
    qf, gf, qp, qc, gp, gc = _split(0, "torchreid", ties=False, nq=30, ng=150, d=16)
    for metric in ("cosine", "euclidean"):
        ref = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid", metric=metric)
        big = evaluate(qf * np.float32(1e19), gf * np.float32(1e19), qp, qc, gp, gc,
                       protocol="torchreid", metric=metric)
        assert 0.0 <= big.mAP <= 1.0 and 0.0 <= big.mINP <= 1.0
        assert big.mAP == ref.mAP and big.mINP == ref.mINP, metric


@pytest.mark.parametrize("scale", [1e-300, 1e-60, 1e60, 1e300])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_float64_features_outside_the_float32_range(metric, scale):
    """Finite float64 features that float32 cannot hold (inf or 0 after a plain cast)."""
    qf, gf, qp, qc, gp, gc = _split(5, "official", ties=True)
    reference = evaluate(qf, gf, qp, qc, gp, gc, metric=metric)
    scaled = evaluate(_scaled(qf, scale, np.float64), _scaled(gf, scale, np.float64), qp, qc, gp, gc,
                      metric=metric)
    _assert_same_report(scaled, reference)


def test_cosine_rows_of_very_different_magnitudes():
    """Each row may have its own scale under cosine: one at 1e19, one at 1e-30, the rest ~1."""
    qf, gf, qp, qc, gp, gc = _split(6, "torchreid", ties=True)
    reference = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid")
    gf2, qf2 = gf.copy(), qf.copy()
    gf2[::3] *= np.float32(1e19)
    gf2[1::3] *= np.float32(1e-30)
    qf2[::2] *= np.float32(1e-35)
    _assert_same_report(evaluate(qf2, gf2, qp, qc, gp, gc, protocol="torchreid"), reference)
    with np.errstate(over="ignore"):  # the plain float32 norms these rows defeat
        assert np.isinf(np.linalg.norm(gf2[0])) and np.linalg.norm(gf2[1]) == 0


@pytest.mark.parametrize("scale", [1e-30, 1e19])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_reranking_at_any_scale(metric, scale):
    qf, gf, qp, qc, gp, gc = _split(7, "official", ties=True)
    params = dict(k1=6, k2=3, lambda_value=0.3)
    reference = evaluate(qf, gf, qp, qc, gp, gc, metric=metric, rerank=True, rerank_params=params)
    scaled = evaluate(_scaled(qf, scale), _scaled(gf, scale), qp, qc, gp, gc, metric=metric,
                      rerank=True, rerank_params=params)
    _assert_same_report(scaled, reference)


@pytest.mark.parametrize("scale", [1e-30, 1e19])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_faiss_lists_at_any_scale(metric, scale):
    qf, gf, *_ = _split(8, "torchreid", ties=True)
    ref_scores, ref_idx = knn_search(qf, gf, k=20, metric=metric, use_gpu=False)
    scores, idx = knn_search(_scaled(qf, scale), _scaled(gf, scale), k=20, metric=metric, use_gpu=False)
    np.testing.assert_array_equal(idx, ref_idx)
    assert scores.dtype == np.float32
    if metric == "cosine":  # scale-free scores
        np.testing.assert_array_equal(scores, ref_scores)


def test_faiss_scores_keep_the_inputs_scale_where_float32_holds_it():
    """1e17 needs the common rescale (4 D M^2 > 2^120) but its squared distances fit float32."""
    qf, gf, *_ = _split(9, "torchreid", ties=False)
    ref_scores, ref_idx = knn_search(qf, gf, k=10, metric="euclidean", use_gpu=False)
    scores, idx = knn_search(_scaled(qf, 1e17), _scaled(gf, 1e17), k=10, metric="euclidean", use_gpu=False)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores * 1e34, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# non-finite input: a clear error naming the array, on every path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_named_on_every_path(bad):
    qf, gf, qp, qc, gp, gc = _split(10, "official", ties=False)
    gf = gf.copy()
    gf[4, 2] = bad
    with pytest.raises(EvaluationInputError, match="gallery_feats contains NaN or inf values .first at row 4."):
        evaluate(qf, gf, qp, qc, gp, gc)
    with pytest.raises(EvaluationInputError, match="gallery contains NaN or inf values .first at row 4."):
        knn_search(qf, gf, k=3)
    with pytest.raises(EvaluationInputError, match="gallery_feats contains NaN or inf values .first at row 4."):
        KReciprocalReranker(qf, gf, k1=4)


def test_only_truly_zero_rows_are_rejected_under_cosine():
    x = np.ones((3, 4), np.float32)
    x[1] = np.float32(1e-40)  # subnormal, but a direction
    np.testing.assert_array_equal(l2_normalize(x, "gallery_feats")[1], np.full(4, 0.5, np.float32))
    x[2] = 0.0
    with pytest.raises(EvaluationInputError, match="gallery_feats row 2 is all zeros"):
        l2_normalize(x, "gallery_feats")


# ---------------------------------------------------------------------------------------------
# ordinary features: bit-identical to the plain float32 formulas (the main job's numbers)


def test_ordinary_features_are_prepared_exactly_as_before():
    rng = np.random.default_rng(12)
    qf = (rng.normal(size=(40, 64)) * 30).astype(np.float32)
    gf = (rng.normal(size=(200, 64)) * 1e-3).astype(np.float32)
    q, g, off = prepare_features(qf, gf, "cosine")
    assert off is None
    np.testing.assert_array_equal(q, qf / np.linalg.norm(qf, axis=1, keepdims=True))
    np.testing.assert_array_equal(g, gf / np.linalg.norm(gf, axis=1, keepdims=True))
    q, g, off = prepare_features(qf, gf, "euclidean")
    np.testing.assert_array_equal(q, qf)
    np.testing.assert_array_equal(g, gf)
    g64 = gf.astype(np.float64)
    np.testing.assert_array_equal(off, (-0.5 * np.einsum("ij,ij->i", g64, g64)).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# metrics are fractions: a value outside [0, 1] is a bug and stops the report


def _report(**change):
    kw = dict(protocol="official", metric="cosine", mAP=0.5, cmc={1: 0.5}, mINP=0.25, queries=2,
              queries_without_match=0, gallery=10, average_precision=np.array([0.5, 0.5]))
    return RetrievalReport(**(kw | change))


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(mAP=1.25), "mAP=1.25"),
        (dict(mINP=2.0), "mINP=2.0"),
        (dict(mAP=-0.1), "mAP=-0.1"),
        (dict(cmc={1: 0.5, 5: 1.5}), "rank5=1.5"),
        (dict(mAP=float("nan")), "mAP=nan"),
        (dict(average_precision=np.array([0.5, 1.0000001])), "average_precision"),
    ],
)
def test_a_metric_outside_0_1_is_an_internal_error(change, named):
    with pytest.raises(MetricOutOfBoundsError, match=named) as err:
        _report(**change)
    assert isinstance(err.value, AssertionError)  # a bug, not a user error
    assert "bug" in str(err.value)


def test_nan_metrics_only_when_no_query_has_a_match():
    nan = float("nan")
    rep = _report(mAP=nan, mINP=nan, cmc={1: nan}, queries_without_match=2,
                  average_precision=np.array([nan, nan]))
    assert np.isnan(rep.mAP)
    assert _report().mAP == 0.5


@pytest.mark.parametrize("seed", range(6))
def test_evaluated_metrics_are_fractions(seed):
    rng = np.random.default_rng(100 + seed)
    scale = 10.0 ** rng.uniform(-30, 19)
    for protocol in ("official", "torchreid"):
        data = _split(seed, protocol, ties=bool(seed % 2))
        for metric in ("cosine", "euclidean"):
            rep = evaluate(_scaled(data[0], scale), _scaled(data[1], scale), *data[2:],
                           protocol=protocol, metric=metric)
            values = [rep.mAP, rep.mINP, *rep.cmc.values()]
            assert all(0.0 <= v <= 1.0 for v in values), (protocol, metric, values)
