"""The ``single_camera`` protocol (issue 12): only the query's own gallery entry is junk, every
other same-pid item is a positive; exact metrics against a naive loop; the registry carries it
into configs and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from reid.eval import EvaluationInputError, evaluate, query_gallery_index
from reid.protocols import PROTOCOLS


def _single_camera_case(seed: int = 0, g: int = 40, d: int = 6):
    """Every camid 0; queries are every third gallery item (queries kept in the gallery)."""
    rng = np.random.default_rng(seed)
    gp = rng.integers(1, 8, g)
    gf = rng.normal(size=(g, d)).astype(np.float32)
    gf[5] = gf[4]  # a bit-identical twin of another tracklet (a tie the scorer must break by index)
    q_index = np.arange(0, g, 3)
    return gf[q_index].copy(), gf, gp[q_index], np.zeros(len(q_index), np.int64), gp, np.zeros(g, np.int64), q_index


def _naive(qf, gf, qp, gp, q_index):
    """Sort every row (ties: ascending gallery index), drop the query itself, score with the
    non-interpolated AP, CMC from the first hit, mINP = n / rank of the last hit."""
    q = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    g = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    aps, firsts, inps = [], [], []
    for i in range(len(q)):
        scores = (g @ q[i]).astype(np.float32)
        order = [j for j in np.argsort(-scores, kind="stable") if j != q_index[i]]
        hits = np.array([gp[j] == qp[i] for j in order])
        ranks = np.nonzero(hits)[0] + 1
        if len(ranks) == 0:
            continue
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        firsts.append(ranks[0])
        inps.append(len(ranks) / ranks[-1])
    firsts = np.array(firsts)
    return {"mAP": np.mean(aps), "rank1": np.mean(firsts <= 1), "rank5": np.mean(firsts <= 5),
            "mINP": np.mean(inps), "matched": len(aps)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_a_naive_loop(seed):
    qf, gf, qp, qc, gp, gc, q_index = _single_camera_case(seed)
    ref = _naive(qf, gf, qp, gp, q_index)
    for given in (q_index, None):  # the explicit index, and the one found from the features
        report = evaluate(qf, gf, qp, qc, gp, gc, protocol="single_camera", query_gallery_index=given,
                          chunk_size=4)
        assert report.protocol == "single_camera"
        assert report.mAP == pytest.approx(ref["mAP"], abs=1e-12)
        assert report.cmc[1] == pytest.approx(ref["rank1"]) and report.cmc[5] == pytest.approx(ref["rank5"])
        assert report.mINP == pytest.approx(ref["mINP"], abs=1e-12)
        assert report.queries - report.queries_without_match == ref["matched"]


def test_single_camera_data_has_matches_where_the_camera_rule_finds_none():
    """The measured failure: all camid = 0 -> every query without a valid match under official."""
    qf, gf, qp, qc, gp, gc, q_index = _single_camera_case()
    official = evaluate(qf, gf, qp, qc, gp, gc, protocol="official")
    assert official.queries_without_match == official.queries
    single = evaluate(qf, gf, qp, qc, gp, gc, protocol="single_camera", query_gallery_index=q_index)
    assert single.queries_without_match < single.queries
    # the query itself is never counted as its own rank-1 hit
    assert single.cmc[1] < 1.0


def test_query_gallery_index_from_frames_and_checks():
    q = [["a/0.jpg", "a/1.jpg"], ["z/0.jpg"]]
    g = [["b/0.jpg"], ["a/0.jpg", "a/1.jpg"]]
    np.testing.assert_array_equal(query_gallery_index(q, g), [1, -1])
    qf, gf, qp, qc, gp, gc, q_index = _single_camera_case()
    bad = q_index.copy()
    bad[0] = len(gf)
    with pytest.raises(EvaluationInputError, match=r"query_gallery_index\[0\]"):
        evaluate(qf, gf, qp, qc, gp, gc, protocol="single_camera", query_gallery_index=bad)
    wrong_pid = q_index.copy()
    wrong_pid[1] = int(np.nonzero(gp != qp[1])[0][0])
    with pytest.raises(EvaluationInputError, match="own tracklet"):
        evaluate(qf, gf, qp, qc, gp, gc, protocol="single_camera", query_gallery_index=wrong_pid)


def test_other_protocols_are_unchanged_by_the_index():
    """Under official the query's own entry is already junk (same pid and camera)."""
    qf, gf, qp, _, gp, _, q_index = _single_camera_case()
    rng = np.random.default_rng(3)
    gc = rng.integers(1, 4, len(gf))
    qc = gc[q_index]
    plain = evaluate(qf, gf, qp, qc, gp, gc, protocol="official")
    indexed = evaluate(qf, gf, qp, qc, gp, gc, protocol="official", query_gallery_index=q_index)
    np.testing.assert_array_equal(plain.average_precision, indexed.average_precision)


def test_the_registry_carries_it_to_configs_and_the_cli():
    from reid.cli.eval import build_parser
    from reid.engine.config import DataConfig

    protocol = PROTOCOLS.get("single_camera")
    assert protocol.queries_in_gallery and protocol.needs_self_index and not protocol.junk_pids
    assert DataConfig.model_validate({"protocol": "single_camera"}).protocol == "single_camera"
    assert build_parser().parse_args(["--features", "f.npz", "--protocol", "single_camera"]).protocol == "single_camera"
