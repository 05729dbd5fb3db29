"""Torch datasets over tracklets: training clips and whole test tracklets, plus their collates.

Assembly (what the engine does)::

    sampler = PKSampler([t.label for t in data.train], p=16, k=4, seed=cfg.seed)
    train_set = TrainClipDataset(data.train, ClipSampler("restricted_random", 8),
                                 build_clip_transform(train=True), seed=cfg.seed, corrupt=data.corrupt)
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate_clips,
                        num_workers=4, worker_init_fn=worker_init, persistent_workers=True)
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch); train_set.set_epoch(epoch)
        for batch in loader: ...   # batch["frames"] [B,T,3,H,W], batch["mask"] [B,T], batch["label"] [B]

The keys of a collated training batch are the ones the training loop and its hooks read
(``label``, ``index``, ``row``, ``pid``, ``camid``), so nothing is renamed on the way.

Determinism. Each training item draws its clip frames and its augmentation from a generator
seeded by ``(seed, epoch, index, occurrence)`` -- ``occurrence`` is how many times the same index
already appeared earlier in the same batch (PK batches repeat the tracklets of identities with
fewer than ``K`` of them; the repeats get different clips). An item is therefore the same
whatever worker builds it, however many workers there are, and after a resume. The epoch lives in
shared memory, so ``set_epoch`` reaches ``persistent_workers`` too.

Corrupt frames met while loading (``corrupt=``, a name in
:data:`reid.data.frames.CORRUPT_POLICIES`; pass the loaded data's ``data.corrupt``): ``"error"`` raises
:class:`reid.data.frames.FrameReadError` naming the file and the tracklet (inside a worker the
DataLoader re-raises it in the main process, where it is the same one-line message);
``"skip"`` substitutes the nearest decodable frame of the same tracklet, warns once per file, and
counts substitutions in ``skipped_frames`` (summed over workers). The dataset loaders can also
scan frames up front (``reid.data.frames``); this is the last line of defence.
"""

from __future__ import annotations

import random
import warnings
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from reid.data.frames import CORRUPT_POLICIES, FrameReadError, read_frame
from reid.data.sampling import ClipSampler, TestClipSampler
from reid.data.tracklet import DatasetError, Tracklet

# per-worker counters of substituted frames; worker w writes slot (w + 1) % _SLOTS, main process 0
_SLOTS = 64


def _worker_slot() -> int:
    info = get_worker_info()
    return 0 if info is None else (info.id + 1) % _SLOTS


def _check_tracklets(tracklets: Sequence[Tracklet], who: str, need_labels: bool) -> list[Tracklet]:
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


class _FrameLoader:
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
            self.skip_counts[_worker_slot()] += 1
            return img
        raise FrameReadError(
            t.frames[j], f"no frame of tracklet row {t.row} (pid {t.pid}, {n} frames) could be decoded"
        )


class TrainClipDataset(Dataset):
    """Training clips: item ``i`` is a ``T``-frame clip of ``tracklets[i]``, augmented.

    Returns ``{"frames": FloatTensor[T,3,H,W], "mask": BoolTensor[T], "label": int, "pid": int,
    "camid": int, "index": int, "row": int}``; ``label`` is ``Tracklet.label``, ``index`` the
    position in ``tracklets``, ``row`` is ``Tracklet.row``, ``mask`` marks real (not padded)
    frames.

    Args:
        tracklets: training tracklets with labels (``assign_train_labels``).
        clip_sampler: a :class:`reid.data.sampling.ClipSampler`.
        transform: ``(frames, rng) -> FloatTensor[T,3,H,W]``
            (:func:`reid.data.transforms.build_clip_transform`).
        seed: base seed of the per-item generators.
        corrupt: a corrupt-frame policy name (module docstring); normally ``data.corrupt``.
        reader: frame decoder, ``path -> HxWx3 uint8 RGB`` (default :func:`reid.data.frames.read_frame`).
    """

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        clip_sampler: ClipSampler,
        transform: Callable[..., torch.Tensor],
        seed: int = 0,
        corrupt: str = "error",
        reader: Callable[[str], np.ndarray] = read_frame,
    ) -> None:
        self.tracklets = _check_tracklets(tracklets, "TrainClipDataset", need_labels=True)
        self.clip_sampler = clip_sampler
        self.transform = transform
        self.seed = int(seed)
        self._loader = _FrameLoader(corrupt, reader)
        # shared memory: persistent DataLoader workers see set_epoch without being restarted
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def corrupt(self) -> str:
        return self._loader.policy.name

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    @property
    def skipped_frames(self) -> int:
        """Frames substituted under ``corrupt="skip"`` so far, all workers included."""
        return int(self._loader.skip_counts.sum())

    def __len__(self) -> int:
        return len(self.tracklets)

    def item_rng(self, index: int, occurrence: int = 0) -> np.random.Generator:
        """The generator of item ``index`` (its ``occurrence``-th copy in a batch) this epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index), int(occurrence)])

    def _item(self, index: int, occurrence: int) -> dict[str, Any]:
        if not 0 <= index < len(self.tracklets):
            raise IndexError(f"TrainClipDataset: index {index} out of range [0, {len(self.tracklets)})")
        t = self.tracklets[index]
        rng = self.item_rng(index, occurrence)
        idx, mask = self.clip_sampler.sample(len(t.frames), rng)
        frames = self._loader.frames(t, idx)
        clip = self.transform(frames, rng=rng)
        return {
            "frames": clip,
            "mask": torch.from_numpy(mask),
            "label": int(t.label),
            "pid": int(t.pid),
            "camid": int(t.camid),
            "index": int(index),
            "row": int(t.row),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._item(int(index), 0)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        # DataLoader hands a whole batch here: number repeated indices so that each copy of a
        # repeated tracklet gets its own clip and augmentation.
        seen: dict[int, int] = {}
        out = []
        for i in indices:
            i = int(i)
            occ = seen.get(i, 0)
            seen[i] = occ + 1
            out.append(self._item(i, occ))
        return out


class TestTrackletDataset(Dataset):
    """Test tracklets, one item per tracklet, no randomness.

    ``mode="all"``: every frame (``T_i = len(tracklet)``; the extractor chunks long ones);
    ``mode="evenly"``: ``length`` evenly spaced frames (padded by repetition for short tracklets).

    Returns ``{"frames": FloatTensor[T_i,3,H,W], "mask": BoolTensor[T_i], "index": int, "pid": int,
    "camid": int}``.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        transform: Callable[..., torch.Tensor],
        mode: str = "all",
        length: int | None = None,
        corrupt: str = "error",
        reader: Callable[[str], np.ndarray] = read_frame,
    ) -> None:
        self.tracklets = _check_tracklets(tracklets, "TestTrackletDataset", need_labels=False)
        self.transform = transform
        self.clip_sampler = TestClipSampler(mode, length)
        self._loader = _FrameLoader(corrupt, reader)

    @property
    def skipped_frames(self) -> int:
        return int(self._loader.skip_counts.sum())

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self.tracklets):
            raise IndexError(f"TestTrackletDataset: index {index} out of range [0, {len(self.tracklets)})")
        t = self.tracklets[index]
        idx, mask = self.clip_sampler.sample(len(t.frames))
        clip = self.transform(self._loader.frames(t, idx))
        return {
            "frames": clip,
            "mask": torch.from_numpy(mask),
            "index": index,
            "pid": int(t.pid),
            "camid": int(t.camid),
        }


