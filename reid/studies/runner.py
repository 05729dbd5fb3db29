"""Study runner: a grid of schemes x noise (kind, rate) x seeds, resumable, with a report.

Each grid cell is one training run: image classification (:mod:`reid.studies.classification`)
or video ReID (``reid.engine.train(cfg)`` with dotted overrides on a base config). A finished
cell writes ``<out>/cells/<cell_id>/cell.json`` atomically (temp file + rename); on restart,
cells whose ``cell.json`` exists with the same specification hash are skipped, so a killed study
continues where it stopped. A cell.json whose spec differs (the YAML was edited) is an error,
not silently reused.

After the grid: ``runs.csv`` (one row per cell, best and final numbers), ``table.md`` (mean +- std
over seeds of test metric / noisy-subset fit / clean-subset fit, best and final stated), and the
plots of :mod:`reid.studies.plots`.

Study YAML (see ``configs/study_*.yaml``)::

    name: fashion_mnist_sym40
    task: classification            # or: reid
    schemes:
      - {name: cce}
      - {name: imae, params: {T: 8}}
    noise:                          # grid over kind x rates (one noise item per cell)
      - {kind: symmetric, rates: [0.4]}
    seeds: [0]
    classification: {epochs: 15, train_subset: 20000}   # ClassificationConfig fields
    reid: {base_config: configs/default.yaml, overrides: ["train.epochs=4"]}
    smoke: {classification: {epochs: 1}}                 # merged in with --smoke
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reid.atomic import atomic_write_json
from reid.errors import UserError
from reid.engine.config import registered
from reid.engine.config_files import ConfigError, deep_merge, read_config_tree, validate_config
from reid.engine.config import ValidationConfig
from reid.studies.classification_config import ClassificationConfig, HoldoutSpec
from reid.studies.classification_data import make_synthetic_idx
from reid.studies.schemes import SchemeSpec, build_study_loss, id_loss_of
from reid.studies.study_report import write_report
from reid.studies.trajectories import memorisation_onset

SYNTHETIC = "synthetic"


class NoiseAxis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Annotated[str, registered("reid.data.noise", "NOISE_KINDS")]
    rates: list[float]
    source: Literal["other_identity", "background"] | None = None


class ReIDStudySection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_config: str | None = None  # trainer YAML; None = trainer defaults (embedded synthetic MARS)
    overrides: list[str] = Field(default_factory=list)
    metric: str = "mAP"  # key of the trainer's final dict used as the test metric


class StudyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    task: Literal["classification", "reid"]
    schemes: list[SchemeSpec]
    noise: list[NoiseAxis]
    seeds: list[int] = Field(default_factory=lambda: [0])
    noise_seed: int | None = None  # None: the noise seed follows the run seed
    classification: dict[str, Any] = Field(default_factory=dict)
    reid: ReIDStudySection = Field(default_factory=ReIDStudySection)
    smoke: dict[str, Any] = Field(default_factory=dict)
    # model selection on a split held out from the training data (noisy labels): classification
    # {fraction, seed}; reid {fraction | ids, seed} (-> eval.validation). None: no best_by_val.
    validation: dict[str, Any] | None = None
    baseline: str | None = None  # scheme display name the paired verdicts compare against
    memorisation_threshold: float = Field(0.5, ge=0, le=1)  # noisy fit above it = memorisation onset


class StudyError(UserError, ValueError):
    """A study config or a cell is invalid; the message names the file / cell."""


def load_study(path: str | os.PathLike, smoke: bool = False) -> StudyConfig:
    """Read a study file (with ``base:`` inheritance, like training configs) and, with ``smoke``,
    merge its ``smoke:`` section over the rest. Errors name the file and the dotted key."""
    path = Path(path)
    try:
        raw, sources = read_config_tree(path)
        if smoke:
            raw = deep_merge({k: v for k, v in raw.items() if k != "smoke"}, raw.get("smoke") or {})
        cfg = validate_config(StudyConfig, raw, sources, str(path))
    except ConfigError as e:
        message = str(e)
        if "config file" in message and "cannot read" in message:
            message = f"{path}: study config not found"
        raise StudyError(message.replace("invalid configuration:", f"{path}: invalid study config:", 1)) from None
    for k, sch in enumerate(cfg.schemes):
        try:  # build each loss once, so a bad parameter fails here and not in the middle of a grid
            build_study_loss(sch.name, sch.params, num_classes=10)
        except (ValueError, TypeError) as e:
            raise StudyError(f"{path}: schemes[{k}] ({sch.name}): {e}") from None
    if cfg.task == "classification":
        try:
            ClassificationConfig.model_validate(cfg.classification)
        except ValidationError as e:
            msgs = "\n".join(f"  classification.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise StudyError(f"{path}: invalid classification section:\n{msgs}") from None
    names = [s.display for s in cfg.schemes]
    if cfg.baseline is not None and cfg.baseline not in names:
        raise StudyError(f"{path}: baseline: {cfg.baseline!r} is not a scheme of the study ({', '.join(names)}); "
                         "give a scheme's label (or name when it has none)")
    if cfg.validation is not None:
        try:
            if cfg.task == "classification":
                HoldoutSpec.model_validate(cfg.validation)
            else:
                ValidationConfig.model_validate(cfg.validation)
        except ValidationError as e:
            msgs = "; ".join(f"validation.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise StudyError(f"{path}: invalid validation section: {msgs}") from None
    return cfg


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def expand_cells(study: StudyConfig) -> list[dict]:
    """The grid, in run order (seed-major so a partial study already covers every scheme)."""
    cells = []
    for seed in study.seeds:
        for axis in study.noise:
            for rate in axis.rates:
                for scheme in study.schemes:
                    spec = {
                        "scheme": _scheme_dump(scheme),
                        "noise_kind": axis.kind,
                        "noise_rate": float(rate),
                        "noise_source": axis.source,
                        "seed": int(seed),
                        "noise_seed": int(study.noise_seed if study.noise_seed is not None else seed),
                    }
                    cell_id = _slug(f"{scheme.display}__{axis.kind}{rate:g}__seed{seed}")
                    spec_hash = hashlib.sha256(
                        json.dumps({**spec, "task": study.task, "task_cfg": _task_cfg(study)}, sort_keys=True).encode()
                    ).hexdigest()[:16]
                    cells.append({"id": cell_id, "spec": spec, "hash": spec_hash})
    ids = [c["id"] for c in cells]
    if len(set(ids)) != len(ids):
        raise StudyError("two grid cells have the same id: give schemes distinct 'label's")
    return cells


def _scheme_dump(scheme: SchemeSpec) -> dict:
    # "normalize" only when set, so the hash of a cell of an older study file stays the same
    d = scheme.model_dump(mode="json")
    if d.get("normalize") is None:
        d.pop("normalize", None)
    return d


def _task_cfg(study: StudyConfig) -> Any:
    task = study.classification if study.task == "classification" else study.reid.model_dump(mode="json")
    # new keys join the hash only when set (older finished cells keep their hash)
    extra = {k: v for k, v in (("validation", study.validation),) if v is not None}
    return {"task": task, **extra} if extra else task


# ----------------------------------------------------------------------------- cells
def _run_classification_cell(study: StudyConfig, spec: dict, cell_dir: Path, out: Path, progress: bool, log=None) -> dict:
    from reid.studies.classification import run_classification

    params = dict(study.classification)
    if str(params.get("data_root", "")) == SYNTHETIC:
        params["data_root"] = str(make_synthetic_idx(out / "synthetic_idx"))
    noise = [] if spec["noise_rate"] == 0 else [{"kind": spec["noise_kind"], "rate": spec["noise_rate"]}]
    if study.validation is not None:
        params["validation"] = study.validation
    cfg = ClassificationConfig.model_validate(
        {**params, "scheme": spec["scheme"], "noise": noise, "noise_seed": spec["noise_seed"], "seed": spec["seed"]}
    )
    res = run_classification(cfg, out_dir=cell_dir, progress=progress, log=log)
    from reid.studies.plots import plot_pw_distributions
    from reid.studies.plots_trajectories import plot_trajectory_bands

    title = f"{res['scheme']}, {spec['noise_kind']} {spec['noise_rate']:g}, seed {spec['seed']}"
    plot_pw_distributions(res["history"], cell_dir / "pw_distributions.png", title=title)
    plot_trajectory_bands(cell_dir / "trajectories.npz", cell_dir / "trajectories.png", title=title)
    return {
        "metric_name": "accuracy",
        "best": res["best"],
        "final": res["final"],
        "best_by_val": res["best_by_val"],
        "best_by_test": res["best_by_test"],
        "onset_epoch": memorisation_onset(res["history"], study.memorisation_threshold),
        "curves": res["trajectory_curves"],
        "fit_history": [{k: h.get(k) for k in ("epoch", "test_acc", "val_acc", "noisy_fit", "clean_fit")}
                        for h in res["history"]],
        "histogram_final": {k: res["history"][-1][k] for k in res["history"][-1] if k.startswith(("p_", "w_")) or k == "epoch"},
        "seconds": res["seconds"],
    }


def _run_reid_cell(study: StudyConfig, spec: dict, cell_dir: Path, progress: bool) -> dict:
    from reid.engine import train
    from reid.engine.config import load_config
    from reid.studies.hooks import study_hooks

    scheme = spec["scheme"]
    loss_name, scheme_name = id_loss_of(scheme["name"])
    overrides = list(study.reid.overrides) + [
        f"loss.id.name={loss_name}",
        f"loss.id.scheme={scheme_name}",
        f"loss.id.params={json.dumps(scheme['params'])}",
        f"seed={spec['seed']}",
        f"output_dir={json.dumps(str(cell_dir / 'run'))}",
        f"name={_slug(scheme.get('label') or scheme['name'])}",
    ]
    if scheme.get("normalize"):
        overrides.append(f"loss.id.normalize={scheme['normalize']}")
    if study.validation is not None:
        overrides.append(f"eval.validation={json.dumps(study.validation)}")
    if spec["noise_rate"] > 0:
        item = {"kind": spec["noise_kind"], "rate": spec["noise_rate"]}
        if spec["noise_source"]:
            item["source"] = spec["noise_source"]
        overrides.append(f"noise={json.dumps({'items': [item], 'seed': spec['noise_seed']})}")
    if not progress:
        overrides.append("train.progress=false")
    from reid.configs import config_path

    # a shipped config by name or path ("configs/default.yaml" resolves from an installed package too)
    base = config_path(study.reid.base_config) if study.reid.base_config is not None else None
    cfg = load_config(base, overrides)
    # a cell re-run after a failure starts over in its own run folder (finished cells are skipped)
    final = train(cfg, hooks=study_hooks(cfg), overwrite=True)
    metric = study.reid.metric
    hist_path = cell_dir / "run" / "pw_histograms.json"
    hist = json.loads(hist_path.read_text())[-1] if hist_path.is_file() else None

    def pick(which: str) -> dict | None:
        # final.json: "best" (= "best_by_test", the oracle) / "best_by_val" / "final" are the
        # metric dicts of those evaluations (NoiseHook's fit numbers are merged into them),
        # "<which>_epoch" says which epoch.
        src = final.get(which)
        if src is None:
            return None
        out = {"test_acc": src.get(metric), "epoch": final.get(f"{which}_epoch")}
        for k in ("noisy_fit", "clean_fit", "correction_rate", "train_acc", "rank1"):
            if src.get(k) is not None:
                out[k] = src[k]
        return out

    noise = final.get("noise") or {}
    history = noise.get("fit_history") or []
    run_dir = cell_dir / "run"
    if (run_dir / "trajectories.npz").is_file():
        from reid.studies.plots_trajectories import plot_trajectory_bands

        plot_trajectory_bands(run_dir / "trajectories.npz", cell_dir / "trajectories.png",
                              title=f"{scheme.get('label') or scheme['name']}, seed {spec['seed']}")
    return {"metric_name": metric, "best": pick("best"), "final": pick("final"), "best_by_val": pick("best_by_val"),
            "best_by_test": pick("best"), "onset_epoch": memorisation_onset(history, study.memorisation_threshold),
            "curves": noise.get("trajectory_curves"), "fit_history": history, "histogram_final": hist, "raw_final": final}


def _execute_cell(study: StudyConfig, cell: dict, out: Path, progress: bool, log) -> tuple[str, dict | str]:
    """Run one cell and write its ``cell.json`` (or ``cell_error.json``): ``("ok", record)`` or
    ``("failed", message)``."""
    cell_dir = out / "cells" / cell["id"]
    cell_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        if study.task == "classification":
            res = _run_classification_cell(study, cell["spec"], cell_dir, out, progress, log=log if not progress else None)
        else:
            res = _run_reid_cell(study, cell["spec"], cell_dir, progress)
    except Exception as e:  # noqa: BLE001 - one broken cell must not lose the others' report
        err = f"{type(e).__name__}: {e}"
        atomic_write_json(cell_dir / "cell_error.json", {"id": cell["id"], "hash": cell["hash"], "error": err,
                                                          "traceback": traceback.format_exc()})
        return "failed", err
    (cell_dir / "cell_error.json").unlink(missing_ok=True)
    record = {"id": cell["id"], "hash": cell["hash"], **cell["spec"], **res, "wall_seconds": time.time() - t0}
    atomic_write_json(cell_dir / "cell.json", record)
    return "ok", record


def _cell_worker(study_json: dict, cell: dict, out: str, threads: int) -> tuple[str, dict | str]:
    """A ``--jobs`` worker process: one cell with ``threads`` intra-op threads (spawned, so it
    imports torch itself; the study is passed as JSON)."""
    import torch

    torch.set_num_threads(threads)
    return _execute_cell(StudyConfig.model_validate(study_json), cell, Path(out), progress=False, log=None)


def run_study(study: StudyConfig, out: str | os.PathLike, progress: bool = True, log=print, keep_going: bool = True,
              jobs: int = 1) -> dict:
    """Run (or resume) every cell, then write runs.csv, table.md and the plots. Returns a summary.

    ``keep_going``: a cell that raises is recorded in its ``cell_error.json`` (no ``cell.json``,
    so the next run retries it) and the report is written from the finished cells.
    ``jobs`` > 1: that many cells at once, each in its own spawned process with
    ``cpu_count // jobs`` torch threads (per-cell results are identical to a serial run's: every
    cell seeds itself). The wall time of the rest is printed before the grid starts when finished
    cells exist (their mean), else after the first cell."""
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study.model_dump(mode="json"), indent=1))
    cells = expand_cells(study)
    ran, skipped, failed, pending, previous = [], [], [], [], []
    for k, cell in enumerate(cells):
        done = out / "cells" / cell["id"] / "cell.json"
        if done.is_file():
            prev = json.loads(done.read_text())
            if prev.get("hash") != cell["hash"]:
                raise StudyError(
                    f"{done}: finished with a different specification (hash {prev.get('hash')} != {cell['hash']}); "
                    "the study config changed: use a new --out or delete that cell folder"
                )
            skipped.append(cell["id"])
            previous.append(float(prev.get("wall_seconds") or 0.0))
            log(f"[{k + 1}/{len(cells)}] {cell['id']}: done already, skipped")
        else:
            pending.append((k, cell))
    jobs = max(1, min(int(jobs), len(pending) or 1))

    def estimate(per_cell: float) -> None:
        log(f"    estimate: {len(pending) - len(ran) - len(failed)} cell(s) left x {per_cell:.0f} s / {jobs} job(s) = "
            f"about {(len(pending) - len(ran) - len(failed)) * per_cell / jobs / 60:.1f} min for the rest of the study")

    if pending and previous:
        estimate(sum(previous) / len(previous))

    def finished(k: int, cell: dict, status: str, value) -> None:
        if status == "ok":
            ran.append(cell["id"])
            log(f"[{k + 1}/{len(cells)}] {cell['id']}: best {value['best']}  final {value['final']}")
            if len(ran) == 1 and not previous:  # sized from the first cell: cells of one study cost about the same
                estimate(value["wall_seconds"])
        else:
            if not keep_going:
                raise StudyError(f"cell {cell['id']} failed: {value}; details in "
                                 f"{out / 'cells' / cell['id'] / 'cell_error.json'}")
            failed.append(cell["id"])
            log(f"[{k + 1}/{len(cells)}] {cell['id']}: FAILED ({value}); details in "
                f"{out / 'cells' / cell['id'] / 'cell_error.json'}; rerun the study to retry it")

    if jobs == 1:
        for k, cell in pending:
            log(f"[{k + 1}/{len(cells)}] {cell['id']}: running")
            finished(k, cell, *_execute_cell(study, cell, out, progress, log))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        threads = max(1, (os.cpu_count() or 1) // jobs)
        log(f"running {len(pending)} cell(s) in {jobs} processes x {threads} thread(s)")
        study_json = study.model_dump(mode="json")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_cell_worker, study_json, cell, str(out), threads): (k, cell) for k, cell in pending}
            for fut in as_completed(futures):
                k, cell = futures[fut]
                try:
                    status, value = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker that died (killed, out of memory)
                    status, value = "failed", f"worker process: {type(e).__name__}: {e}"
                finished(k, cell, status, value)
    records = [json.loads(p.read_text()) for c in cells if (p := out / "cells" / c["id"] / "cell.json").is_file()]
    if records:
        write_report(study, records, out, failed=failed)
    return {"ran": ran, "skipped": skipped, "failed": failed, "cells": len(cells), "out": str(out)}


__all__ = ["StudyConfig", "load_study", "run_study", "expand_cells", "write_report", "make_synthetic_idx", "StudyError"]
