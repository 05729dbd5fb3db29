"""An embedded synthetic video ReID dataset written in the exact MARS layout.

Why it exists: every part of ``reid`` (MARS reader, samplers, trainer, evaluator, noise studies)
needs a dataset that is small, always available offline and still *meaningful*: identities that a
network can learn from appearance, camera changes it must be invariant to, and the adverse cases
that example weighting and quality-aware aggregation are about (blur, occlusion, truncation, a
second person, background-only frames), at controlled rates. Real MARS (Zheng et al., ECCV 2016)
cannot be shipped; this generator draws people procedurally with OpenCV instead.

Layout written (identical to MARS, see docs/methods.md §4)::

    <out>/bbox_train/<id4>/<id4>C<cam>T<tracklet4>F<frame3>.jpg
    <out>/bbox_test/<id4>/...            (junk pid -1 -> folder/prefix "00-1", distractor 0 -> "0000")
    <out>/info/train_name.txt            one frame name per line; line order = 1-based index
    <out>/info/test_name.txt
    <out>/info/tracks_train_info.mat     track_train_info, N x 4 [start, end, pid, camid], 1-based
    <out>/info/tracks_test_info.mat      track_test_info,  M x 4
    <out>/info/query_IDX.mat             query_IDX, 1 x Q, 1-based rows of the test table
    <out>/SYNTHETIC.json                 generator version + parameters (the cache stamp)
    <out>/synthetic_annotations.csv      per-frame ground truth: view and adverse case

The ``.mat`` files use the dtypes of the official files (``int32`` tables, ``uint16`` query rows,
falling back to ``uint32`` only if a table ever has more than 65535 rows).

What the pictures contain (all anti-aliased: drawn at 2x with ``cv2.LINE_AA`` then area-resized):

* people: head (skin, hair, optional hat), torso with the identity's upper colour and pattern
  (plain, horizontal/vertical stripes, checks, chest logo), long or short sleeves, trousers /
  shorts / skirt in the lower colour, shoes, optional backpack or shoulder bag on one side, body
  build (height and width scale). About a quarter of the identities are *twins* of another
  identity of the same split: same upper colour and pattern, different lower body and accessory.
* cameras: a textured background per camera (brick wall, street facade, park, indoor tiles), an
  illumination gain, a mild per-channel colour cast, gamma, sensor noise, a scale, and a viewpoint
  preference (front / back / left / right changes which side a bag is on and hides the chest
  logo from behind).
* tracklets: walking motion (leg and arm swing phase), position jitter and drift, background pan.
* adverse runs inside tracklets (a contiguous run of frames each): motion blur, occlusion (pole or
  box), truncation (a crop that cuts the body), a second person partly overlapping, background
  only. The per-tracklet probabilities are ``adverse_rates``; with the defaults about 10% of the
  frames are adverse.
* test-split junk (pid -1): background-only or heavily truncated fragments; distractors (pid 0):
  people who are not among the test identities.

Determinism: every identity, camera and tracklet draws from its own ``np.random.default_rng``
stream keyed by ``(seed, stream tag, index...)``, frames are written with a fixed JPEG quality, so
the same parameters give byte-identical files whatever the number of worker processes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
import scipy.io

# Bump when the rendering or layout changes: cached datasets with another version are regenerated.
GENERATOR_VERSION = 1
STAMP_NAME = "SYNTHETIC.json"
ANNOTATIONS_NAME = "synthetic_annotations.csv"
DEFAULT_DIRNAME = "synthetic_mars"

ADVERSE_KINDS = ("blur", "occlusion", "truncation", "second_person", "background")
VIEWS = ("front", "back", "left", "right")

# RNG stream tags: each kind of object gets its own family of streams.
_S_SPLIT, _S_IDENTITY, _S_CAMERA, _S_PLAN, _S_RENDER, _S_PREVIEW = 1, 2, 3, 4, 5, 6
# identity-key families: real ids, distractor people, passers-by / junk fragments
_K_ID, _K_DISTRACTOR, _K_PASSER = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticMarsParams:
    """All parameters of one synthetic dataset (stored in ``SYNTHETIC.json``).

    Defaults give ~60 + 60 identities x 4 cameras, ~10k frames of 128x64, generated in well under a
    minute on two cores. ``tiny=True`` shrinks tracklets to 3-5 frames, no optional extra
    tracklets, for unit tests (test ids still get two tracklets in two cameras, see :func:`plan_dataset`).
    """

    ids_train: int = 60
    ids_test: int = 60
    cameras: int = 4
    seed: int = 0
    height: int = 128
    width: int = 64
    tiny: bool = False
    frames_min: int = 8
    frames_max: int = 24
    tracklets_per_camera_max: int = 2
    # probability that an (id, camera) pair has a second tracklet (when the max allows it)
    extra_tracklet_prob: float = 0.35
    cameras_per_id_min: int = 2
    # junk (-1) and distractor (0) tracklets in the test split; None = derived from ids_test
    junk_tracklets: int | None = None
    distractor_tracklets: int | None = None
    # fraction of identities that copy another identity's upper body (hard negatives)
    twin_fraction: float = 0.25
    # per-tracklet probability of one contiguous adverse run of each kind
    adverse_rates: tuple[tuple[str, float], ...] = (
        ("blur", 0.12),
        ("occlusion", 0.12),
        ("truncation", 0.08),
        ("second_person", 0.10),
        ("background", 0.04),
    )
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> None:
            raise ValueError(f"synthetic MARS parameter {key!r}: {why}")

        if self.ids_train < 1:
            bad("ids_train", f"need at least 1 training identity, got {self.ids_train}")
        if self.ids_test < 1:
            bad("ids_test", f"need at least 1 test identity, got {self.ids_test}")
        if self.ids_train + self.ids_test > 9998:
            bad("ids_train+ids_test", "MARS folder names have 4 digits: at most 9998 identities")
        if not 2 <= self.cameras <= 9:
            bad("cameras", f"MARS names hold one camera digit and queries need a second camera: 2..9, got {self.cameras}")
        if not 2 <= self.cameras_per_id_min <= self.cameras:
            bad("cameras_per_id_min", f"must be in [2, cameras={self.cameras}], got {self.cameras_per_id_min}")
        if self.height < 32 or self.width < 16:
            bad("height/width", f"frames must be at least 32x16, got {self.height}x{self.width}")
        if not 1 <= self.frames_min <= self.frames_max <= 999:
            bad("frames_min/frames_max", f"need 1 <= min <= max <= 999 (F<3 digits>), got {self.frames_min}..{self.frames_max}")
        if not 1 <= self.tracklets_per_camera_max <= 9999:
            bad("tracklets_per_camera_max", f"must be >= 1, got {self.tracklets_per_camera_max}")
        if not 0.0 <= self.twin_fraction <= 1.0:
            bad("twin_fraction", f"must be in [0, 1], got {self.twin_fraction}")
        if not 1 <= self.jpeg_quality <= 100:
            bad("jpeg_quality", f"must be in [1, 100], got {self.jpeg_quality}")
        for kind, rate in self.adverse_rates:
            if kind not in ADVERSE_KINDS:
                bad("adverse_rates", f"unknown adverse kind {kind!r}; known: {', '.join(ADVERSE_KINDS)}")
            if not 0.0 <= rate <= 1.0:
                bad("adverse_rates", f"rate of {kind!r} must be in [0, 1], got {rate}")
        for key in ("junk_tracklets", "distractor_tracklets"):
            v = getattr(self, key)
            if v is not None and v < 0:
                bad(key, f"must be >= 0, got {v}")

    @classmethod
    def create(cls, **params: Any) -> "SyntheticMarsParams":
        """Build parameters; ``tiny=True`` changes the *defaults* of the size knobs only."""
        if "adverse_rates" in params and isinstance(params["adverse_rates"], dict):
            params["adverse_rates"] = tuple(sorted(params["adverse_rates"].items()))
        elif "adverse_rates" in params:
            params["adverse_rates"] = tuple((str(k), float(v)) for k, v in params["adverse_rates"])
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(
                f"unknown synthetic MARS parameter(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(cls.__dataclass_fields__)}"
            )
        if params.get("tiny"):
            for key, value in (("frames_min", 3), ("frames_max", 5), ("extra_tracklet_prob", 0.0)):
                params.setdefault(key, value)
        return cls(**params)

    @property
    def n_junk(self) -> int:
        if self.junk_tracklets is not None:
            return self.junk_tracklets
        return 2 if self.tiny else max(2, self.ids_test // 2)

    @property
    def n_distractors(self) -> int:
        if self.distractor_tracklets is not None:
            return self.distractor_tracklets
        return 2 if self.tiny else max(2, (2 * self.ids_test) // 3)

    def to_json(self) -> dict:
        d = asdict(self)
        d["adverse_rates"] = {k: v for k, v in self.adverse_rates}
        return d


def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent stream per (seed, tag, index...): results do not depend on call order."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(k) & 0xFFFFFFFF for k in key]])


# ---------------------------------------------------------------------------------------------
# Appearance: identities and cameras
# ---------------------------------------------------------------------------------------------
# Clothing palette (RGB). Hues are spread so that a mild colour cast cannot map one to another.
CLOTHING_PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (232, 232, 228),
    "grey": (128, 128, 132),
    "navy": (30, 40, 100),
    "blue": (40, 90, 200),
    "sky": (120, 180, 235),
    "red": (200, 35, 35),
    "maroon": (110, 25, 40),
    "green": (40, 150, 60),
    "olive": (110, 115, 40),
    "yellow": (235, 205, 40),
    "orange": (235, 120, 30),
    "pink": (240, 140, 180),
    "purple": (110, 50, 150),
    "brown": (110, 70, 40),
    "beige": (205, 185, 145),
    "teal": (30, 140, 140),
}
_COLOUR_NAMES = tuple(CLOTHING_PALETTE)
SKIN_TONES = ((241, 204, 170), (224, 172, 128), (190, 135, 95), (141, 94, 60), (96, 62, 40))
HAIR_COLOURS = ((25, 20, 18), (70, 45, 25), (120, 85, 45), (200, 170, 110), (140, 140, 140))
UPPER_PATTERNS = ("plain", "hstripes", "vstripes", "checks", "logo")
LOWER_TYPES = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "shoulder_left", "shoulder_right")


@dataclass(frozen=True)
class PersonSpec:
    """Everything that makes one person look like themself (colours are RGB)."""

    upper: str
    upper_rgb: tuple[int, int, int]
    pattern: str
    pattern_rgb: tuple[int, int, int]
    long_sleeves: bool
    lower: str
    lower_rgb: tuple[int, int, int]
    lower_type: str
    shoes_rgb: tuple[int, int, int]
    skin_rgb: tuple[int, int, int]
    hair_rgb: tuple[int, int, int]
    hat_rgb: tuple[int, int, int] | None
    bag: str
    bag_rgb: tuple[int, int, int]
    height_scale: float
    width_scale: float
    twin_of: int | None = None


def _jitter_colour(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int = 12) -> tuple[int, int, int]:
    c = np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def _pick_colour(rng: np.random.Generator, exclude: Iterable[str] = ()) -> str:
    choices = [c for c in _COLOUR_NAMES if c not in set(exclude)]
    return choices[int(rng.integers(len(choices)))]


def _random_person(rng: np.random.Generator) -> PersonSpec:
    upper = _pick_colour(rng)
    pattern = UPPER_PATTERNS[int(rng.choice(len(UPPER_PATTERNS), p=[0.36, 0.16, 0.12, 0.16, 0.20]))]
    # the pattern must contrast with the shirt, or it is invisible at 128x64
    pattern_colour = _pick_colour(rng, exclude=[upper])
    lower = _pick_colour(rng)
    hat = rng.random() < 0.25
    return PersonSpec(
        upper=upper,
        upper_rgb=_jitter_colour(rng, CLOTHING_PALETTE[upper]),
        pattern=pattern,
        pattern_rgb=_jitter_colour(rng, CLOTHING_PALETTE[pattern_colour]),
        long_sleeves=bool(rng.random() < 0.6),
        lower=lower,
        lower_rgb=_jitter_colour(rng, CLOTHING_PALETTE[lower]),
        lower_type=LOWER_TYPES[int(rng.choice(3, p=[0.6, 0.2, 0.2]))],
        shoes_rgb=_jitter_colour(rng, CLOTHING_PALETTE[_pick_colour(rng)], 20),
        skin_rgb=_jitter_colour(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 8),
        hair_rgb=_jitter_colour(rng, HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))], 8),
        hat_rgb=_jitter_colour(rng, CLOTHING_PALETTE[_pick_colour(rng)]) if hat else None,
        bag=BAGS[int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15]))],
        bag_rgb=_jitter_colour(rng, CLOTHING_PALETTE[_pick_colour(rng, exclude=[upper])]),
        height_scale=float(rng.uniform(0.86, 1.0)),
        width_scale=float(rng.uniform(0.85, 1.18)),
    )


def person_spec(seed: int, family: int, index: int, twin_of: int | None = None) -> PersonSpec:
    """Appearance of one person. ``family`` is real id / distractor / passer-by; ``index`` the pid.

    A twin copies the upper body (colour, pattern, sleeves) of ``twin_of`` and is then forced to
    differ in the lower colour and in at least one of lower type / bag / hat, so the pair is
    separable but only by looking below the shirt or at accessories.
    """
    spec = _random_person(_rng(seed, _S_IDENTITY, family, index))
    if twin_of is None:
        return spec
    base = person_spec(seed, family, twin_of)
    rng = _rng(seed, _S_IDENTITY, family, index, 1)
    lower = _pick_colour(rng, exclude=[base.lower, base.upper])
    changes: dict[str, Any] = dict(
        upper=base.upper,
        upper_rgb=base.upper_rgb,
        pattern=base.pattern,
        pattern_rgb=base.pattern_rgb,
        long_sleeves=base.long_sleeves,
        lower=lower,
        lower_rgb=_jitter_colour(rng, CLOTHING_PALETTE[lower]),
        twin_of=twin_of,
    )
    which = int(rng.integers(3))
    if which == 0:
        changes["lower_type"] = LOWER_TYPES[(LOWER_TYPES.index(base.lower_type) + 1 + int(rng.integers(2))) % 3]
    elif which == 1:
        changes["bag"] = BAGS[(BAGS.index(base.bag) + 1 + int(rng.integers(3))) % 4]
    else:
        changes["hat_rgb"] = None if base.hat_rgb is not None else _jitter_colour(rng, CLOTHING_PALETTE[_pick_colour(rng)])
    return PersonSpec(**{**asdict(spec), **changes})


BACKGROUND_KINDS = ("brick", "street", "park", "indoor")


@dataclass(frozen=True)
class CameraSpec:
    """One camera: scene, photometry and geometry. ``cast`` multiplies R, G, B."""

    camid: int
    background: str
    gain: float
    cast: tuple[float, float, float]
    gamma: float
    noise_sigma: float
    blur_sigma: float
    person_scale: float  # person height / frame height
    view_probs: tuple[float, float, float, float]  # front, back, left, right


def camera_spec(seed: int, camid: int) -> CameraSpec:
    rng = _rng(seed, _S_CAMERA, camid)
    # cameras cycle through the scene kinds so that any 4 cameras see 4 different scenes
    kind = BACKGROUND_KINDS[(camid - 1 + int(_rng(seed, _S_CAMERA, 0).integers(4))) % 4]
    # each camera prefers one or two views: real cameras see people walking a fixed path
    pref = rng.dirichlet([1.2, 1.2, 1.0, 1.0])
    views = 0.55 * pref + 0.45 * np.full(4, 0.25)
    return CameraSpec(
        camid=camid,
        background=kind,
        gain=float(rng.uniform(0.78, 1.12)),
        # mild cast: at most ~10% per channel, so a red shirt stays red under every camera
        cast=tuple(float(x) for x in rng.uniform(0.9, 1.1, size=3)),  # type: ignore[arg-type]
        gamma=float(rng.uniform(0.85, 1.18)),
        noise_sigma=float(rng.uniform(1.5, 4.0)),
        blur_sigma=float(rng.uniform(0.0, 0.6)),  # at output resolution
        person_scale=float(rng.uniform(0.78, 0.92)),
        view_probs=tuple(float(v) for v in views / views.sum()),  # type: ignore[arg-type]
    )


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
    rng = _rng(seed, _S_CAMERA, camid, 1)
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


# ---------------------------------------------------------------------------------------------
# Drawing a person
# ---------------------------------------------------------------------------------------------
def _pt(x: float, y: float) -> tuple[int, int]:
    return (int(round(x)), int(round(y)))


def _limb(img: np.ndarray, a, b, c, colour, thick: float, colour2=None) -> None:
    """Two-segment limb a-b-c (upper part ``colour``, lower part ``colour2`` or the same)."""
    t = max(1, int(round(thick)))
    cv2.line(img, _pt(*a), _pt(*b), colour, t, cv2.LINE_AA)
    cv2.line(img, _pt(*b), _pt(*c), colour if colour2 is None else colour2, t, cv2.LINE_AA)
    cv2.circle(img, _pt(*b), max(1, t // 2), colour if colour2 is None else colour2, -1, cv2.LINE_AA)


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
            cv2.rectangle(img, _pt(bx - 0.06 * h, y_sh + 0.02 * h), _pt(bx + 0.06 * h, y_sh + 0.27 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)
    if spec.bag.startswith("shoulder") and side:
        own = "left" if spec.bag.endswith("left") else "right"
        # facing right (+x) you see the person's left side
        visible = (own == "left") == (facing > 0)
        if not visible:  # the bag on the far side peeks out behind the hip
            bx = cx - facing * 0.05 * h
            cv2.rectangle(img, _pt(bx - 0.055 * h, y_hip - 0.1 * h), _pt(bx + 0.055 * h, y_hip + 0.02 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)

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
            cv2.line(img, _pt(*hip), _pt(*knee), lower_rgb, max(1, int(leg_t)), cv2.LINE_AA)
        else:  # skirt: bare legs, the skirt is drawn over them
            _limb(img, hip, knee, foot, skin, leg_t * 0.75)
        shoe_w = 0.055 * h
        sx = foot[0] + (facing * shoe_w * 0.4 if side else 0.0)
        cv2.ellipse(img, _pt(sx, foot[1] + 0.01 * h), _pt(shoe_w, 0.025 * h), 0, 0, 360, u(spec.shoes_rgb), -1, cv2.LINE_AA)

    if side:
        leg(-1.0, -s)  # far leg first
        leg(1.0, s)
    else:
        leg(-1.0, s)
        leg(1.0, -s)
    if spec.lower_type == "skirt":
        skirt = np.array([_pt(cx - hw, y_hip - 0.03 * h), _pt(cx + hw, y_hip - 0.03 * h),
                          _pt(cx + hw * 1.45, y_knee + 0.02 * h), _pt(cx - hw * 1.45, y_knee + 0.02 * h)], np.int32)
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
        cv2.circle(img, _pt(*hand), max(1, int(arm_t * 0.55)), skin, -1, cv2.LINE_AA)

    if side:
        arm(0.0, s)  # far arm (opposite phase to the near leg)

    # --- torso with pattern
    torso = np.array([_pt(cx - sw, y_sh), _pt(cx + sw, y_sh), _pt(cx + hw, y_hip), _pt(cx - hw, y_hip)], np.int32)
    x0, y0 = max(0, int(cx - sw) - 2), max(0, int(y_sh) - 2)
    x1, y1 = min(img.shape[1], int(cx + sw) + 3), min(img.shape[0], int(y_hip) + 3)
    cv2.fillPoly(img, [torso], upper_rgb, cv2.LINE_AA)
    cv2.line(img, _pt(cx - sw, y_sh), _pt(cx + sw, y_sh), upper_rgb, max(1, int(0.03 * h)), cv2.LINE_AA)
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
        star = [_pt(lx + r * math.cos(a) * (1.0 if i % 2 == 0 else 0.45), ly + r * math.sin(a) * (1.0 if i % 2 == 0 else 0.45))
                for i, a in enumerate(np.linspace(-math.pi / 2, 1.5 * math.pi, 11)[:-1])]
        cv2.fillPoly(img, [np.array(star, np.int32)], u(spec.pattern_rgb), cv2.LINE_AA)

    # --- bags in front of the body
    if spec.bag == "backpack":
        if view == "back":
            cv2.rectangle(img, _pt(cx - sw * 0.75, y_sh + 0.03 * h), _pt(cx + sw * 0.75, y_sh + 0.27 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)
            cv2.rectangle(img, _pt(cx - sw * 0.5, y_sh + 0.15 * h), _pt(cx + sw * 0.5, y_sh + 0.24 * h), u(np.asarray(spec.bag_rgb) * 0.7), -1, cv2.LINE_AA)
        elif view == "front":
            for sign in (-1, 1):  # straps
                cv2.line(img, _pt(cx + sign * sw * 0.55, y_sh), _pt(cx + sign * sw * 0.6, y_sh + 0.2 * h), u(spec.bag_rgb), max(1, int(0.02 * h)), cv2.LINE_AA)
        else:
            cv2.line(img, _pt(cx, y_sh), _pt(cx + facing * 0.02 * h, y_sh + 0.2 * h), u(spec.bag_rgb), max(1, int(0.02 * h)), cv2.LINE_AA)
    elif spec.bag.startswith("shoulder"):
        own = "left" if spec.bag.endswith("left") else "right"
        if not side:
            xs = own_side_x(own)
            bx = cx + xs * (sw + 0.035 * h)
            cv2.line(img, _pt(cx - xs * sw * 0.6, y_sh), _pt(bx, y_hip - 0.08 * h), u(spec.bag_rgb), max(1, int(0.015 * h)), cv2.LINE_AA)
            cv2.rectangle(img, _pt(bx - 0.05 * h, y_hip - 0.1 * h), _pt(bx + 0.05 * h, y_hip + 0.03 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)
        elif (own == "left") == (facing > 0):
            bx = cx + facing * 0.01 * h
            cv2.line(img, _pt(cx, y_sh), _pt(bx, y_hip - 0.08 * h), u(spec.bag_rgb), max(1, int(0.015 * h)), cv2.LINE_AA)
            cv2.rectangle(img, _pt(bx - 0.06 * h, y_hip - 0.11 * h), _pt(bx + 0.06 * h, y_hip + 0.03 * h), u(spec.bag_rgb), -1, cv2.LINE_AA)

    # --- arms in front
    if side:
        arm(0.0, -s)
    else:
        arm(-1.0, -s)
        arm(1.0, s)

    # --- neck and head
    cv2.line(img, _pt(cx, y_sh - 0.04 * h), _pt(cx, y_sh + 0.01 * h), skin, max(1, int(0.05 * h)), cv2.LINE_AA)
    hc = _pt(*head_c)
    hair = u(spec.hair_rgb)
    cv2.circle(img, hc, max(1, int(head_r)), skin if view != "back" else hair, -1, cv2.LINE_AA)
    if view == "front":
        cv2.ellipse(img, hc, _pt(head_r, head_r * 0.75), 0, 180, 360, hair, -1, cv2.LINE_AA)
        for sign in (-1, 1):  # eyes
            cv2.circle(img, _pt(head_c[0] + sign * 0.3 * head_r, head_c[1] + 0.1 * head_r), max(1, int(0.1 * head_r)), (30, 25, 25), -1, cv2.LINE_AA)
    elif side:
        cv2.ellipse(img, hc, _pt(head_r, head_r), 0, 180 if facing > 0 else 0, 270 if facing > 0 else 90, hair, -1, cv2.LINE_AA)
        cv2.ellipse(img, hc, _pt(head_r, head_r * 0.8), 0, 180, 360, hair, -1, cv2.LINE_AA)
    if spec.hat_rgb is not None:
        cv2.ellipse(img, hc, _pt(head_r * 1.05, head_r * 0.95), 0, 180, 360, u(spec.hat_rgb), -1, cv2.LINE_AA)
        brim = facing * head_r * 0.9 if side else 0.0
        cv2.ellipse(img, _pt(head_c[0] + brim, head_c[1] - 0.1 * head_r), _pt(head_r * (1.3 if not side else 0.9), head_r * 0.18), 0, 0, 360, u(spec.hat_rgb), -1, cv2.LINE_AA)


# ---------------------------------------------------------------------------------------------
# Tracklet plans and rendering
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackletPlan:
    """One tracklet to render: where it goes and how its frames are drawn."""

    split: str  # "train" | "test"
    pid: int  # MARS pid: >0 real, 0 distractor, -1 junk
    camid: int
    number: int  # the T<4 digits> counter within (folder, camera)
    n_frames: int
    kind: str  # "person" | "junk_background" | "junk_fragment"
    family: int  # whose appearance: real id / distractor / passer-by
    person: int  # index within the family (the pid for real ids)
    twin_of: int | None
    key: int  # unique index of this tracklet: its RNG stream

    @property
    def folder(self) -> str:
        return mars_folder(self.pid)

    def frame_name(self, f: int) -> str:
        """MARS frame name, ``f`` 1-based."""
        return f"{self.folder}C{self.camid}T{self.number:04d}F{f:03d}.jpg"


def mars_folder(pid: int) -> str:
    """The MARS folder / name prefix of a pid: ``0001``..``9999``, ``0000`` distractor, ``00-1`` junk."""
    if pid == -1:
        return "00-1"
    if not 0 <= pid <= 9999:
        raise ValueError(f"MARS pids are -1 or 0..9999, got {pid}")
    return f"{pid:04d}"


def split_pids(params: SyntheticMarsParams) -> tuple[list[int], list[int]]:
    """Disjoint train / test pids drawn from 1..ids_train+ids_test (shuffled, so a pid says nothing
    about its split, as in MARS)."""
    pids = np.arange(1, params.ids_train + params.ids_test + 1)
    _rng(params.seed, _S_SPLIT).shuffle(pids)
    return sorted(int(p) for p in pids[: params.ids_train]), sorted(int(p) for p in pids[params.ids_train :])


def _twins(params: SyntheticMarsParams, pids: list[int], tag: int) -> dict[int, int]:
    """Pair a ``twin_fraction`` of the identities of one split with another of the same split."""
    rng = _rng(params.seed, _S_SPLIT, tag)
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
            rng = _rng(params.seed, _S_PLAN, pid)
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
                    plans.append(TrackletPlan(split, pid, cam, t, n_frames, "person", _K_ID, pid, twins.get(pid), key))
    rng = _rng(params.seed, _S_PLAN, 0)
    counters: dict[tuple[int, int], int] = {}
    extra = [(0, "person", _K_DISTRACTOR)] * params.n_distractors + [(-1, "junk", _K_PASSER)] * params.n_junk
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
        second=person_spec(seed, _K_PASSER, 100000 + key),
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
            cv2.rectangle(img, _pt(ox - pw / 2, 0), _pt(ox + pw / 2, ch), colour, -1, cv2.LINE_AA)
            cv2.line(img, _pt(ox - pw / 4, 0), _pt(ox - pw / 4, ch), tuple(min(255, c + 50) for c in colour), max(1, int(pw / 6)), cv2.LINE_AA)
        else:
            y = ch * 0.58
            cv2.rectangle(img, _pt(-1, y), _pt(cw + 1, ch + 1), colour, -1, cv2.LINE_AA)
            cv2.line(img, _pt(-1, y), _pt(cw + 1, y), tuple(max(0, c - 40) for c in colour), 3, cv2.LINE_AA)
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
        cv2.line(kernel, _pt(k / 2 - k / 2 * math.cos(angle), k / 2 - k / 2 * math.sin(angle)),
                 _pt(k / 2 + k / 2 * math.cos(angle), k / 2 + k / 2 * math.sin(angle)), 1.0, 1)
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
    rng = _rng(params.seed, _S_RENDER, plan.key)
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


def _render_and_write(args: tuple[SyntheticMarsParams, list[TrackletPlan], str]) -> list[tuple[str, str, str]]:
    """Worker: render tracklets and write their JPEGs. Returns (name, view, adverse) per frame."""
    params, plans, out = args
    cv2.setNumThreads(1)  # the pool provides the parallelism
    rows: list[tuple[str, str, str]] = []
    for plan in plans:
        folder = Path(out) / f"bbox_{plan.split}" / plan.folder
        folder.mkdir(parents=True, exist_ok=True)
        frames, labels, view = render_tracklet(params, plan)
        for f, (frame, label) in enumerate(zip(frames, labels), start=1):
            name = plan.frame_name(f)
            path = folder / name
            ok = cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
            if not ok:
                raise OSError(f"could not write frame {path}")
            rows.append((name, view, label or "none"))
    return rows


# ---------------------------------------------------------------------------------------------
# Index files
# ---------------------------------------------------------------------------------------------
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
    rng = _rng(seed, _S_PLAN, 1)
    groups: dict[tuple[int, int], list[int]] = {}
    for row, (_, _, pid, cam) in enumerate(test_table.tolist()):
        if pid > 0:
            groups.setdefault((pid, cam), []).append(row)
    cams_of: dict[int, set[int]] = {}
    for pid, cam in groups:
        cams_of.setdefault(pid, set()).add(cam)
    picks = [rows[int(rng.integers(len(rows)))] + 1 for (pid, cam), rows in sorted(groups.items()) if len(cams_of[pid]) >= 2]
    return np.asarray(sorted(picks), np.int64)


_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: reid.data.synthetic"


def _save_mat(path: Path, name: str, array: np.ndarray) -> None:
    """``scipy.io.savemat`` (MATLAB 5 format, as the official files) with a fixed header text:
    scipy stamps the creation time into the 116-byte header, which would break byte-identity."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, {name: array}, do_compression=False, oned_as="row")
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b" ")
    path.write_bytes(bytes(data))


