"""Writing a synthetic dataset in the MARS layout (:func:`make_synthetic_mars`).

The layout, file names, ``.mat`` variables and the pid code all come from
:mod:`reid.data.mars_format`; this module adds two files of its own: the ``SYNTHETIC.json`` stamp
(generator, version, parameters, counts; written last, so a folder without it is incomplete) and
``synthetic_annotations.csv`` (per-frame ground truth: view and adverse case).
"""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from reid.data.mars_format import (
    BBOX_DIRS,
    DISTRACTOR_PID,
    INFO_DIR,
    JUNK_PID,
    NAME_FILES,
    QUERY_FILE,
    QUERY_KEY,
    SPLITS,
    TRACK_FILES,
    query_dtype,
    write_mat_variable,
)
from reid.data.synthetic.params import ADVERSE_KINDS, GENERATOR_VERSION, SyntheticMarsParams
from reid.data.synthetic.planning import TrackletPlan, build_index, choose_queries, plan_dataset, split_pids
from reid.data.synthetic.rendering import render_tracklet

STAMP_NAME = "SYNTHETIC.json"
ANNOTATIONS_NAME = "synthetic_annotations.csv"
# The stamp's "generator" field and the .mat header name the generator as it was named when it was
# one module; both are part of the output (cache validity, byte-identity), so they stay fixed.
STAMP_GENERATOR = "reid.data.synthetic"
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: reid.data.synthetic"

# One annotation row per frame: (split, name, pid, camid, view, adverse)
AnnotationRow = tuple[str, str, int, int, str, str]


def _render_and_write(args: tuple[SyntheticMarsParams, list[TrackletPlan], str]) -> list[AnnotationRow]:
    """Worker: render tracklets and write their JPEGs; one annotation row per frame."""
    params, plans, out = args
    cv2.setNumThreads(1)  # the pool provides the parallelism
    rows: list[AnnotationRow] = []
    for plan in plans:
        folder = Path(out) / BBOX_DIRS[plan.split] / plan.folder
        folder.mkdir(parents=True, exist_ok=True)
        frames, labels, view = render_tracklet(params, plan)
        for f, (frame, label) in enumerate(zip(frames, labels), start=1):
            name = plan.frame_name(f)
            path = folder / name
            ok = cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
            if not ok:
                raise OSError(f"could not write frame {path}")
            rows.append((plan.split, name, plan.pid, plan.camid, view, label or "none"))
    return rows


def _render_all(out: Path, params: SyntheticMarsParams, plans: list[TrackletPlan], workers: int,
                progress: bool) -> list[AnnotationRow]:
    """Render and write every frame, in ``workers`` spawned processes when > 1."""
    # chunks of ~whole identity folders; the order of results does not matter (rows are sorted)
    chunk = max(1, len(plans) // (8 * max(1, workers)))
    jobs = [(params, plans[i : i + chunk], str(out)) for i in range(0, len(plans), chunk)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(p.n_frames for p in plans), unit="frame", desc="synthetic MARS", leave=False)
    annotations: list[AnnotationRow] = []
    if workers <= 1:
        results: Iterable[list] = map(_render_and_write, jobs)
    else:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_render_and_write, jobs)
    try:
        for rows in results:
            annotations.extend(rows)
            if bar is not None:
                bar.update(len(rows))
    finally:
        if workers > 1:
            pool.shutdown()
        if bar is not None:
            bar.close()
    return annotations


def _write_index(info: Path, params: SyntheticMarsParams, plans: list[TrackletPlan]) -> dict[str, Any]:
    """Name lists, track tables and query rows; returns the stamp's counts."""
    counts: dict[str, Any] = {}
    for split in SPLITS:
        names, table = build_index(plans, split)
        (info / NAME_FILES[split]).write_text("".join(n + "\n" for n in names))
        track_file, track_key = TRACK_FILES[split]
        write_mat_variable(info / track_file, track_key, table.astype(np.int32), MAT_HEADER)
        counts[f"{split}_tracklets"] = int(len(table))
        counts[f"{split}_frames"] = len(names)
        if split == "test":
            queries = choose_queries(table, params.seed)
            write_mat_variable(info / QUERY_FILE, QUERY_KEY,
                               queries.astype(query_dtype(len(table))).reshape(1, -1), MAT_HEADER)
            counts["queries"] = int(len(queries))
            counts["junk_tracklets"] = int((table[:, 2] == JUNK_PID).sum())
            counts["distractor_tracklets"] = int((table[:, 2] == DISTRACTOR_PID).sum())
    return counts


def _write_annotations(path: Path, annotations: list[AnnotationRow]) -> None:
    """Per-frame ground truth, each split in name-list order (test first, as splits sort)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "split", "pid", "camid", "view", "adverse"])
        for split, name, pid, camid, view, adverse in sorted(annotations, key=lambda r: (r[0], r[1])):
            w.writerow([name, split, pid, camid, view, adverse])


def make_synthetic_mars(
    out: str | os.PathLike,
    ids_train: int = SyntheticMarsParams.ids_train,
    ids_test: int = SyntheticMarsParams.ids_test,
    cameras: int = SyntheticMarsParams.cameras,
    seed: int = 0,
    height: int = 128,
    width: int = 64,
    tiny: bool = False,
    workers: int | None = None,
    progress: bool = True,
    **extra: Any,
) -> Path:
    """Generate a synthetic dataset in the MARS layout into ``out`` (created; must not hold files).

    ``extra`` takes the other :class:`SyntheticMarsParams` fields (``frames_min``, ``frames_max``,
    ``junk_tracklets``, ``distractor_tracklets``, ``twin_fraction``, ``adverse_rates``, ...).
    ``workers``: processes for rendering (default 2, or 1 for ``tiny``); the output does not depend
    on it. The ``SYNTHETIC.json`` stamp is written last, so a dataset without it is incomplete.
    For a cached, atomic generation use :func:`reid.data.synthetic.ensure_synthetic_mars`.
    """
    params = SyntheticMarsParams.create(ids_train=ids_train, ids_test=ids_test, cameras=cameras, seed=seed,
                                        height=height, width=width, tiny=tiny, **extra)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: output folder is not empty; use ensure_synthetic_mars(..., force=True) "
                              "or tools/make_synthetic_mars.py --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_dataset(params)
    for split in SPLITS:
        (out / BBOX_DIRS[split]).mkdir(exist_ok=True)
    info = out / INFO_DIR
    info.mkdir(exist_ok=True)

    n_workers = workers if workers is not None else (1 if tiny else 2)
    annotations = _render_all(out, params, plans, n_workers, progress)
    counts = _write_index(info, params, plans)
    train_pids, test_pids = split_pids(params)
    counts["train_ids"], counts["test_ids"] = len(train_pids), len(test_pids)
    adverse = [row[-1] for row in annotations]
    counts["adverse_frames"] = {k: adverse.count(k) for k in ADVERSE_KINDS}
    _write_annotations(out / ANNOTATIONS_NAME, annotations)
    stamp = {"generator": STAMP_GENERATOR, "version": GENERATOR_VERSION, "params": params.to_json(), "counts": counts}
    (out / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
    return out


__all__ = ["STAMP_NAME", "ANNOTATIONS_NAME", "STAMP_GENERATOR", "MAT_HEADER", "make_synthetic_mars"]
