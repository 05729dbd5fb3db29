"""What gets rendered: the pid split, twin pairs, every tracklet (:class:`TrackletPlan`), the
per-split index (name list + ``[start, end, pid, camid]`` table) and the queries.

Plans are cheap (no pixels) and a pure function of the parameters, so the writer, the preview and
the tests all derive the same dataset from them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from reid.data.mars_format import DISTRACTOR_PID, JUNK_PID, frame_name, pid_code
from reid.data.synthetic.params import SyntheticMarsParams
from reid.data.synthetic.streams import (
    DISTRACTOR_FAMILY,
    PASSER_FAMILY,
    PLAN_STREAM,
    REAL_ID_FAMILY,
    SPLIT_STREAM,
    rng_stream,
)


@dataclass(frozen=True)
class TrackletPlan:
    """One tracklet to render: where it goes and how its frames are drawn."""

    split: str  # "train" | "test"
    pid: int  # MARS pid: >0 real, DISTRACTOR_PID (0) distractor, JUNK_PID (-1) junk
    camid: int
    number: int  # the tracklet counter within (folder, camera): the frame name's T field
    n_frames: int
    kind: str  # "person" | "junk_background" | "junk_fragment"
    family: int  # whose appearance: real id / distractor / passer-by
    person: int  # index within the family (the pid for real ids)
    twin_of: int | None
    key: int  # unique index of this tracklet: its RNG stream

    @property
    def folder(self) -> str:
        """The ``bbox_<split>/`` sub-folder of this tracklet's frames: the pid code."""
        code = pid_code(self.pid)
        if code is None:  # pid_code answers None; a plan with such a pid is a bug, so raise
            raise ValueError(f"pid {self.pid} has no MARS pid code (see reid.data.mars_format.pid_code)")
        return code

    def frame_name(self, f: int) -> str:
        """MARS frame name of frame ``f`` (1-based)."""
        return frame_name(self.pid, self.camid, self.number, f)

    def with_frames(self, n: int) -> "TrackletPlan":
        """The same tracklet cut (or extended) to ``n`` frames: same streams, so the same first
        frames (the preview and tests render short versions)."""
        return replace(self, n_frames=n)


def split_pids(params: SyntheticMarsParams) -> tuple[list[int], list[int]]:
    """Disjoint train / test pids drawn from 1..ids_train+ids_test (shuffled, so a pid says nothing
    about its split, as in MARS)."""
    pids = np.arange(1, params.ids_train + params.ids_test + 1)
    rng_stream(params.seed, SPLIT_STREAM).shuffle(pids)
    return sorted(int(p) for p in pids[: params.ids_train]), sorted(int(p) for p in pids[params.ids_train :])


def _twins(params: SyntheticMarsParams, pids: list[int], tag: int) -> dict[int, int]:
    """Pair a ``twin_fraction`` of the identities of one split with another of the same split."""
    rng = rng_stream(params.seed, SPLIT_STREAM, tag)
    n_twins = int(round(params.twin_fraction * len(pids) / 2))
    order = [pids[i] for i in rng.permutation(len(pids))]
    return {order[2 * i + 1]: order[2 * i] for i in range(min(n_twins, len(pids) // 2))}


def plan_dataset(params: SyntheticMarsParams) -> list[TrackletPlan]:
    """All tracklets of the dataset, in MARS order (sorted by frame name within each split)."""
    train_pids, test_pids = split_pids(params)
    plans: list[TrackletPlan] = []
    key = 0
    for split, pids, tag in (("train", train_pids, 11), ("test", test_pids, 12)):
        twins = _twins(params, pids, tag)
        for pid in pids:
            rng = rng_stream(params.seed, PLAN_STREAM, pid)
            n_cams = int(rng.integers(params.cameras_per_id_min, params.cameras + 1))
            cams = sorted(int(c) + 1 for c in rng.choice(params.cameras, size=n_cams, replace=False))
            # test ids get a second tracklet in two of their cameras, so that with the queries
            # removed from the gallery (torchreid protocol) every query keeps a cross-camera match
            doubled = set(rng.choice(cams, size=2, replace=False).tolist()) if split == "test" else set()
            for cam in cams:
                n_tr = 2 if (cam in doubled and params.tracklets_per_camera_max >= 2) else 1
                while n_tr < params.tracklets_per_camera_max and rng.random() < params.extra_tracklet_prob:
                    n_tr += 1
                for t in range(1, n_tr + 1):
                    n_frames = int(rng.integers(params.frames_min, params.frames_max + 1))
                    key += 1
                    plans.append(TrackletPlan(split, pid, cam, t, n_frames, "person", REAL_ID_FAMILY, pid, twins.get(pid), key))
    rng = rng_stream(params.seed, PLAN_STREAM, 0)
    counters: dict[tuple[int, int], int] = {}
    extra = ([(DISTRACTOR_PID, "person", DISTRACTOR_FAMILY)] * params.n_distractors
             + [(JUNK_PID, "junk", PASSER_FAMILY)] * params.n_junk)
    for i, (pid, kind, family) in enumerate(extra):
        cam = int(rng.integers(1, params.cameras + 1))
        counters[(pid, cam)] = counters.get((pid, cam), 0) + 1
        if kind == "junk":
            kind = "junk_background" if rng.random() < 0.5 else "junk_fragment"
            n_frames = int(rng.integers(max(1, params.frames_min // 2), max(1, params.frames_max // 2) + 1))
        else:
            n_frames = int(rng.integers(params.frames_min, params.frames_max + 1))
        key += 1
        plans.append(TrackletPlan("test", pid, cam, counters[(pid, cam)], n_frames, kind, family, i, None, key))
    return sorted(plans, key=lambda p: (p.split, p.frame_name(1)))


def build_index(plans: list[TrackletPlan], split: str) -> tuple[list[str], np.ndarray]:
    """Name list and ``[start, end, pid, camid]`` table (1-based inclusive lines) of one split."""
    names: list[str] = []
    rows: list[list[int]] = []
    for plan in plans:
        if plan.split != split:
            continue
        start = len(names) + 1
        names.extend(plan.frame_name(f) for f in range(1, plan.n_frames + 1))
        rows.append([start, len(names), plan.pid, plan.camid])
    return names, np.asarray(rows, np.int32).reshape(-1, 4)


def choose_queries(test_table: np.ndarray, seed: int) -> np.ndarray:
    """One query per (pid, camera) with pid > 0, picked uniformly among that pair's tracklets.

    Returns 1-based rows of the test table, sorted (MARS ``query_IDX`` convention). Only pairs
    whose pid is seen by another camera qualify, so every query has a cross-camera match.
    """
    rng = rng_stream(seed, PLAN_STREAM, 1)
    groups: dict[tuple[int, int], list[int]] = {}
    for row, (_, _, pid, cam) in enumerate(test_table.tolist()):
        if pid > 0:
            groups.setdefault((pid, cam), []).append(row)
    cams_of: dict[int, set[int]] = {}
    for pid, cam in groups:
        cams_of.setdefault(pid, set()).add(cam)
    picks = [rows[int(rng.integers(len(rows)))] + 1 for (pid, cam), rows in sorted(groups.items()) if len(cams_of[pid]) >= 2]
    return np.asarray(sorted(picks), np.int64)


__all__ = ["TrackletPlan", "split_pids", "plan_dataset", "build_index", "choose_queries"]
