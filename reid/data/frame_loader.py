"""Frame decoding shared by the datasets (:mod:`reid.data.datasets`, :mod:`reid.data.frame_chunks`):
the tracklet checks and the corrupt-frame policy applied while loading.

``FrameLoader.frames(tracklet, indices)`` decodes the frames of one tracklet, each index once
(padded clips repeat indices). Under ``corrupt="error"`` an unreadable frame raises
:class:`reid.data.frames.FrameReadError` naming the file and the tracklet; under ``"skip"`` the
nearest decodable frame of the same tracklet is used instead, a warning is given once per file,
and substitutions are counted in ``skip_counts`` (shared memory, one slot per DataLoader worker).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from reid.data.frames import CORRUPT_POLICIES, FrameReadError
from reid.data.tracklet import DatasetError, Tracklet

# per-worker counters of substituted frames; worker w writes slot (w + 1) % _SLOTS, main process 0
_SLOTS = 64


def worker_slot() -> int:
    info = get_worker_info()
    return 0 if info is None else (info.id + 1) % _SLOTS


def check_tracklets(tracklets: Sequence[Tracklet], who: str, need_labels: bool) -> list[Tracklet]:
    tracklets = list(tracklets)
    if not tracklets:
        raise DatasetError(f"{who}: no tracklets given")
    for pos, t in enumerate(tracklets):
        if len(t.frames) == 0:
            raise DatasetError(
                f"{who}: tracklet at position {pos} (row {t.row}, pid {t.pid}, tracklet {t.tracklet_id}) has no frames"
            )
        if need_labels and t.label < 0:
            raise DatasetError(
                f"{who}: tracklet at position {pos} (row {t.row}, pid {t.pid}) has label {t.label}; "
                "training tracklets need labels from reid.data.tracklet.assign_train_labels"
            )
    return tracklets


class FrameLoader:
    """Decodes the frames of one tracklet under the corrupt-frame policy."""

    def __init__(self, corrupt: str, reader: Callable[[str], np.ndarray]) -> None:
        self.policy = CORRUPT_POLICIES.get(corrupt, key="corrupt")
        self.reader = reader
        self.skip_counts = torch.zeros(_SLOTS, dtype=torch.int64).share_memory_()
        self._known_bad: set[str] = set()  # per process: do not retry a file that failed

    def _read(self, t: Tracklet, j: int) -> np.ndarray:
        path = t.frames[j]
        if path in self._known_bad:
            raise FrameReadError(path, "failed earlier in this process")
        try:
            return self.reader(path)
        except FrameReadError as exc:
            if not self.policy.drop_bad:
                raise FrameReadError(
                    path,
                    f"{exc.reason} (frame {j} of tracklet row {t.row}, pid {t.pid}, cam {t.camid}, "
                    f"tracklet {t.tracklet_id}; fix or remove the file, or load with corrupt='skip')",
                ) from None
            self._known_bad.add(path)
            warnings.warn(f"corrupt='skip': {exc}; using another frame of tracklet row {t.row}", stacklevel=3)
            raise

    def frames(self, t: Tracklet, indices: np.ndarray) -> list[np.ndarray]:
        cache: dict[int, np.ndarray] = {}  # padded clips repeat indices: decode each frame once
        out = []
        for j in indices.tolist():
            if j not in cache:
                cache[j] = self._frame_or_substitute(t, j)
            out.append(cache[j])
        return out

    def _frame_or_substitute(self, t: Tracklet, j: int) -> np.ndarray:
        try:
            return self._read(t, j)
        except FrameReadError:
            if not self.policy.drop_bad:
                raise
        # nearest other frames first (j-1, j+1, j-2, ...): the most similar content
        n = len(t.frames)
        for alt in sorted(range(n), key=lambda a: (abs(a - j), a)):
            if alt == j:
                continue
            try:
                img = self._read(t, alt)
            except FrameReadError:
                continue
            self.skip_counts[worker_slot()] += 1
            return img
        raise FrameReadError(
            t.frames[j], f"no frame of tracklet row {t.row} (pid {t.pid}, {n} frames) could be decoded"
        )


__all__ = ["FrameLoader", "check_tracklets", "worker_slot"]
