"""Test frames of many tracklets as one stream of fixed-size chunks (feature extraction's input).

The frames extraction uses -- every frame of each tracklet, or ``max_frames`` evenly spaced ones
(:class:`reid.data.sampling.TestClipSampler`, padding copies dropped) -- are laid end to end in
tracklet order, and item ``c`` of :class:`FrameChunks` is frames ``[c * chunk, (c + 1) * chunk)``
of that stream. So every backbone batch is full (except the last), whatever the tracklet lengths:
short tracklets share a batch, long ones span several, and a DataLoader's workers decode whole
batches in parallel. :meth:`FrameChunks.completed_by` tells which tracklets have all their frames
once chunk ``c`` has been seen (the stream is in order), so they can be aggregated then.

Frames are uint8 ``[n, 3, H, W]`` (a view of an ``[n, H, W, 3]`` buffer, in shared memory inside a
worker) when the transform has a uint8 variant (:mod:`reid.data.uint8_frames`; the model
normalises them on its device), else the transform's float output. The test transform is
frame-wise (resize + normalise), so cutting a tracklet between chunks changes nothing; a custom
transform is applied to each tracklet's part of a chunk.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from reid.data.frame_loader import FrameLoader, check_tracklets
from reid.data.frames import read_frame
from reid.data.sampling import TestClipSampler
from reid.data.tracklet import Tracklet
from reid.data.uint8_frames import as_chw, new_frame_buffer, resolve_uint8


class FrameChunks(Dataset):
    """Item ``c``: ``{"frames": [n, 3, H, W], "chunk": c, "start": c * chunk}`` with ``n = chunk``
    (fewer in the last item).

    Args:
        tracklets: the tracklets, in stream (and output) order.
        transform: the test clip transform (``build_clip_transform(train=False, ...)``).
        chunk: frames per item (the backbone batch).
        max_frames: at most this many evenly spaced frames per tracklet (None = all frames).
        corrupt: corrupt-frame policy name (:data:`reid.data.frames.CORRUPT_POLICIES`).
        reader: ``frame name -> HxWx3 uint8 RGB``.
        uint8: as in :class:`reid.data.datasets.TestTrackletDataset` (None = when possible).

    Attributes:
        lengths: ``[N]`` frames each tracklet contributes; ``offsets``: ``[N + 1]`` their starts
            in the stream (``offsets[-1]`` = total frames).
    """

    def __init__(self, tracklets: Sequence[Tracklet], transform: Callable, chunk: int,
                 max_frames: int | None = None, corrupt: str = "error",
                 reader: Callable[[str], np.ndarray] = read_frame, uint8: bool | None = None) -> None:
        if chunk < 1:
            raise ValueError(f"FrameChunks: chunk must be >= 1, got {chunk}")
        self.tracklets = check_tracklets(tracklets, "FrameChunks", need_labels=False)
        self.transform, self.chunk = transform, int(chunk)
        self.uint8_transform = resolve_uint8(transform, uint8, "FrameChunks")
        sampler = TestClipSampler("evenly", max_frames) if max_frames else TestClipSampler("all")
        self.selected: list[np.ndarray] = []
        for t in self.tracklets:
            idx, mask = sampler.sample(len(t.frames))
            self.selected.append(idx[mask])  # evenly-spaced mode pads short tracklets: drop the copies
        self.lengths = np.array([len(s) for s in self.selected], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self._loader = FrameLoader(corrupt, reader)

    @property
    def total_frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def skipped_frames(self) -> int:
        return int(self._loader.skip_counts.sum())

    def __len__(self) -> int:
        return -(-self.total_frames // self.chunk)

    def span(self, c: int) -> tuple[int, int]:
        """Stream positions ``[start, stop)`` of chunk ``c``."""
        return c * self.chunk, min(self.total_frames, (c + 1) * self.chunk)

    def completed_by(self, c: int) -> int:
        """How many tracklets (from the first) have all their frames in chunks ``0..c``."""
        return int(np.searchsorted(self.offsets[1:], self.span(c)[1], side="right"))

    def parts(self, c: int) -> list[tuple[int, np.ndarray]]:
        """``(tracklet position, frame indices)`` of each tracklet's part of chunk ``c``, in order."""
        start, stop = self.span(c)
        r = int(np.searchsorted(self.offsets, start, side="right")) - 1
        out = []
        while r < len(self.tracklets) and self.offsets[r] < stop:
            lo, hi = max(start, self.offsets[r]) - self.offsets[r], min(stop, self.offsets[r + 1]) - self.offsets[r]
            out.append((r, self.selected[r][lo:hi]))
            r += 1
        return out

    def __getitem__(self, c: int) -> dict[str, Any]:
        c = int(c)
        if not 0 <= c < len(self):
            raise IndexError(f"FrameChunks: chunk {c} out of range [0, {len(self)})")
        start, stop = self.span(c)
        parts = [(self._loader.frames(self.tracklets[r], idx), r) for r, idx in self.parts(c)]
        u8 = self.uint8_transform
        if u8 is None:
            frames = torch.cat([self.transform(f) for f, _ in parts])
        else:
            buf = new_frame_buffer((stop - start, u8.height, u8.width, 3), shared=get_worker_info() is not None)
            pos = 0
            for f, _ in parts:
                u8.fill(f, buf[pos: pos + len(f)].numpy())
                pos += len(f)
            frames = as_chw(buf)
        return {"frames": frames, "chunk": c, "start": start}


__all__ = ["FrameChunks"]
