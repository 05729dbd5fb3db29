"""Tracklet features for retrieval: every frame through the backbone, one aggregation per tracklet.

:func:`extract_features` computes the retrieval feature (``bn_feat`` by default) of each tracklet
from *all* its frames (or ``max_frames`` evenly spaced ones):

1. frames are read and transformed by :class:`reid.data.datasets.TestTrackletDataset`
   (``DataLoader`` workers overlap decoding with the forward passes);
2. frames go through ``model.encode_frames`` at most ``chunk`` at a time. Short tracklets are
   packed together into one backbone batch (many MARS tracklets have < 32 frames, and one forward
   of 32 frames costs far less than 32 forwards of one); a tracklet longer than ``chunk`` is split
   over several forwards;
3. ``model.aggregate`` pools each tracklet's frame features once (packed tracklets are padded
   into one ``[B, T_max, D]`` batch with a mask; padding never contributes).

Because the model is in eval mode (BatchNorm uses running statistics), the result does not
depend on ``chunk`` or on which tracklets are packed together (tested to 1e-5).

Rebuilding a trained model and its test data from a checkpoint is the engine's job (it knows the
run's config): :func:`reid.engine.evaluation.features_from_checkpoint`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from reid.data.tracklet import Tracklet, VideoReIDData


def _items(
    tracklets: Sequence[Tracklet], transform: Callable, num_workers: int, max_frames: int | None, corrupt: str,
    pin_memory: bool, reader: Callable[[str], np.ndarray] | None = None,
) -> Iterator[dict[str, Any]]:
    """One ``{"frames", "mask", "index", ...}`` item per tracklet, in order."""
    from reid.data.datasets import TestTrackletDataset

    mode, length = ("evenly", max_frames) if max_frames else ("all", None)
    extra = {} if reader is None else {"reader": reader}
    dataset = TestTrackletDataset(tracklets, transform, mode=mode, length=length, corrupt=corrupt, **extra)
    # batch_size=None: no collation, tracklets have different lengths
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=num_workers, pin_memory=pin_memory,
        persistent_workers=False,
    )
    yield from loader


class _Packer:
    """Packs short tracklets into shared backbone batches and aggregates them together."""

    def __init__(self, model: nn.Module, out: np.ndarray, device: torch.device, chunk: int, bn: bool,
                 autocast: Callable[[], contextlib.AbstractContextManager]) -> None:
        self.model, self.out, self.device, self.chunk, self.bn = model, out, device, chunk, bn
        self.autocast = autocast
        self.pending: list[tuple[int, torch.Tensor]] = []  # (output row, frames [T, 3, H, W])
        self.pending_frames = 0

    def add(self, row: int, frames: torch.Tensor) -> None:
        if len(frames) > self.chunk:  # long tracklet: alone, several backbone passes
            self.flush()
            self._run([(row, frames)])
            return
        if self.pending_frames + len(frames) > self.chunk:
            self.flush()
        self.pending.append((row, frames))
        self.pending_frames += len(frames)

    def flush(self) -> None:
        if self.pending:
            self._run(self.pending)
        self.pending, self.pending_frames = [], 0

    def _run(self, group: list[tuple[int, torch.Tensor]]) -> None:
        frames = torch.cat([f for _, f in group]).to(self.device, non_blocking=True)
        with self.autocast():
            feats = torch.cat([self.model.encode_frames(part) for part in frames.split(self.chunk)])
            lengths = [len(f) for _, f in group]
            per_tracklet = feats.split(lengths)
            padded = nn.utils.rnn.pad_sequence(list(per_tracklet), batch_first=True)  # [B, T_max, D]
            mask = torch.arange(padded.shape[1], device=padded.device)[None, :] < torch.tensor(
                lengths, device=padded.device
            )[:, None]
            out = self.model.aggregate(padded, mask)
        vectors = (out["bn_feat"] if self.bn else out["feat"]).float().cpu().numpy()
        self.out[[row for row, _ in group]] = vectors


def extract_features(
    model: nn.Module,
    tracklets: Sequence[Tracklet],
    transform: Callable,
    device: str | torch.device = "cpu",
    chunk: int = 32,
    num_workers: int = 0,
    progress: bool = True,
    *,
    max_frames: int | None = None,
    bn: bool = True,
    amp: bool = False,
    corrupt: str = "error",
    reader: Callable[[str], np.ndarray] | None = None,
) -> np.ndarray:
    """Retrieval features ``[N, D]`` float32 of ``tracklets`` (row i = tracklet i).

    Args:
        model: a :class:`reid.models.VideoReIDModel` (anything with ``encode_frames``,
            ``aggregate`` and ``feat_dim``). Moved to ``device`` and run in eval mode; its previous
            train/eval mode is restored afterwards.
        tracklets: the tracklets, in output order.
        transform: test clip transform, ``build_clip_transform(train=False, height, width)``.
        device: where the forward passes run.
        chunk: frames per backbone forward; also the frame budget for packing short tracklets.
        num_workers: DataLoader worker processes decoding frames.
        progress: tqdm bar over tracklets.
        max_frames: use at most this many evenly spaced frames per tracklet (None = all frames).
        bn: ``bn_feat`` (after BNNeck, the retrieval feature) or, if False, the pre-BN ``feat``.
        amp: run the forward passes under autocast (bfloat16 on CUDA, for speed on GPU).
        corrupt: unreadable-frame policy of the dataset (``"error"`` | ``"skip"``).
        reader: ``frame name -> HxWx3 uint8 RGB`` (default: decode the file); lets in-memory
            frames go through the same path (:class:`reid.engine.extractor.FeatureExtractor`).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    device = torch.device(device)
    feat_dim = int(model.feat_dim)
    out = np.zeros((len(tracklets), feat_dim), dtype=np.float32)
    if not tracklets:
        return out
    if amp and device.type == "cuda":
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    was_training = model.training
    model.to(device).eval()
    packer = _Packer(model, out, device, chunk, bn, autocast)
    bar = tqdm(total=len(tracklets), desc="extract features", unit="tracklet", disable=not progress, leave=False)
    try:
        with torch.inference_mode():
            items = _items(tracklets, transform, num_workers, max_frames, corrupt, device.type == "cuda", reader)
            for item in items:
                frames, mask = item["frames"], item.get("mask")
                if mask is not None and not bool(mask.all()):
                    frames = frames[mask]  # evenly-spaced mode pads short tracklets: drop the copies
                packer.add(int(item["index"]), frames)
                bar.update(1)
            packer.flush()
    finally:
        bar.close()
        model.train(was_training)
    return out


def extract_query_gallery(model: nn.Module, data: VideoReIDData, transform, **kwargs: Any
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery features of ``data``; each distinct tracklet is extracted once (under the
    official protocol every query is also a gallery entry). ``kwargs`` go to
    :func:`extract_features`; ``corrupt`` defaults to the policy the data was loaded with
    (``data.corrupt``), so frames are read as the reader read them."""
    kwargs.setdefault("corrupt", data.corrupt)
    unique: dict[tuple[str, ...], int] = {}
    tracklets: list[Tracklet] = []
    for t in [*data.query, *data.gallery]:
        if t.frames not in unique:
            unique[t.frames] = len(tracklets)
            tracklets.append(t)
    feats = np.asarray(extract_features(model, tracklets, transform, **kwargs), dtype=np.float32)
    return feats[[unique[t.frames] for t in data.query]], feats[[unique[t.frames] for t in data.gallery]]


__all__ = ["extract_features", "extract_query_gallery"]
