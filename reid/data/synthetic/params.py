"""Parameters of one synthetic MARS dataset (:class:`SyntheticMarsParams`), stored in its
``SYNTHETIC.json`` stamp together with :data:`GENERATOR_VERSION`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Bump when the rendering or layout changes: cached datasets with another version are regenerated.
GENERATOR_VERSION = 1

ADVERSE_KINDS = ("blur", "occlusion", "truncation", "second_person", "background")
VIEWS = ("front", "back", "left", "right")


@dataclass(frozen=True)
class SyntheticMarsParams:
    """All parameters of one synthetic dataset (stored in ``SYNTHETIC.json``).

    Defaults give ~60 + 60 identities x 4 cameras, ~10k frames of 128x64, generated in well under a
    minute on two cores. ``tiny=True`` shrinks tracklets to 3-5 frames, no optional extra
    tracklets, for unit tests (test ids still get two tracklets in two cameras, see :func:`.planning.plan_dataset`).
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



__all__ = ["GENERATOR_VERSION", "ADVERSE_KINDS", "VIEWS", "SyntheticMarsParams"]
