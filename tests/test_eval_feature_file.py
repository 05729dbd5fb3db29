"""Feature files carry their protocol, metric and dataset (issue 12); ``reid eval --features``
warns when a file is scored under another protocol and refuses with ``--strict``."""

from __future__ import annotations

import numpy as np
import pytest

from reid import cli
from reid.eval.feature_file import read_meta, save_feature_file


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    ng = 24
    gp = rng.integers(1, 5, ng)
    gc = rng.integers(1, 4, ng)
    gf = rng.normal(size=(ng, 8)).astype(np.float32)
    q = np.arange(0, ng, 4)
    return dict(query_feats=gf[q], gallery_feats=gf, query_pids=gp[q], query_camids=gc[q],
                gallery_pids=gp, gallery_camids=gc)


def run(capsys, *argv):
    code = cli.main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_provenance_round_trips_without_pickle(tmp_path):
    path = save_feature_file(tmp_path / "f.npz", _arrays(), protocol="official", metric="euclidean",
                             dataset="synthetic_mars")
    with np.load(path, allow_pickle=False) as data:
        assert read_meta(dict(data)) == {"protocol": "official", "metric": "euclidean", "dataset": "synthetic_mars"}


def test_scoring_under_another_protocol_warns(tmp_path, capsys):
    path = save_feature_file(tmp_path / "f.npz", _arrays(), protocol="official", metric="cosine", dataset="x")
    code, out, err = run(capsys, "--features", path, "--protocol", "torchreid", "--json")
    assert code == 0
    assert "warning" in err and "official" in err and "torchreid" in err and "--strict" in err
    code, _, err = run(capsys, "--features", path, "--protocol", "official", "--json")
    assert code == 0 and err == ""


def test_strict_refuses_with_one_line(tmp_path, capsys):
    path = save_feature_file(tmp_path / "f.npz", _arrays(), protocol="official")
    code, out, err = run(capsys, "--features", path, "--protocol", "torchreid", "--strict", "--json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--strict" in err and "official" in err
    # a file naming no protocol cannot be checked: --strict refuses it too
    plain = tmp_path / "plain.npz"
    np.savez(plain, **_arrays())
    code, _, err = run(capsys, "--features", plain, "--protocol", "official", "--strict")
    assert code == 2 and "names no protocol" in err and len(err.strip().splitlines()) == 1


def test_the_file_protocol_and_metric_are_the_defaults(tmp_path, capsys):
    import json

    from reid.eval import evaluate

    arrays = _arrays()
    path = save_feature_file(tmp_path / "f.npz", arrays, protocol="torchreid", metric="euclidean")
    code, out, _ = run(capsys, "--features", path, "--json")
    got = json.loads(out)
    assert code == 0 and got["protocol"] == "torchreid" and got["metric"] == "euclidean"
    ref = evaluate(*arrays.values(), protocol="torchreid", metric="euclidean")
    assert got["mAP"] == pytest.approx(ref.mAP)
    plain = tmp_path / "plain.npz"
    np.savez(plain, **arrays)
    code, _, err = run(capsys, "--features", plain)
    assert code == 2 and "--protocol is required" in err
