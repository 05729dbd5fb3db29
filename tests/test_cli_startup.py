"""Start-up of the evaluation command (issue 14, goal 6): importing ``reid.cli.eval`` and scoring
an npz with ``--features`` import neither FAISS nor matplotlib (nor scipy, pydantic or torch for
the import), read from ``sys.modules`` in a fresh subprocess. No timing here: the figures come
from ``python tools/benchmark.py startup`` (docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reid.benchmarks.startup import eval_command, imported_heavy_modules, write_small_features

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('MODULES', *sorted(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return set(next(x for x in out.stdout.splitlines() if x.startswith("MODULES")).split()[1:])


def test_import_of_the_eval_command_imports_no_heavy_module():
    loaded = _modules_after("import reid.cli.eval")
    assert "reid.cli.eval" in loaded
    assert not {"torch", "faiss", "matplotlib", "scipy", "pydantic", "cv2"} & loaded


def test_import_of_reid_eval_leaves_re_ranking_and_visualisation_out():
    loaded = _modules_after("import reid.eval")
    assert not {"reid.eval.rerank", "reid.eval.knn", "reid.eval.visualize", "torch", "scipy"} & loaded


def test_features_run_imports_no_torch_faiss_or_matplotlib(tmp_path):
    command = eval_command(write_small_features(tmp_path / "small.npz"))
    heavy = imported_heavy_modules(command)
    assert "faiss" not in heavy and "matplotlib" not in heavy and "scipy" not in heavy
    # the exact scorer's GEMM is numpy's (reid/eval/scoring.py): torch's import alone would be ~10x the run
    assert "torch" not in heavy and "tqdm" not in heavy, heavy


@pytest.mark.parametrize("json_flag", [True, False])
def test_features_run_prints_the_metrics(tmp_path, json_flag):
    command = eval_command(write_small_features(tmp_path / "small.npz"))
    if not json_flag:
        command.remove("--json")
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    assert "mAP" in out.stdout and "50" in out.stdout


def test_numpy_features_are_read_without_torch():
    loaded = _modules_after("import numpy as np\nfrom reid.eval.features import _to_numpy\n"
                            "assert _to_numpy([1.0, 2.0]).tolist() == [1.0, 2.0]")
    assert "torch" not in loaded


def test_torch_tensors_are_still_converted():
    torch = pytest.importorskip("torch")
    from reid.eval.features import _to_numpy

    assert _to_numpy(torch.tensor([1.0, 2.0], requires_grad=True)).tolist() == [1.0, 2.0]


@pytest.mark.slow  # eight interpreter start-ups, torch's included
def test_startup_benchmark_runs_and_reports(capsys):
    from reid.benchmarks.startup import main

    assert main(["--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "eval --features" in out and "heavy modules imported" in out
