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

:func:`features_from_checkpoint` rebuilds a trained model and its test data from a checkpoint
written by the engine and returns query/gallery features ready for ``reid.eval.evaluate``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from reid.data.tracklet import Tracklet, VideoReIDData


def _items(
    tracklets: Sequence[Tracklet], transform: Callable, num_workers: int, max_frames: int | None, corrupt: str,
    pin_memory: bool,
) -> Iterator[dict[str, Any]]:
    """One ``{"frames", "mask", "index", ...}`` item per tracklet, in order."""
    from reid.data.datasets import TestTrackletDataset

    mode, length = ("evenly", max_frames) if max_frames else ("all", None)
    dataset = TestTrackletDataset(tracklets, transform, mode=mode, length=length, corrupt=corrupt)
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
            items = _items(tracklets, transform, num_workers, max_frames, corrupt, device.type == "cuda")
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


# ---------------------------------------------------------------------------------------------
# from a checkpoint
# ---------------------------------------------------------------------------------------------

_STATE_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile wrappers


def extract_query_gallery(model: nn.Module, data: VideoReIDData, transform, **kwargs: Any
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery features of ``data``; each distinct tracklet is extracted once (under the
    official protocol every query is also a gallery entry). ``kwargs`` go to
    :func:`extract_features`."""
    unique: dict[tuple[str, ...], int] = {}
    tracklets: list[Tracklet] = []
    for t in [*data.query, *data.gallery]:
        if t.frames not in unique:
            unique[t.frames] = len(tracklets)
            tracklets.append(t)
    feats = np.asarray(extract_features(model, tracklets, transform, **kwargs), dtype=np.float32)
    return feats[[unique[t.frames] for t in data.query]], feats[[unique[t.frames] for t in data.gallery]]


def _require(mapping: Any, key: str, where: str, path: Path) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        have = sorted(mapping) if isinstance(mapping, dict) else type(mapping).__name__
        raise KeyError(f"{path}: checkpoint lacks {where}{key!r} (has {have}); was it written by reid's trainer?")
    return mapping[key]


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in _STATE_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def load_model_from_checkpoint(checkpoint: str | Path) -> tuple[nn.Module, dict]:
    """``(model in eval mode, checkpoint dict)`` from an engine checkpoint file.

    The backbone's ``pretrained`` setting is ignored (set to None): every weight comes from the
    checkpoint, so rebuilding never downloads or needs the original ImageNet file."""
    from reid.models import build_model

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"{path}: cannot load checkpoint ({type(err).__name__}: {err})") from err
    state = _require(ckpt, "model", "", path)
    config = _require(ckpt, "config", "", path)
    model_cfg = dict(_require(config, "model", "config.", path))
    num_classes = int(_require(ckpt, "num_classes", "", path))
    model_cfg["pretrained"] = None
    model = build_model(model_cfg, num_classes, strict=False)
    try:
        model.load_state_dict(_strip_prefixes(dict(state)), strict=True)
    except RuntimeError as err:  # torch lists missing/unexpected keys and shape mismatches
        raise RuntimeError(
            f"{path}: the saved weights do not match the model built from config.model {model_cfg}: {err}"
        ) from err
    return model.eval(), ckpt


def features_from_checkpoint(
    checkpoint: str | Path,
    data_root: str | Path | None = None,
    protocol: str = "official",
    device: str | torch.device | None = None,
    chunk: int = 32,
    num_workers: int = 0,
    progress: bool = True,
    max_frames: int | None = None,
) -> dict[str, Any]:
    """Query and gallery features of a trained model, ready for ``reid.eval.evaluate``.

    The model is rebuilt with ``build_model(ckpt["config"]["model"], ckpt["num_classes"])`` and
    loaded from ``ckpt["model"]``; the data with ``build_data(data_root or
    ckpt["config"]["data"]["root"], protocol=protocol)``; frames use the test transform at the
    checkpoint's ``config.data.height/width``. A tracklet in both query and gallery (the official
    MARS protocol keeps queries in the gallery) is extracted once.

    Returns a dict with ``query_feats``, ``gallery_feats`` (float32 ``[N, D]``), ``query_pids``,
    ``query_camids``, ``gallery_pids``, ``gallery_camids`` (int64), ``query_paths``,
    ``gallery_paths`` (list of list of frame paths) and ``protocol``.
    """
    from reid.data.build import build_data
    from reid.data.transforms import build_clip_transform

    model, ckpt = load_model_from_checkpoint(checkpoint)
    data_cfg = _require(ckpt["config"], "data", "config.", Path(checkpoint))
    root = data_root if data_root is not None else data_cfg.get("root")
    data = build_data(root=None if root is None else str(root), protocol=protocol)
    transform = build_clip_transform(
        train=False, height=int(data_cfg.get("height", 256)), width=int(data_cfg.get("width", 128))
    )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"

    query_feats, gallery_feats = extract_query_gallery(
        model, data, transform, device=device, chunk=chunk, num_workers=num_workers, progress=progress,
        max_frames=max_frames)
    return {
        "query_feats": query_feats,
        "gallery_feats": gallery_feats,
        "query_pids": np.array([t.pid for t in data.query], dtype=np.int64),
        "query_camids": np.array([t.camid for t in data.query], dtype=np.int64),
        "gallery_pids": np.array([t.pid for t in data.gallery], dtype=np.int64),
        "gallery_camids": np.array([t.camid for t in data.gallery], dtype=np.int64),
        "query_paths": [list(t.frames) for t in data.query],
        "gallery_paths": [list(t.frames) for t in data.gallery],
        "protocol": data.protocol,
    }


__all__ = ["extract_features", "extract_query_gallery", "features_from_checkpoint", "load_model_from_checkpoint"]