def _query_dtype(n_rows: int) -> type:
    return np.uint16 if n_rows <= np.iinfo(np.uint16).max else np.uint32


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
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
    For a cached, atomic generation use :func:`ensure_synthetic_mars`.
    """
    params = SyntheticMarsParams.create(ids_train=ids_train, ids_test=ids_test, cameras=cameras, seed=seed,
                                        height=height, width=width, tiny=tiny, **extra)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: output folder is not empty; use ensure_synthetic_mars(..., force=True) "
                              "or tools/make_synthetic_mars.py --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_dataset(params)
    for split in ("train", "test"):
        (out / f"bbox_{split}").mkdir(exist_ok=True)
    info = out / "info"
    info.mkdir(exist_ok=True)

    # chunks of ~whole identity folders; the order of results does not matter (names are sorted)
    n_workers = workers if workers is not None else (1 if tiny else 2)
    chunk = max(1, len(plans) // (8 * max(1, n_workers)))
    jobs = [(params, plans[i : i + chunk], str(out)) for i in range(0, len(plans), chunk)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(p.n_frames for p in plans), unit="frame", desc="synthetic MARS", leave=False)
    annotations: list[tuple[str, str, str]] = []
    if n_workers <= 1:
        results: Iterable[list] = map(_render_and_write, jobs)
    else:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_render_and_write, jobs)
    try:
        for rows in results:
            annotations.extend(rows)
            if bar is not None:
                bar.update(len(rows))
    finally:
        if n_workers > 1:
            pool.shutdown()
        if bar is not None:
            bar.close()

    counts: dict[str, Any] = {}
    for split, var in (("train", "track_train_info"), ("test", "track_test_info")):
        names, table = build_index(plans, split)
        (info / f"{split}_name.txt").write_text("".join(n + "\n" for n in names))
        _save_mat(info / f"tracks_{split}_info.mat", var, table.astype(np.int32))
        counts[f"{split}_tracklets"] = int(len(table))
        counts[f"{split}_frames"] = len(names)
        if split == "test":
            queries = choose_queries(table, params.seed)
            _save_mat(info / "query_IDX.mat", "query_IDX", queries.astype(_query_dtype(len(table))).reshape(1, -1))
            counts["queries"] = int(len(queries))
            counts["junk_tracklets"] = int((table[:, 2] == -1).sum())
            counts["distractor_tracklets"] = int((table[:, 2] == 0).sum())
    train_pids, test_pids = split_pids(params)
    counts["train_ids"], counts["test_ids"] = len(train_pids), len(test_pids)
    adverse = [a for _, _, a in annotations]
    counts["adverse_frames"] = {k: adverse.count(k) for k in ADVERSE_KINDS}

    split_of = {p.frame_name(1)[:-8]: p.split for p in plans}  # "<id4>C<c>T<t4>" -> split
    with open(out / ANNOTATIONS_NAME, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "split", "pid", "camid", "view", "adverse"])
        for name, view, adv in sorted(annotations, key=lambda r: (split_of[r[0][:-8]], r[0])):
            pid = -1 if name.startswith("00-1") else int(name[:4])
            w.writerow([name, split_of[name[:-8]], pid, int(name[5]), view, adv])
    stamp = {"generator": "reid.data.synthetic", "version": GENERATOR_VERSION, "params": params.to_json(), "counts": counts}
    (out / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
    return out


def default_dataset_dir() -> Path:
    """``$REID_DATASETS/synthetic_mars`` if set; else ``<repo root>/datasets/synthetic_mars`` when the
    package runs from a checkout (the folder holding ``pyproject.toml``); else
    ``./datasets/synthetic_mars``."""
    env = os.environ.get("REID_DATASETS")
    if env:
        return Path(env).expanduser() / DEFAULT_DIRNAME
    repo_root = Path(__file__).resolve().parents[2]
    if (repo_root / "pyproject.toml").is_file() and (repo_root / "reid").is_dir():
        return repo_root / "datasets" / DEFAULT_DIRNAME
    return Path.cwd() / "datasets" / DEFAULT_DIRNAME


def read_stamp(root: str | os.PathLike) -> dict | None:
    """The ``SYNTHETIC.json`` stamp of a generated dataset, or None when absent or unreadable."""
    try:
        return json.loads((Path(root) / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def _stamp_matches(root: Path, params: SyntheticMarsParams) -> bool:
    stamp = read_stamp(root)
    return bool(stamp) and stamp.get("version") == GENERATOR_VERSION and stamp.get("params") == params.to_json()


def ensure_synthetic_mars(out: str | os.PathLike | None = None, force: bool = False, **params: Any) -> Path:
    """Return a generated synthetic MARS folder, generating it only when needed.

    Reuses ``out`` (default :func:`default_dataset_dir`) when its ``SYNTHETIC.json`` stamp matches
    the generator version and ``params``; otherwise generates into a temporary sibling folder and
    moves it into place with ``os.replace``, so an interrupted run never leaves a folder that looks
    complete. A stale or unstamped folder is moved aside first and deleted after the swap.
    Parameters are those of :func:`make_synthetic_mars`.
    """
    workers = params.pop("workers", None)
    progress = params.pop("progress", True)
    spec = SyntheticMarsParams.create(**params)
    out = Path(out) if out is not None else default_dataset_dir()
    if not force and _stamp_matches(out, spec):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    print(f"[reid] generating synthetic MARS dataset into {out} (seed={spec.seed}, "
          f"{spec.ids_train}+{spec.ids_test} ids, {spec.cameras} cameras)", flush=True)
    try:
        fields = {k: v for k, v in spec.to_json().items()}
        fields["adverse_rates"] = spec.adverse_rates
        make_synthetic_mars(tmp / "data", workers=workers, progress=progress, **fields)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        try:
            os.replace(tmp / "data", out)
        except OSError:
            # someone else put a dataset in place meanwhile: keep theirs if it matches
            if not _stamp_matches(out, spec):
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------
# Preview (contact sheet)
# ---------------------------------------------------------------------------------------------
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
        cv2.putText(sheet, f"{pid:04d}", (2, y + H // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        if twin is not None:
            cv2.putText(sheet, f"~{twin:04d}", (2, y + H // 2 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (120, 0, 0), 1, cv2.LINE_AA)
        first = by_pid[pid][min(by_pid[pid])]
        for j, col in enumerate(cols):
            if j < params.cameras:
                plan = by_pid[pid].get(j + 1)
                if plan is None:
                    tile = np.full((params.height, params.width, 3), 200, np.uint8)
                else:
                    frames, _, _ = render_tracklet(params, _replace_frames(plan, 1), forced="")
                    tile = frames[0]
            else:
                frames, _, _ = render_tracklet(params, _replace_frames(first, 2), forced=col)
                tile = frames[-1]
            x = 46 + j * (W + 4)
            sheet[y : y + H, x : x + W] = cv2.resize(tile, (W, H), interpolation=cv2.INTER_NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write contact sheet {path}")
    return path


def _replace_frames(plan: TrackletPlan, n: int) -> TrackletPlan:
    return replace(plan, n_frames=n)


__all__ = [
    "ADVERSE_KINDS",
    "GENERATOR_VERSION",
    "SyntheticMarsParams",
    "PersonSpec",
    "CameraSpec",
    "TrackletPlan",
    "person_spec",
    "camera_spec",
    "camera_background",
    "draw_person",
    "plan_dataset",
    "split_pids",
    "build_index",
    "choose_queries",
    "mars_folder",
    "make_synthetic_mars",
    "ensure_synthetic_mars",
    "default_dataset_dir",
    "read_stamp",
    "make_contact_sheet",
]
