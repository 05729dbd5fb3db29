"""`reid eval` / tools/eval.py: argument and input errors are one line, exit status 2, found before
any evaluation; --json is strict JSON (issue 13)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reid import cli

REPO = Path(__file__).resolve().parents[1]


def arrays(nq=6, ng=30, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        query_feats=rng.normal(size=(nq, 8)).astype(np.float32),
        gallery_feats=rng.normal(size=(ng, 8)).astype(np.float32),
        query_pids=np.arange(nq) % 3 + 1,
        query_camids=np.ones(nq, np.int64),
        gallery_pids=rng.integers(1, 5, ng),
        gallery_camids=rng.integers(1, 4, ng),
    )


def npz(tmp_path: Path, name="f.npz", **replace) -> Path:
    path = tmp_path / name
    np.savez(path, **{**arrays(), **replace})
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def no_evaluation(monkeypatch):
    """The errors below must come before any scoring (they used to come after it)."""
    import reid.cli.eval as command

    def refuse(*args, **kwargs):
        raise AssertionError("evaluate() ran: the argument error should have been found before")
    monkeypatch.setattr(command, "evaluate", refuse)


@pytest.mark.parametrize("extra, needles", [
    (("--topk", "0"), ("--topk 0", ">= 1")),
    (("--visualize", "-1"), ("--visualize -1", ">= 0")),
    (("--visualize", "2"), ("--visualize 2", "--out")),
    (("--chunk-size", "0"), ("--chunk-size 0",)),
    (("--out", "vis"), ("--out", "--visualize")),
    (("--max-frames", "4"), ("--max-frames", "--checkpoint")),
    (("--save-features", "x.npz", "--data", "d"), ("--data, --save-features", "--checkpoint")),
])
def test_argument_errors_come_before_evaluation(capsys, tmp_path, no_evaluation, extra, needles):
    one_line_error(*run(capsys, "--features", npz(tmp_path), "--protocol", "official", *extra)[::2], *needles)


def test_visualize_without_frame_paths_is_found_before_evaluation(capsys, tmp_path, no_evaluation):
    code, _, err = run(capsys, "--features", npz(tmp_path), "--protocol", "official", "--visualize", 2,
                       "--out", tmp_path / "vis")
    one_line_error(code, err, "--visualize needs frame paths", "query_frame_paths")
    assert not (tmp_path / "vis").exists()


def test_object_arrays_name_the_key(capsys, tmp_path):
    path = npz(tmp_path, query_pids=np.array([1, "a", None, 2, 3, 1], dtype=object))
    one_line_error(*run(capsys, "--features", path, "--protocol", "official")[::2],
                   str(path), "'query_pids'", "objects")


def test_uint64_ids_above_int64_are_an_error_not_a_wrap(capsys, tmp_path):
    # 2**63 + 5 used to become a negative pid (-1 is junk) without a word
    path = npz(tmp_path, gallery_pids=np.full(30, 2**63 + 5, dtype=np.uint64))
    one_line_error(*run(capsys, "--features", path, "--protocol", "official")[::2],
                   "'gallery_pids'", str(2**63 + 5), "int64")
    small = npz(tmp_path, "small.npz", gallery_pids=np.arange(30, dtype=np.uint64) % 4 + 1)
    assert run(capsys, "--features", small, "--protocol", "official", "--json")[0] == 0


def test_json_is_strict_when_metrics_are_undefined(capsys, tmp_path):
    # no query has a valid match: mAP etc. are NaN in the report, null in the JSON
    path = npz(tmp_path, gallery_pids=np.full(30, 99))
    code, out, err = run(capsys, "--features", path, "--protocol", "official", "--json")
    assert code == 0, err

    def no_constants(name):
        raise AssertionError(f"bare {name} in the JSON output")
    result = json.loads(out, parse_constant=no_constants)
    assert result["mAP"] is None and result["rank1"] is None and result["mINP"] is None
    assert result["queries_without_match"] == result["queries"] == 6


def test_missing_file_key_and_not_an_npz(capsys, tmp_path):
    one_line_error(*run(capsys, "--features", tmp_path / "nope.npz", "--protocol", "official")[::2],
                   "features file not found", "nope.npz")
    full = arrays()
    full.pop("gallery_camids")
    np.savez(tmp_path / "lack.npz", **full)
    one_line_error(*run(capsys, "--features", tmp_path / "lack.npz", "--protocol", "official")[::2],
                   "lacks key(s) gallery_camids")
    (tmp_path / "text.npz").write_text("not a zip")
    one_line_error(*run(capsys, "--features", tmp_path / "text.npz", "--protocol", "official")[::2],
                   "text.npz", "cannot read it as an npz")


def test_bad_checkpoints_are_one_line(capsys, tmp_path):
    import torch

    torch.save({"model": {"w": torch.zeros(256)}, "epoch": 1}, tmp_path / "partial.pt")
    data = (tmp_path / "partial.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    for name, needles in (("missing.pt", ("no checkpoint",)), ("empty.pt", ("empty",)),
                          ("cut.pt", ("truncated",)), ("partial.pt", ("lacks key(s)", "config", "num_classes"))):
        code, _, err = run(capsys, "--checkpoint", tmp_path / name, "--protocol", "official")
        one_line_error(code, err, "--checkpoint", name, *needles)


def test_tools_eval_py_subprocess_one_line(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), "--features", str(npz(tmp_path)),
                          "--protocol", "official", "--topk", "0", "--visualize", "1", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip() == "error: --topk 0: must be >= 1", res.stderr
