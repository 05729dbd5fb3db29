"""A contact sheet of the generator's output (:func:`make_contact_sheet`), for looking at it by eye."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from reid.data.mars_format import pid_code
from reid.data.synthetic.params import ADVERSE_KINDS, SyntheticMarsParams
from reid.data.synthetic.planning import TrackletPlan, plan_dataset
from reid.data.synthetic.rendering import render_tracklet


def make_contact_sheet(path: str | os.PathLike, params: SyntheticMarsParams | None = None, n_ids: int = 8,
                       scale: int = 1) -> Path:
    """Write a PNG grid: rows = test identities (twins placed next to each other), columns = one
    frame per camera (grey when the id is not seen there) then one adverse case each.

    Rendered with the generator's own functions from ``params`` (no dataset needed).
    """
    params = params or SyntheticMarsParams()
    plans = [p for p in plan_dataset(params) if p.split == "test" and p.pid > 0]
    by_pid: dict[int, dict[int, TrackletPlan]] = {}
    for p in plans:
        by_pid.setdefault(p.pid, {}).setdefault(p.camid, p)
    pids = sorted(by_pid)
    # show twin pairs first: they are the hard cases worth checking by eye
    twin_pids = [q for p in plans if p.twin_of is not None for q in (p.twin_of, p.pid)]
    order = list(dict.fromkeys(twin_pids[:4] + pids))[:n_ids]
    H, W = params.height * scale, params.width * scale
    cols = [f"cam{c}" for c in range(1, params.cameras + 1)] + list(ADVERSE_KINDS)
    label_h = 18
    sheet = np.full((label_h + len(order) * (H + 4), 46 + len(cols) * (W + 4), 3), 255, np.uint8)
    for j, name in enumerate(cols):
        cv2.putText(sheet, name[:9], (46 + j * (W + 4) + 2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
    for i, pid in enumerate(order):
        y = label_h + i * (H + 4)
        twin = by_pid[pid][min(by_pid[pid])].twin_of
        cv2.putText(sheet, pid_code(pid), (2, y + H // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        if twin is not None:
            cv2.putText(sheet, f"~{pid_code(twin)}", (2, y + H // 2 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (120, 0, 0), 1, cv2.LINE_AA)
        first = by_pid[pid][min(by_pid[pid])]
        for j, col in enumerate(cols):
            if j < params.cameras:
                plan = by_pid[pid].get(j + 1)
                if plan is None:
                    tile = np.full((params.height, params.width, 3), 200, np.uint8)
                else:
                    frames, _, _ = render_tracklet(params, plan.with_frames(1), forced="")
                    tile = frames[0]
            else:
                frames, _, _ = render_tracklet(params, first.with_frames(2), forced=col)
                tile = frames[-1]
            x = 46 + j * (W + 4)
            sheet[y : y + H, x : x + W] = cv2.resize(tile, (W, H), interpolation=cv2.INTER_NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write contact sheet {path}")
    return path



__all__ = ["make_contact_sheet"]
