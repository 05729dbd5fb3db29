"""Tracklet features for retrieval: every frame through the backbone, one aggregation per tracklet.

:func:`extract_features` computes the retrieval feature (``bn_feat`` by default) of each tracklet
from *all* its frames (or ``max_frames`` evenly spaced ones):

1. the frames of all tracklets form one stream, cut into backbone batches of exactly ``chunk``
   frames (:class:`reid.data.frame_chunks.FrameChunks`): a batch is filled across tracklets --
   short tracklets share one, a long one spans several -- so no forward runs half empty. The
   chunks are decoded by ``DataLoader`` workers (overlapping the forward passes), as uint8 pixels
   (pinned on CUDA), and normalised on the device by the model's first op
   (``VideoReIDModel.encode_frames``);
2. the frame features stay on the device; once the chunk holding a tracklet's last frame has
   gone through, ``model.aggregate`` pools it -- the tracklets completed by one chunk together,
   padded into one ``[B, T_max, D]`` batch with a mask (padding never contributes), a tracklet
   longer than ``chunk`` on its own;
3. features are written into one device matrix, copied to the host once at the end: the loop
   never waits for the device.

Because the model is in eval mode (BatchNorm uses running statistics), the result does not
depend on ``chunk`` or on which tracklets share a batch, to float rounding (tested to 1e-5).

Rebuilding a trained model and its test data from a checkpoint is the engine's job (it knows the
run's config): :func:`reid.engine.evaluation.features_from_checkpoint`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from reid.data.tracklet import Tracklet, VideoReIDData


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A small host array on ``device`` without waiting for it (pinned, non-blocking on CUDA)."""
    t = torch.from_numpy(array)
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


class _Pooler:
    """Frame features of the stream, chunk after chunk; each tracklet is aggregated once complete.

    ``parts`` hold the features of the stream from position ``base`` on: only what the tracklets
    not yet aggregated need (earlier chunks are dropped)."""

    def __init__(self, model: nn.Module, chunks, out: torch.Tensor, bn: bool, bar) -> None:
        self.model, self.chunks, self.out, self.bn, self.bar = model, chunks, out, bn, bar
        self.parts: list[torch.Tensor] = []
        self.base = 0  # stream position of parts[0][0]
        self.done = 0  # tracklets aggregated so far (a prefix of the stream)

    def add(self, c: int, feats: torch.Tensor) -> None:
        self.parts.append(feats)
        upto = self.chunks.completed_by(c)
        if upto == self.done:
            return
        flat = torch.cat(self.parts) if len(self.parts) > 1 else self.parts[0]
        a, lengths, offsets = self.done, self.chunks.lengths, self.chunks.offsets
        if lengths[a] > self.chunks.chunk:  # only the first can be long (it began in an earlier chunk)
            s = int(offsets[a]) - self.base
            self._pool(a, a + 1, flat[s: s + int(lengths[a])][None], None)
            a += 1
        if a < upto:
            lens = lengths[a:upto]
            t_max = int(lens.max())
            steps = np.arange(t_max)
            # padding positions repeat the tracklet's last frame (masked out, never read)
            idx = (offsets[a:upto] - self.base)[:, None] + np.minimum(steps[None, :], lens[:, None] - 1)
            device = flat.device
            self._pool(a, upto, flat[_to_device(idx, device)], _to_device(steps[None, :] < lens[:, None], device))
        self.done = upto
        keep = int(offsets[upto]) - self.base  # the first frame still needed, in flat
        rest = flat[keep:]
        self.parts = [rest] if len(rest) else []
        self.base += keep

    def _pool(self, a: int, b: int, frame_feats: torch.Tensor, mask: torch.Tensor | None) -> None:
        # the mask comes from known lengths >= 1: no emptiness check (it would synchronise the device)
        res = self.model.aggregate(frame_feats, mask, check_mask=False)
        self.out[a:b] = res["bn_feat"] if self.bn else res["feat"]
        self.bar.update(b - a)


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
        chunk: frames per backbone forward; each forward is filled across tracklets (module docstring).
        num_workers: DataLoader worker processes decoding frames (each decodes whole chunks).
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
    from reid.data.frame_chunks import FrameChunks

    extra = {} if reader is None else {"reader": reader}
    chunks = FrameChunks(tracklets, transform, chunk, max_frames=max_frames, corrupt=corrupt, **extra)
    # batch_size=None: each item is already one backbone batch
    loader = torch.utils.data.DataLoader(chunks, batch_size=None, shuffle=False, num_workers=num_workers,
                                         pin_memory=device.type == "cuda", persistent_workers=False)
    was_training = model.training
    model.to(device).eval()
    bar = tqdm(total=len(tracklets), desc="extract features", unit="tracklet", disable=not progress, leave=False)
    try:
        with torch.inference_mode():
            feats = torch.zeros((len(tracklets), feat_dim), dtype=torch.float32, device=device)
            pooler = _Pooler(model, chunks, feats, bn, bar)
            for item in loader:
                frames = item["frames"].to(device, non_blocking=True)
                with autocast():
                    pooler.add(int(item["chunk"]), model.encode_frames(frames))
            out[:] = feats.cpu().numpy()
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