def _stack_shared(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``; inside a DataLoader worker, straight into shared memory.

    A worker's batch travels to the main process through shared memory; stacking into a shared
    buffer saves the extra copy the queue would otherwise make (~50 MB per 16x8x3x256x128 float
    batch), the same trick as torch's ``default_collate``.
    """
    out = None
    if get_worker_info() is not None:
        first = tensors[0]
        storage = first._typed_storage()._new_shared(len(tensors) * first.numel(), device=first.device)
        out = first.new(storage).resize_(len(tensors), *first.shape)
    return torch.stack(tensors, 0, out=out)


# the per-clip integers of a training batch, each stacked into an int64 [B] tensor
_CLIP_INT_KEYS = ("label", "index", "row", "pid", "camid")


def collate_clips(batch: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack training items: ``frames [B,T,3,H,W]``, ``mask [B,T]``, and int64 ``[B]``
    ``label`` (training label), ``index`` (position in the dataset's tracklet list), ``row``
    (``Tracklet.row``), ``pid``, ``camid``. All clips must have the same ``T`` and size."""
    if not batch:
        raise ValueError("collate_clips: empty batch")
    shapes = {tuple(item["frames"].shape) for item in batch}
    if len(shapes) != 1:
        raise ValueError(f"collate_clips: clips of different shapes {sorted(shapes)} cannot be stacked")
    return {
        "frames": _stack_shared([item["frames"] for item in batch]),
        "mask": torch.stack([item["mask"] for item in batch]),
        **{key: torch.tensor([item[key] for item in batch], dtype=torch.int64) for key in _CLIP_INT_KEYS},
    }


def collate_test(batch: Sequence[dict[str, Any]], pad: bool = False) -> dict[str, Any]:
    """Collate test tracklets of different lengths.

    ``pad=False``: ``frames`` and ``mask`` stay lists (one ``[T_i,3,H,W]`` / ``[T_i]`` per
    tracklet). ``pad=True``: ``frames [B,T_max,3,H,W]`` zero-padded, ``mask [B,T_max]`` False on
    padding. Both add ``lengths``, ``indices``, ``pids``, ``camids`` as int64 ``[B]``. Use
    ``functools.partial(collate_test, pad=True)`` as a DataLoader ``collate_fn``.
    """
    if not batch:
        raise ValueError("collate_test: empty batch")
    frames = [item["frames"] for item in batch]
    masks = [item["mask"] for item in batch]
    out: dict[str, Any] = {
        "lengths": torch.tensor([f.shape[0] for f in frames], dtype=torch.int64),
        "indices": torch.tensor([item["index"] for item in batch], dtype=torch.int64),
        "pids": torch.tensor([item["pid"] for item in batch], dtype=torch.int64),
        "camids": torch.tensor([item["camid"] for item in batch], dtype=torch.int64),
    }
    if not pad:
        out["frames"], out["mask"] = frames, masks
        return out
    t_max = max(f.shape[0] for f in frames)
    padded = frames[0].new_zeros((len(frames), t_max, *frames[0].shape[1:]))
    mask = torch.zeros((len(frames), t_max), dtype=torch.bool)
    for b, (f, m) in enumerate(zip(frames, masks)):
        padded[b, : f.shape[0]] = f
        mask[b, : f.shape[0]] = m
    out["frames"], out["mask"] = padded, mask
    return out


def worker_init(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: one OpenCV thread per worker (workers already give
    the parallelism; OpenCV's own pool would oversubscribe the cores), and ``random``/``numpy``
    global seeds derived from torch's per-worker seed for any third-party code that uses them.
    Our datasets do not rely on global RNGs (see the module docstring)."""
    cv2.setNumThreads(1)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


__all__ = [
    "TestTrackletDataset",
    "TrainClipDataset",
    "collate_clips",
    "collate_test",
    "worker_init",
]
