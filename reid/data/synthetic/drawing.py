"""Drawing with OpenCV: camera scenes (:func:`camera_background`) and people (:func:`draw_person`).

Everything is drawn on the 2x canvas with ``cv2.LINE_AA`` and area-resized to the frame size
later (:mod:`.rendering`), which anti-aliases the thin structures.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

import cv2
import numpy as np

from reid.data.synthetic.appearance import PersonSpec, camera_spec
from reid.data.synthetic.streams import CAMERA_STREAM, rng_stream


def _noise_texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] (random grid, bicubic upsampling)."""
    small = rng.uniform(-1, 1, size=(max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=32)
def camera_background(seed: int, camid: int, height: int, width: int) -> np.ndarray:
    """A textured panorama (RGB uint8, ``height`` x ``3*width``) that tracklets crop and pan over.

    Built at the canvas resolution (2x the frame). Cached per process: it is deterministic.
    """
    spec = camera_spec(seed, camid)
    rng = rng_stream(seed, CAMERA_STREAM, camid, 1)
    H, W = height, 3 * width
    img = np.zeros((H, W, 3), np.float32)
    horizon = int(H * rng.uniform(0.62, 0.72))

    def base(rgb: Iterable[float], jitter: float = 12.0) -> np.ndarray:
        c = np.asarray(list(rgb), np.float32) + rng.uniform(-jitter, jitter, 3)
        return np.clip(c, 0, 255)

    if spec.background == "brick":
        brick, mortar = base((150, 75, 55)), base((190, 185, 175))
        img[:horizon] = mortar
        bh, bw = max(6, H // 18), max(12, H // 8)
        for r, y in enumerate(range(0, horizon, bh)):
            off = (bw // 2) * (r % 2)
            for x in range(-off, W, bw):
                shade = brick + rng.uniform(-22, 22, 3)
                cv2.rectangle(img, (x + 1, y + 1), (x + bw - 2, min(y + bh - 2, horizon - 1)), shade.tolist(), -1)
        img[horizon:] = base((120, 120, 118))
        for x in range(0, W, bw * 2):  # paving joints
            cv2.line(img, (x, horizon), (x - bw, H), (95, 95, 95), 1, cv2.LINE_AA)
    elif spec.background == "street":
        img[:horizon] = base((175, 170, 160))
        ww, wh = max(10, W // 14), max(12, H // 7)
        for y in range(H // 16, horizon - wh, int(wh * 1.6)):
            for x in range(ww // 2, W - ww, int(ww * 1.8)):
                glass = base((70, 95, 120), 25)
                cv2.rectangle(img, (x, y), (x + ww, y + wh), glass.tolist(), -1)
                cv2.rectangle(img, (x, y), (x + ww, y + wh), (60, 55, 50), 1)
        img[horizon:] = base((85, 85, 90))
        y_mark = horizon + (H - horizon) * 2 // 3
        for x in range(0, W, W // 6):
            cv2.line(img, (x, y_mark), (x + W // 14, y_mark), (225, 225, 215), 2, cv2.LINE_AA)
    elif spec.background == "park":
        img[:horizon] = base((150, 190, 225))  # sky
        tree_line = int(horizon * rng.uniform(0.25, 0.45))
        for _ in range(W // 10):
            cx, r = int(rng.integers(0, W)), int(rng.integers(H // 10, H // 5))
            cv2.circle(img, (cx, tree_line + r // 2), r, base((50, 110, 45), 20).tolist(), -1, cv2.LINE_AA)
        img[tree_line + H // 6 : horizon] = base((70, 130, 55))
        img[horizon:] = base((95, 150, 65))
        path = np.array([[W // 3, horizon], [2 * W // 3, horizon], [W, H], [0, H]], np.int32)
        cv2.fillPoly(img, [path], base((170, 150, 115)).tolist(), cv2.LINE_AA)
    else:  # indoor
        img[:horizon] = base((205, 200, 185))
        for _ in range(max(2, W // 60)):
            x, w_ = int(rng.integers(0, W)), int(rng.integers(W // 20, W // 10))
            y0 = int(rng.uniform(0.15, 0.4) * horizon)
            cv2.rectangle(img, (x, y0), (x + w_, horizon), base((120, 85, 60), 20).tolist(), -1)  # doors
        for _ in range(max(2, W // 50)):
            x, y = int(rng.integers(0, W)), int(rng.uniform(0.1, 0.4) * horizon)
            cv2.rectangle(img, (x, y), (x + W // 25, y + H // 8), base(rng.uniform(40, 220, 3), 0).tolist(), -1)
        img[horizon:] = base((160, 150, 140))
        tile = max(8, H // 12)
        for y in range(horizon, H, tile):
            cv2.line(img, (0, y), (W, y), (120, 112, 105), 1, cv2.LINE_AA)
        for x in range(-W, 2 * W, tile * 2):
            cv2.line(img, (W // 2 + (x - W // 2) // 3, horizon), (x, H), (120, 112, 105), 1, cv2.LINE_AA)
    # fine and coarse texture so no region is flat
    img += 14.0 * _noise_texture(rng, H, W, 3)[..., None] + 10.0 * _noise_texture(rng, H, W, 24)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def to_pixel(x: float, y: float) -> tuple[int, int]:
    """Nearest integer pixel of a float point (cv2 drawing takes ints)."""
    return (int(round(x)), int(round(y)))


def _limb(img: np.ndarray, a, b, c, colour, thick: float, colour2=None) -> None:
    """Two-segment limb a-b-c (upper part ``colour``, lower part ``colour2`` or the same)."""
    t = max(1, int(round(thick)))
    cv2.line(img, to_pixel(*a), to_pixel(*b), colour, t, cv2.LINE_AA)
    cv2.line(img, to_pixel(*b), to_pixel(*c), colour if colour2 is None else colour2, t, cv2.LINE_AA)
    cv2.circle(img, to_pixel(*b), max(1, t // 2), colour if colour2 is None else colour2, -1, cv2.LINE_AA)


def draw_person(img: np.ndarray, spec: PersonSpec, view: str, phase: float, cx: float, top: float, h: float) -> None:
    """Draw ``spec`` in place on RGB ``img`` standing at (``cx``, ``top``) with height ``h`` pixels.

    ``phase`` is the walking cycle angle: legs swing as ``sin(phase)``, arms in opposition.
    Side views (``left``/``right``: the direction the person faces) swing limbs along x; front and
    back views show the swing as foot lift and small lateral motion.
    """
    h = h * spec.height_scale
    top = top + (h / spec.height_scale - h)  # shorter people: same feet line
    ws = spec.width_scale
    side = view in ("left", "right")
    facing = -1.0 if view == "left" else 1.0
    s = math.sin(phase)
    u = lambda v: tuple(int(x) for x in v)  # noqa: E731 - colour tuples for cv2

    head_r = 0.068 * h
    head_c = (cx + (0.01 * h * facing if side else 0.0), top + head_r + 0.01 * h)
    y_sh, y_hip, y_knee, y_ft = top + 0.19 * h, top + 0.53 * h, top + 0.74 * h, top + 0.95 * h
    sw = (0.085 if side else 0.135) * h * ws
    hw = (0.075 if side else 0.105) * h * ws
    arm_t, leg_t = 0.058 * h * ws, 0.082 * h * ws

    # which of the person's own sides faces the camera: from the front the person's left side is on
    # image right; from the back it is on image left.
    def own_side_x(which: str) -> float:
        sign = -1.0 if which == "left" else 1.0  # person's left = -1 in their own frame
        if view == "front":
            return -sign
        if view == "back":
            return sign
        return 0.0

    lower_rgb, skin = u(spec.lower_rgb), u(spec.skin_rgb)
    upper_rgb = u(spec.upper_rgb)

    # --- things behind the body
    if spec.bag == "backpack" and view != "back":
        if side:
            bx = cx - facing * (sw + 0.05 * h)
            cv2.rectangle(img, to_pixel(bx - 0.06 * h, y_sh + 0.02 * h), to_pixel(bx + 0.06 * h, y_sh + 0.27 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)
    if spec.bag.startswith("shoulder") and side:
        own = "left" if spec.bag.endswith("left") else "right"
        # facing right (+x) you see the person's left side
        visible = (own == "left") == (facing > 0)
        if not visible:  # the bag on the far side peeks out behind the hip
            bx = cx - facing * 0.05 * h
            cv2.rectangle(img, to_pixel(bx - 0.055 * h, y_hip - 0.1 * h), to_pixel(bx + 0.055 * h, y_hip + 0.02 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)

    # --- legs
    def leg(sign: float, swing: float) -> None:
        hip = (cx + sign * hw * 0.5, y_hip)
        if side:
            foot = (hip[0] + facing * swing * 0.17 * h, y_ft - max(0.0, -swing) * 0.02 * h)
            knee = ((hip[0] + foot[0]) / 2 + facing * 0.03 * h * abs(swing), y_knee)
        else:
            foot = (hip[0] + sign * 0.015 * h, y_ft - max(0.0, swing) * 0.035 * h)
            knee = ((hip[0] + foot[0]) / 2, y_knee - max(0.0, swing) * 0.02 * h)
        if spec.lower_type == "trousers":
            _limb(img, hip, knee, foot, lower_rgb, leg_t)
        elif spec.lower_type == "shorts":
            _limb(img, hip, knee, foot, lower_rgb, leg_t * 0.85, skin)
            cv2.line(img, to_pixel(*hip), to_pixel(*knee), lower_rgb, max(1, int(leg_t)), cv2.LINE_AA)
        else:  # skirt: bare legs, the skirt is drawn over them
            _limb(img, hip, knee, foot, skin, leg_t * 0.75)
        shoe_w = 0.055 * h
        sx = foot[0] + (facing * shoe_w * 0.4 if side else 0.0)
        cv2.ellipse(img, to_pixel(sx, foot[1] + 0.01 * h), to_pixel(shoe_w, 0.025 * h), 0, 0, 360, u(spec.shoes_rgb), -1, cv2.LINE_AA)

    if side:
        leg(-1.0, -s)  # far leg first
        leg(1.0, s)
    else:
        leg(-1.0, s)
        leg(1.0, -s)
    if spec.lower_type == "skirt":
        skirt = np.array([to_pixel(cx - hw, y_hip - 0.03 * h), to_pixel(cx + hw, y_hip - 0.03 * h),
                          to_pixel(cx + hw * 1.45, y_knee + 0.02 * h), to_pixel(cx - hw * 1.45, y_knee + 0.02 * h)], np.int32)
        cv2.fillPoly(img, [skirt], lower_rgb, cv2.LINE_AA)

    # --- arms (far arm behind the torso in side view)
    def arm(sign: float, swing: float) -> None:
        sh = (cx + sign * sw * 0.92, y_sh + 0.03 * h)
        if side:
            hand = (sh[0] + facing * swing * 0.13 * h, y_sh + 0.33 * h)
            elbow = ((sh[0] + hand[0]) / 2 - facing * 0.015 * h, y_sh + 0.17 * h)
        else:
            hand = (sh[0] + sign * 0.03 * h, y_sh + 0.33 * h - abs(swing) * 0.02 * h)
            elbow = (sh[0] + sign * 0.02 * h, y_sh + 0.17 * h)
        forearm = upper_rgb if spec.long_sleeves else skin
        _limb(img, sh, elbow, hand, upper_rgb, arm_t, forearm)
        cv2.circle(img, to_pixel(*hand), max(1, int(arm_t * 0.55)), skin, -1, cv2.LINE_AA)

    if side:
        arm(0.0, s)  # far arm (opposite phase to the near leg)

    # --- torso with pattern
    torso = np.array([to_pixel(cx - sw, y_sh), to_pixel(cx + sw, y_sh), to_pixel(cx + hw, y_hip), to_pixel(cx - hw, y_hip)], np.int32)
    x0, y0 = max(0, int(cx - sw) - 2), max(0, int(y_sh) - 2)
    x1, y1 = min(img.shape[1], int(cx + sw) + 3), min(img.shape[0], int(y_hip) + 3)
    cv2.fillPoly(img, [torso], upper_rgb, cv2.LINE_AA)
    cv2.line(img, to_pixel(cx - sw, y_sh), to_pixel(cx + sw, y_sh), upper_rgb, max(1, int(0.03 * h)), cv2.LINE_AA)
    if spec.pattern in ("hstripes", "vstripes", "checks") and x1 > x0 and y1 > y0:
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [torso - np.array([x0, y0], np.int32)], 255)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        period = max(4.0, 0.05 * h)
        if spec.pattern == "hstripes":
            on = ((yy - y_sh) % period) < period / 2
        elif spec.pattern == "vstripes":
            on = ((xx - cx) % period) < period / 2
        else:
            on = ((((yy - y_sh) // (period * 1.2)) + ((xx - cx) // (period * 1.2))) % 2) == 0
        sel = (mask > 0) & on
        img[y0:y1, x0:x1][sel] = spec.pattern_rgb
    elif spec.pattern == "logo" and view != "back":
        lx = cx + (facing * 0.03 * h if side else 0.0)
        ly = y_sh + 0.12 * h
        r = 0.045 * h * (0.7 if side else 1.0)
        star = [to_pixel(lx + r * math.cos(a) * (1.0 if i % 2 == 0 else 0.45), ly + r * math.sin(a) * (1.0 if i % 2 == 0 else 0.45))
                for i, a in enumerate(np.linspace(-math.pi / 2, 1.5 * math.pi, 11)[:-1])]
        cv2.fillPoly(img, [np.array(star, np.int32)], u(spec.pattern_rgb), cv2.LINE_AA)

    # --- bags in front of the body
    if spec.bag == "backpack":
        if view == "back":
            cv2.rectangle(img, to_pixel(cx - sw * 0.75, y_sh + 0.03 * h), to_pixel(cx + sw * 0.75, y_sh + 0.27 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)
            cv2.rectangle(img, to_pixel(cx - sw * 0.5, y_sh + 0.15 * h), to_pixel(cx + sw * 0.5, y_sh + 0.24 * h), u(np.asarray(spec.bag_rgb) * 0.7), -1, cv2.LINE_AA)
        elif view == "front":
            for sign in (-1, 1):  # straps
                cv2.line(img, to_pixel(cx + sign * sw * 0.55, y_sh), to_pixel(cx + sign * sw * 0.6, y_sh + 0.2 * h), u(spec.bag_rgb), max(1, int(0.02 * h)), cv2.LINE_AA)
        else:
            cv2.line(img, to_pixel(cx, y_sh), to_pixel(cx + facing * 0.02 * h, y_sh + 0.2 * h), u(spec.bag_rgb), max(1, int(0.02 * h)), cv2.LINE_AA)
    elif spec.bag.startswith("shoulder"):
        own = "left" if spec.bag.endswith("left") else "right"
        if not side:
            xs = own_side_x(own)
            bx = cx + xs * (sw + 0.035 * h)
            cv2.line(img, to_pixel(cx - xs * sw * 0.6, y_sh), to_pixel(bx, y_hip - 0.08 * h), u(spec.bag_rgb), max(1, int(0.015 * h)), cv2.LINE_AA)
            cv2.rectangle(img, to_pixel(bx - 0.05 * h, y_hip - 0.1 * h), to_pixel(bx + 0.05 * h, y_hip + 0.03 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)
        elif (own == "left") == (facing > 0):
            bx = cx + facing * 0.01 * h
            cv2.line(img, to_pixel(cx, y_sh), to_pixel(bx, y_hip - 0.08 * h), u(spec.bag_rgb), max(1, int(0.015 * h)), cv2.LINE_AA)
            cv2.rectangle(img, to_pixel(bx - 0.06 * h, y_hip - 0.11 * h), to_pixel(bx + 0.06 * h, y_hip + 0.03 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)

    # --- arms in front
    if side:
        arm(0.0, -s)
    else:
        arm(-1.0, -s)
        arm(1.0, s)

    # --- neck and head
    cv2.line(img, to_pixel(cx, y_sh - 0.04 * h), to_pixel(cx, y_sh + 0.01 * h), skin, max(1, int(0.05 * h)), cv2.LINE_AA)
    hc = to_pixel(*head_c)
    hair = u(spec.hair_rgb)
    cv2.circle(img, hc, max(1, int(head_r)), skin if view != "back" else hair, -1, cv2.LINE_AA)
    if view == "front":
        cv2.ellipse(img, hc, to_pixel(head_r, head_r * 0.75), 0, 180, 360, hair, -1, cv2.LINE_AA)
        for sign in (-1, 1):  # eyes
            cv2.circle(img, to_pixel(head_c[0] + sign * 0.3 * head_r, head_c[1] + 0.1 * head_r), max(1, int(0.1 * head_r)), (30, 25, 25), -1, cv2.LINE_AA)
    elif side:
        cv2.ellipse(img, hc, to_pixel(head_r, head_r), 0, 180 if facing > 0 else 0, 270 if facing > 0 else 90, hair, -1, cv2.LINE_AA)
        cv2.ellipse(img, hc, to_pixel(head_r, head_r * 0.8), 0, 180, 360, hair, -1, cv2.LINE_AA)
    if spec.hat_rgb is not None:
        cv2.ellipse(img, hc, to_pixel(head_r * 1.05, head_r * 0.95), 0, 180, 360, u(spec.hat_rgb), -1, cv2.LINE_AA)
        brim = facing * head_r * 0.9 if side else 0.0
        cv2.ellipse(img, to_pixel(head_c[0] + brim, head_c[1] - 0.1 * head_r), to_pixel(head_r * (1.3 if not side else 0.9), head_r * 0.18), 0, 0, 360, u(spec.hat_rgb), -1, cv2.LINE_AA)


__all__ = ["camera_background", "draw_person", "to_pixel"]
