"""Configuration of noisy-identity injection: the noise kinds (:data:`NOISE_KINDS`) and the
pydantic :class:`NoiseConfig` / :class:`NoiseItem` the trainer config embeds as ``noise:``.

What each kind does, and how items combine, is the contract documented in
:mod:`reid.data.noise` (which applies it). Adding a kind is one ``NOISE_KINDS.register`` line
here plus its branch in :func:`reid.data.noise.inject_label_noise` (label kinds) or
:func:`reid.data.noise.apply_noise` (frame kinds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reid.registry import Registry

# kind -> the level it acts on: "label" (a tracklet's training label) or "frame" (its frames)
NOISE_KINDS: Registry[str] = Registry("noise kind")
NOISE_KINDS.register("symmetric", "label")
NOISE_KINDS.register("pairflip", "label")
NOISE_KINDS.register("tracklet_swap", "label")
NOISE_KINDS.register("outlier_frames", "frame")

LABEL_NOISE_KINDS = tuple(kind for kind, level in NOISE_KINDS.items() if level == "label")


class NoiseItem(BaseModel):
    """One noise injection: ``kind`` (a name in :data:`NOISE_KINDS`) at ``rate`` (a fraction in [0, 1])."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    rate: float = Field(ge=0.0, le=1.0)
    # only for outlier_frames: where the replacement frames come from
    source: Literal["other_identity", "background"] | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        return NOISE_KINDS.check(kind)

    @model_validator(mode="after")
    def _check_source(self) -> "NoiseItem":
        if self.source is not None and self.kind != "outlier_frames":
            raise ValueError(f"noise item kind={self.kind!r}: 'source' only applies to outlier_frames")
        if self.kind == "outlier_frames" and self.rate >= 1.0:
            raise ValueError("noise item outlier_frames: rate must be < 1 (some own frames must remain)")
        return self


class NoiseConfig(BaseModel):
    """Noise to inject into the training split (embedded in the trainer config as ``noise:``).

    Example (YAML)::

        noise:
          items:
            - {kind: symmetric, rate: 0.4}
            - {kind: outlier_frames, rate: 0.1, source: other_identity}
          seed: 0
          manifest: null     # or a saved noise_manifest.json to re-apply exactly
    """

    model_config = ConfigDict(extra="forbid")

    items: list[NoiseItem] = Field(default_factory=list)
    seed: int = 0
    manifest: Path | None = None

    @model_validator(mode="after")
    def _check_items(self) -> "NoiseConfig":
        kinds = [it.kind for it in self.items]
        dup = sorted({k for k in kinds if kinds.count(k) > 1})
        if dup:
            raise ValueError(f"noise.items: kind(s) {dup} listed more than once; give each kind once")
        label_total = sum(it.rate for it in self.items if it.kind in LABEL_NOISE_KINDS)
        if label_total > 1.0 + 1e-9:
            raise ValueError(
                f"noise.items: label-noise rates sum to {label_total:.3f} > 1; a tracklet is "
                "relabelled at most once, so they cannot exceed the whole split"
            )
        return self


__all__ = ["LABEL_NOISE_KINDS", "NOISE_KINDS", "NoiseConfig", "NoiseItem"]
