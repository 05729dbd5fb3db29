"""Rendering tracklets into frames: per-tracklet motion and scene state, the adverse runs (blur,
occlusion, truncation, second person, background only), and the camera response (gain x colour
cast, gamma, optics blur, sensor noise).

A tracklet's frames come from one stream keyed by its plan's ``key``, so they depend only on the
parameters and the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from reid.data.synthetic.appearance import CameraSpec, PersonSpec, camera_spec, person_spec
from reid.data.synthetic.drawing import camera_background, draw_person, to_pixel
from reid.data.synthetic.params import VIEWS, SyntheticMarsParams
from reid.data.synthetic.planning import TrackletPlan
from reid.data.synthetic.streams import PASSER_FAMILY, RENDER_STREAM, rng_stream


def _frame_schedule(rng: np.random.Generator, n: int, params: SyntheticMarsParams) -> list[str]:
    """Per-frame adverse label ("" = clean). Each kind occurs at most once per tracklet, as one
    contiguous run covering ~15-35% of it; later kinds do not overwrite earlier runs."""
    labels = [""] * n
    for kind, rate in params.adverse_rates:
        if rng.random() >= rate:
            continue
        length = max(1, int(round(n * rng.uniform(0.15, 0.35))))
        start = int(rng.integers(0, n - length + 1))
        for f in range(start, start + length):
            if not labels[f]:
                labels[f] = kind
    return labels


def _pick_view(rng: np.random.Generator, cam: CameraSpec) -> str:
    return VIEWS[int(rng.choice(4, p=np.asarray(cam.view_probs)))]


def _photometry(img: np.ndarray, cam: CameraSpec, tracklet_gain: float, rng: np.random.Generator) -> np.ndarray:
    """Camera response: gain x per-channel cast, gamma, optical blur, sensor noise."""
    x = img.astype(np.float32) / 255.0
    x = x * (cam.gain * tracklet_gain) * np.asarray(cam.cast, np.float32)
    x = np.clip(x, 0.0, 1.0) ** cam.gamma
    if cam.blur_sigma > 0.3:  # slightly soft optics
        x = cv2.GaussianBlur(x, (0, 0), cam.blur_sigma)
    x = x * 255.0 + rng.normal(0.0, cam.noise_sigma, size=x.shape).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


@dataclass
class _TrackletState:
    """Per-tracklet constants drawn once, so frames move smoothly."""

    view: str
    phase0: float
    phase_step: float
    cx0: float
    drift: float
    top0: float
    h: float
    bg_x0: float
    bg_step: float
    gain: float
    occluder: tuple  # (kind, x, colour)
    second: PersonSpec
    second_dx: float
    second_front: bool
    trunc: tuple[float, float, float, float]  # crop box in canvas fractions


def _tracklet_state(rng: np.random.Generator, seed: int, cam: CameraSpec, ch: int, cw: int, key: int) -> _TrackletState:
    view = _pick_view(rng, cam)
    side = view in ("left", "right")
    h = ch * cam.person_scale * rng.uniform(0.94, 1.04)
    trunc_kind = int(rng.integers(3))
    trunc = ((0.0, 0.0, 1.0, rng.uniform(0.5, 0.65)),  # lower body cut
             (rng.uniform(0.25, 0.4), 0.0, 1.0, 1.0),  # left part cut
             (0.0, rng.uniform(0.3, 0.45), 1.0, 1.0))[trunc_kind]  # head and shoulders cut
    occ_kind = "pole" if rng.random() < 0.5 else "box"
    return _TrackletState(
        view=view,
        phase0=float(rng.uniform(0, 2 * math.pi)),
        phase_step=float(rng.uniform(0.45, 0.8)),
        cx0=cw / 2 + rng.normal(0, 0.03 * cw),
        drift=float(rng.normal(0, 0.004 * cw)),
        top0=(ch - h) * rng.uniform(0.3, 0.7),
        h=float(h),
        bg_x0=float(rng.uniform(0, 2 * cw)),
        bg_step=float((rng.uniform(0.04, 0.08) * cw * rng.choice([-1, 1])) if side else rng.normal(0, 0.01 * cw)),
        gain=float(rng.uniform(0.92, 1.08)),
        occluder=(occ_kind, float(rng.uniform(0.3, 0.7) * cw), tuple(int(c) for c in rng.integers(40, 200, 3))),
        second=person_spec(seed, PASSER_FAMILY, 100000 + key),
        second_dx=float(rng.choice([-1, 1]) * rng.uniform(0.45, 0.65) * cw),
        second_front=bool(rng.random() < 0.5),
        trunc=trunc,
    )


def render_frame(params: SyntheticMarsParams, plan_kind: str, spec: PersonSpec | None, cam: CameraSpec,
                 st: _TrackletState, f: int, adverse: str, rng: np.random.Generator) -> np.ndarray:
    """Render frame ``f`` (0-based) of a tracklet as an RGB ``height x width`` uint8 image."""
    ch, cw = 2 * params.height, 2 * params.width
    pano = camera_background(params.seed, cam.camid, ch, cw)
    bx = int(round(st.bg_x0 + st.bg_step * f)) % (pano.shape[1] - cw)
    img = np.ascontiguousarray(pano[:, bx : bx + cw]).copy()
    cx = st.cx0 + st.drift * f + rng.normal(0, 0.012 * cw)
    top = st.top0 + rng.normal(0, 0.01 * ch)
    phase = st.phase0 + st.phase_step * f

    draw_main = spec is not None and adverse != "background" and plan_kind != "junk_background"
    if adverse == "second_person" and not st.second_front:
        draw_person(img, st.second, _pick_view(rng, cam), phase + 1.3, cx + st.second_dx, top + rng.normal(0, 0.02 * ch), st.h)
    if draw_main:
        assert spec is not None
        draw_person(img, spec, st.view, phase, cx, top, st.h)
    if adverse == "second_person" and st.second_front:
        draw_person(img, st.second, _pick_view(rng, cam), phase + 1.3, cx + st.second_dx, top + rng.normal(0, 0.02 * ch), st.h)
    if adverse == "occlusion":
        kind, ox, colour = st.occluder
        ox = ox - st.bg_step * f  # static in the scene: moves against the pan
        if kind == "pole":
            pw = 0.16 * cw
            cv2.rectangle(img, to_pixel(ox - pw / 2, 0), to_pixel(ox + pw / 2, ch), colour, -1, cv2.LINE_AA)
            cv2.line(img, to_pixel(ox - pw / 4, 0), to_pixel(ox - pw / 4, ch), tuple(min(255, c + 50) for c in colour), max(1, int(pw / 6)), cv2.LINE_AA)
        else:
            y = ch * 0.58
            cv2.rectangle(img, to_pixel(-1, y), to_pixel(cw + 1, ch + 1), colour, -1, cv2.LINE_AA)
            cv2.line(img, to_pixel(-1, y), to_pixel(cw + 1, y), tuple(max(0, c - 40) for c in colour), 3, cv2.LINE_AA)
    if adverse == "truncation" or plan_kind == "junk_fragment":
        x0, y0, x1, y1 = st.trunc
        if plan_kind == "junk_fragment":  # heavier: a small piece of a person
            x0, y0, x1, y1 = x0 * 1.3, y0 * 1.3, x1 * 0.75, y1 * 0.75
            x0, y0 = min(x0, x1 - 0.25), min(y0, y1 - 0.25)
        crop = img[int(y0 * ch) : max(int(y0 * ch) + 4, int(y1 * ch)), int(x0 * cw) : max(int(x0 * cw) + 4, int(x1 * cw))]
        img = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if adverse == "blur":
        k = int(rng.integers(7, 15)) | 1
        kernel = np.zeros((k, k), np.float32)
        angle = rng.uniform(-0.3, 0.3)
        cv2.line(kernel, to_pixel(k / 2 - k / 2 * math.cos(angle), k / 2 - k / 2 * math.sin(angle)),
                 to_pixel(k / 2 + k / 2 * math.cos(angle), k / 2 + k / 2 * math.sin(angle)), 1.0, 1)
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    # the camera response acts at the sensor's resolution: resize first (also 4x cheaper)
    img = cv2.resize(img, (params.width, params.height), interpolation=cv2.INTER_AREA)
    return _photometry(img, cam, st.gain, rng)


def _plan_spec(params: SyntheticMarsParams, plan: TrackletPlan) -> PersonSpec | None:
    if plan.kind == "junk_background":
        return None
    return person_spec(params.seed, plan.family, plan.person, plan.twin_of)


def render_tracklet(params: SyntheticMarsParams, plan: TrackletPlan, forced: str | None = None) -> tuple[list[np.ndarray], list[str], str]:
    """Frames (RGB), their adverse labels and the tracklet's view. ``forced`` puts one adverse
    kind on every frame (for the preview)."""
    rng = rng_stream(params.seed, RENDER_STREAM, plan.key)
    cam = camera_spec(params.seed, plan.camid)
    ch, cw = 2 * params.height, 2 * params.width
    st = _tracklet_state(rng, params.seed, cam, ch, cw, plan.key)
    labels = _frame_schedule(rng, plan.n_frames, params) if plan.kind == "person" else [""] * plan.n_frames
    if forced is not None:
        labels = [forced] * plan.n_frames
    spec = _plan_spec(params, plan)
    frames = [render_frame(params, plan.kind, spec, cam, st, f, labels[f], rng) for f in range(plan.n_frames)]
    if plan.kind != "person":
        labels = [plan.kind] * plan.n_frames
    return frames, labels, st.view


__all__ = ["render_frame", "render_tracklet"]
