"""The study runner end-to-end on tiny synthetic IDX data: outputs, resumability, CLI help."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from reid.data.idx import write_idx

REPO = Path(__file__).resolve().parents[1]


def _tiny_idx(root: Path, n_train=160, n_test=80, classes=4) -> Path:
    rng = np.random.default_rng(0)
    protos = rng.uniform(0, 255, size=(classes, 28, 28))
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % classes
        x = np.clip(protos[y] + rng.normal(0, 40, size=(n, 28, 28)), 0, 255).astype(np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return root


def _study_yaml(tmp_path: Path, data_root: Path, epochs=1) -> Path:
    cfg = {
        "name": "tiny",
        "task": "classification",
        "schemes": [{"name": "cce"}, {"name": "imae", "params": {"T": 8}}],
        "noise": [{"kind": "symmetric", "rates": [0.4]}],
        "seeds": [0],
        "classification": {"data_root": str(data_root), "train_subset": None, "epochs": epochs,
                           "batch_size": 40, "widths": [4, 4, 4], "num_threads": 1},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_smoke_study_end_to_end_and_resumable(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import study as study_cli
    finally:
        sys.path.pop(0)
    data = _tiny_idx(tmp_path / "idx")
    cfg_path = _study_yaml(tmp_path, data)
    out = tmp_path / "out"

    assert study_cli.main(["--config", str(cfg_path), "--out", str(out), "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert "2 cell(s) run, 0 skipped" in first
    cells = sorted(p.name for p in (out / "cells").iterdir())
    assert cells == ["cce-symmetric0.4-seed0", "imae-symmetric0.4-seed0"]
    rec = json.loads((out / "cells" / cells[0] / "cell.json").read_text())
    assert rec["noise_rate"] == 0.4 and rec["final"]["epoch"] == 1
    hist = json.loads((out / "cells" / cells[0] / "history.json").read_text())
    assert hist["num_noisy"] == int(0.4 * 160)
    h = hist["history"][0]
    assert sum(h["p_hist_noisy"]) == hist["num_noisy"] and sum(h["p_hist_clean"]) == 160 - hist["num_noisy"]
    for k in ("test_acc", "noisy_fit", "clean_fit", "correction_rate"):
        assert 0.0 <= rec["final"][k] <= 1.0
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert [r["scheme"] for r in rows] == ["cce", "imae"]
    table = (out / "table.md").read_text()
    assert "| cce | symmetric 0.4 |" in table and "best" in table and "final" in table
    for png in ("metric_vs_rate_final.png", "weight_curves.png", "p_histograms_final.png"):
        assert (out / png).stat().st_size > 1000
    assert (out / "cells" / cells[1] / "pw_distributions.png").is_file()
    # trajectories next to every cell; the detection / gradient-share figure for the study
    z = np.load(out / "cells" / cells[0] / "trajectories.npz")
    assert z["p"].shape == (1, 160) and int(z["noisy_mask"].sum()) == hist["num_noisy"]
    assert (out / "detection_curves.png").stat().st_size > 1000
    assert "best by test (oracle)" in table and rec["onset_epoch"] is None

    # second run: nothing to do
    mtime = (out / "cells" / cells[0] / "cell.json").stat().st_mtime_ns
    assert study_cli.main(["--config", str(cfg_path), "--out", str(out), "--no-progress"]) == 0
    assert "0 cell(s) run, 2 skipped" in capsys.readouterr().out
    assert (out / "cells" / cells[0] / "cell.json").stat().st_mtime_ns == mtime

    # a study killed before its second cell finished: only that cell runs again
    (out / "cells" / cells[1] / "cell.json").unlink()
    assert study_cli.main(["--config", str(cfg_path), "--out", str(out), "--no-progress"]) == 0
    assert "1 cell(s) run, 1 skipped" in capsys.readouterr().out

    # the config changed under a finished cell: refuse instead of mixing results
    from reid.studies.runner import StudyError, load_study, run_study

    changed = yaml.safe_load(cfg_path.read_text())
    changed["classification"]["lr"] = 0.01
    cfg_path.write_text(yaml.safe_dump(changed))
    with pytest.raises(StudyError, match="different specification"):
        run_study(load_study(cfg_path), out, progress=False, log=lambda m: None)


def test_invalid_study_config_names_file_and_key(tmp_path):
    from reid.studies.runner import StudyError, load_study

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "task": "classification", "schemes": [{"name": "cce"}],
                                 "noise": [{"kind": "symmetric", "rates": [0.2]}],
                                 "classification": {"epochz": 3}}))
    with pytest.raises(StudyError, match=r"s\.yaml.*\n.*classification\.epochz"):
        load_study(p)


def test_validation_seeds_and_baseline_in_a_study(tmp_path):
    from reid.studies.runner import load_study, run_study

    path = _study_yaml(tmp_path, _tiny_idx(tmp_path / "idx"))
    cfg = yaml.safe_load(path.read_text())
    cfg.update(schemes=[{"name": "cce", "label": "plain", "normalize": "n"}, {"name": "cce", "label": "dn"}],
               seeds=[0, 1], baseline="plain", validation={"fraction": 0.25, "seed": 0})
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    run_study(load_study(path), out, progress=False, log=lambda m: None)
    rec = json.loads((out / "cells" / "plain-symmetric0.4-seed1" / "cell.json").read_text())
    assert rec["best_by_val"]["epoch"] == 1 and rec["best_by_test"]["oracle"] is True
    hist = json.loads((out / "cells" / "dn-symmetric0.4-seed0" / "history.json").read_text())
    # 25 % per (noisy) training label, rounded per class; 121 training images = a last batch of one
    assert hist["num_val"] == 39 and hist["num_train"] == 121
    table = (out / "table.md").read_text()
    assert "Paired verdicts against `plain`" in table and "| dn | symmetric 0.4 | test accuracy |" in table


def test_unknown_baseline_is_rejected_at_load(tmp_path):
    from reid.studies.runner import StudyError, load_study

    path = _study_yaml(tmp_path, tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["baseline"] = "ccee"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(StudyError, match="baseline: 'ccee' is not a scheme"):
        load_study(path)


def test_unknown_scheme_is_rejected_at_load(tmp_path):
    from reid.studies.runner import StudyError, load_study

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "task": "classification", "schemes": [{"name": "cce"}, {"name": "nope"}],
                                 "noise": [{"kind": "symmetric", "rates": [0.2]}]}))
    with pytest.raises(StudyError, match=r"s\.yaml: schemes\[1\] \(nope\)"):
        load_study(p)


def test_cli_help_teaches():
    res = subprocess.run([sys.executable, str(REPO / "tools" / "study.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "--smoke" in res.stdout and "configs/study_fashion_mnist.yaml" in res.stdout and "Resuming" in res.stdout


def test_shipped_configs_validate():
    from reid.studies.runner import expand_cells, load_study

    shipped = sorted((REPO / "configs").glob("study_*.yaml"))
    names = {p.name for p in shipped}
    assert {"study_smoke.yaml", "study_fashion_mnist.yaml", "study_synthetic_mars.yaml"} <= names
    for path in shipped:
        study = load_study(path)
        assert expand_cells(study)
        assert load_study(path, smoke=True).name == study.name


@pytest.mark.slow
def test_failed_cell_is_recorded_and_the_rest_reported(tmp_path):
    from reid.studies.runner import StudyConfig, StudyError, load_study, run_study

    data = _tiny_idx(tmp_path / "idx", n_train=80, n_test=40)
    cfg_path = _study_yaml(tmp_path, data)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["schemes"] = [{"name": "cce"}, {"name": "proselflc", "params": {"B": -1.0}}]  # fails when built
    cfg_path.write_text(yaml.safe_dump(cfg))
    # load_study builds every loss up front and refuses this file; a study assembled in code
    # (no load-time check) gets as far as the cell, which must fail alone
    with pytest.raises(StudyError, match=r"schemes\[1\] \(proselflc\).*B=-1"):
        load_study(cfg_path)
    out = tmp_path / "out"
    summary = run_study(StudyConfig.model_validate(cfg), out, progress=False, log=lambda m: None)
    assert summary["failed"] == ["proselflc-symmetric0.4-seed0"] and summary["ran"] == ["cce-symmetric0.4-seed0"]
    err = json.loads((out / "cells" / "proselflc-symmetric0.4-seed0" / "cell_error.json").read_text())
    assert "B=-1" in err["error"]
    assert not (out / "cells" / "proselflc-symmetric0.4-seed0" / "cell.json").exists()
    table = (out / "table.md").read_text()
    assert "| cce |" in table and "failed" in table


@pytest.mark.slow
def test_parallel_jobs_give_the_serial_results_and_every_figure(tmp_path):
    """--jobs 2 runs cells in spawned processes: the same per-cell numbers as a serial run (each
    cell seeds itself), and the report has the emphasis-density figure with measured weights for
    a loss off CCE's direction (nce_rce) and an MLP network."""
    from reid.studies.runner import load_study, run_study

    data = _tiny_idx(tmp_path / "idx")
    cfg_path = _study_yaml(tmp_path, data, epochs=1)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["schemes"] = [{"name": "sce", "normalize": "n"}, {"name": "nce_rce"}]
    cfg["classification"].update({"arch": "mlp", "mlp_widths": [16], "augment": False})
    cfg_path.write_text(yaml.safe_dump(cfg))
    logs: list[str] = []
    serial = run_study(load_study(cfg_path), tmp_path / "serial", progress=False, log=lambda m: None)
    parallel = run_study(load_study(cfg_path), tmp_path / "parallel", progress=False, log=logs.append, jobs=2)
    assert sorted(serial["ran"]) == sorted(parallel["ran"]) and len(parallel["ran"]) == 2
    assert any("2 processes" in m for m in logs) and any("estimate:" in m for m in logs)
    for cell in serial["ran"]:
        a = json.loads((tmp_path / "serial" / "cells" / cell / "cell.json").read_text())
        b = json.loads((tmp_path / "parallel" / "cells" / cell / "cell.json").read_text())
        assert a["final"] == b["final"] and a["fit_history"] == b["fit_history"]
    assert (tmp_path / "parallel" / "emphasis_densities.png").stat().st_size > 10_000
    with np.load(tmp_path / "parallel" / "cells" / "nce-rce-symmetric0.4-seed0" / "trajectories.npz") as t:
        assert t["w"].shape == t["p"].shape and np.isfinite(t["w"]).all() and t["w"].std() > 0
    # a resumed run estimates the rest from the finished cells before it starts
    (tmp_path / "parallel" / "cells" / "sce-symmetric0.4-seed0" / "cell.json").unlink()
    logs.clear()
    again = run_study(load_study(cfg_path), tmp_path / "parallel", progress=False, log=logs.append)
    assert again["ran"] == ["sce-symmetric0.4-seed0"] and len(again["skipped"]) == 1
    assert "estimate:" in logs[1] and "running" in logs[2]
