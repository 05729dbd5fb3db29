"""The record of an injected noise: :class:`NoiseManifest` (every relabelled tracklet and every
substituted frame, enough to audit the noise and to re-apply it exactly with
:func:`reid.data.noise.apply_manifest`), saved as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reid.atomic import atomic_write_json
from reid.data.tracklet import DatasetError, Tracklet

MANIFEST_VERSION = 1


@dataclass
class LabelChange:
    index: int  # position in the training list (= batch["index"] in the trainer)
    row: int  # Tracklet.row: row in the dataset's source table
    kind: str
    true_label: int
    noisy_label: int
    true_pid: int
    noisy_pid: int
    swapped_with: int | None = None  # tracklet_swap: training-list index of the partner


@dataclass
class FrameChange:
    index: int
    row: int
    position: int  # frame position inside the tracklet
    original: str
    replacement: str
    source: str  # "other_identity" | "background"
    donor_index: int | None  # training-list index of the donor tracklet (other_identity)
    donor_pid: int | None


@dataclass
class NoiseManifest:
    """Every change :func:`apply_noise` made, enough to audit it and to re-apply it exactly."""

    config: dict
    num_classes: int
    num_train: int
    train_fingerprint: str
    label_changes: list[LabelChange] = field(default_factory=list)
    frame_changes: list[FrameChange] = field(default_factory=list)
    pairflip_partner: dict[int, int] | None = None
    background_dir: str | None = None
    version: int = MANIFEST_VERSION

    # -- views
    @property
    def noisy_indices(self) -> np.ndarray:
        """Training-list indices of relabelled tracklets (the "noisy subset")."""
        return np.asarray(sorted(c.index for c in self.label_changes), dtype=np.int64)

    def noisy_mask(self) -> np.ndarray:
        mask = np.zeros(self.num_train, dtype=bool)
        mask[self.noisy_indices] = True
        return mask

    def summary(self) -> dict:
        per_kind: dict[str, int] = {}
        for c in self.label_changes:
            per_kind[c.kind] = per_kind.get(c.kind, 0) + 1
        return {
            "num_train": self.num_train,
            "relabelled": len(self.label_changes),
            "relabelled_fraction": len(self.label_changes) / max(self.num_train, 1),
            "relabelled_per_kind": per_kind,
            "outlier_frames": len(self.frame_changes),
            "tracklets_with_outlier_frames": len({c.index for c in self.frame_changes}),
        }

    # -- persistence
    def to_dict(self) -> dict:
        d = asdict(self)
        if self.pairflip_partner is not None:
            d["pairflip_partner"] = {str(k): v for k, v in self.pairflip_partner.items()}
        d["summary"] = self.summary()
        return d

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON atomically (:mod:`reid.atomic`)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NoiseManifest":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise DatasetError(f"{path}: noise manifest not found") from None
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: not valid JSON ({e})") from None
        required = ("config", "num_classes", "num_train", "train_fingerprint", "label_changes", "frame_changes")
        missing = [k for k in required if k not in d]
        if missing:
            raise DatasetError(f"{path}: noise manifest lacks key(s) {missing}")
        if d.get("version", 1) != MANIFEST_VERSION:
            raise DatasetError(f"{path}: manifest version {d.get('version')} != supported {MANIFEST_VERSION}")
        try:
            label_changes = [LabelChange(**c) for c in d["label_changes"]]
            frame_changes = [FrameChange(**c) for c in d["frame_changes"]]
        except TypeError as e:
            raise DatasetError(f"{path}: malformed change entry ({e})") from None
        partner = d.get("pairflip_partner")
        return cls(
            config=d["config"],
            num_classes=int(d["num_classes"]),
            num_train=int(d["num_train"]),
            train_fingerprint=d["train_fingerprint"],
            label_changes=label_changes,
            frame_changes=frame_changes,
            pairflip_partner={int(k): int(v) for k, v in partner.items()} if partner else None,
            background_dir=d.get("background_dir"),
        )


def train_fingerprint(train: list[Tracklet]) -> str:
    """SHA-256 over (row, pid, label, frames) of the clean split: a manifest only re-applies onto
    the exact split it was made on."""
    h = hashlib.sha256()
    for t in train:
        h.update(f"{t.row}|{t.pid}|{t.label}|{len(t.frames)}|".encode())
        h.update("\x00".join(t.frames).encode())
    return h.hexdigest()



__all__ = ["MANIFEST_VERSION", "FrameChange", "LabelChange", "NoiseManifest", "train_fingerprint"]
