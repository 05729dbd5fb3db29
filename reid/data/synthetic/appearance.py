"""Who and what is seen: people (:class:`PersonSpec`, clothing palettes, twins) and cameras
(:class:`CameraSpec`: scene kind, photometry, scale, viewpoint preference).

A spec is a pure function of ``(seed, family, index)`` or ``(seed, camid)`` through its own
random stream (:mod:`.streams`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from reid.data.synthetic.streams import CAMERA_STREAM, IDENTITY_STREAM, rng_stream

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
    spec = _random_person(rng_stream(seed, IDENTITY_STREAM, family, index))
    if twin_of is None:
        return spec
    base = person_spec(seed, family, twin_of)
    rng = rng_stream(seed, IDENTITY_STREAM, family, index, 1)
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
    """Camera ``camid``: its scene kind, gain, colour cast, gamma, noise, optics, person scale and
    view probabilities (a Dirichlet preference mixed 55/45 with uniform)."""
    rng = rng_stream(seed, CAMERA_STREAM, camid)
    # cameras cycle through the scene kinds so that any 4 cameras see 4 different scenes
    kind = BACKGROUND_KINDS[(camid - 1 + int(rng_stream(seed, CAMERA_STREAM, 0).integers(4))) % 4]
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



__all__ = [
    "CLOTHING_PALETTE", "SKIN_TONES", "HAIR_COLOURS", "UPPER_PATTERNS", "LOWER_TYPES", "BAGS",
    "BACKGROUND_KINDS", "PersonSpec", "CameraSpec", "person_spec", "camera_spec",
]
