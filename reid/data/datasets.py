"""Torch datasets over tracklets: training clips and whole test tracklets, plus their collates.

Assembly (what the engine does)::

    sampler = PKSampler([t.label for t in data.train], p=16, k=4, seed=cfg.seed)
    train_set = TrainClipDataset(data.train, ClipSampler("restricted_random", 8),
                                 build_clip_transform(train=True), seed=cfg.seed, corrupt=data.corrupt)
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate_clips,
                        num_workers=4, worker_init_fn=worker_init, persistent_workers=True)
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch); train_set.set_epoch(epoch)
        for batch in loader: ...   # batch["frames"] [B,T,3,H,W] uint8, batch["mask"] [B,T], batch["label"] [B]

Frames travel as ``uint8`` pixels (:mod:`reid.data.uint8_frames`): with a
:class:`~reid.data.transforms.ClipTransform` normalised with the ImageNet mean/std (the default),
the datasets run its uint8 variant (same pipeline and random draws, no ``Normalize``, erasing
filled with the uint8 mean pixel) and the video model normalises on its device
(``VideoReIDModel.encode_frames``). A clip is stored ``[T, H, W, 3]`` and handed over as the view
``[T, 3, H, W]``. In a batch (``__getitems__``) every clip is written straight into one
``[B, T, H, W, 3]`` buffer (shared memory inside a worker) and ``collate_clips`` returns that
buffer as it is: one copy per frame from the augmentation to the main process, none in collate.
``uint8=False`` (or any other transform) keeps the float path: normalised on the CPU, stacked.

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
scan frames up front (``reid.data.frames``); this is the last line of defence (decoding and
the policy: :mod:`reid.data.frame_loader`).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from reid.data.frame_loader import FrameLoader, check_tracklets
from reid.data.frames import read_frame
from reid.data.sampling import ClipSampler, TestClipSampler
from reid.data.tracklet import Tracklet
from reid.data.uint8_frames import as_chw, new_frame_buffer, resolve_uint8


class TrainClipDataset(Dataset):
    """Training clips: item ``i`` is a ``T``-frame clip of ``tracklets[i]``, augmented.

    Returns ``{"frames": [T,3,H,W], "mask": BoolTensor[T], "label": int, "pid": int,
    "camid": int, "index": int, "row": int}``; ``label`` is ``Tracklet.label``, ``index`` the
    position in ``tracklets``, ``row`` is ``Tracklet.row``, ``mask`` marks real (not padded)
    frames. ``frames`` is uint8 pixels (a view of a ``[T,H,W,3]`` buffer; the model normalises
    them) when the transform has a uint8 variant, else the transform's normalised float tensor.

    Args:
        tracklets: training tracklets with labels (``assign_train_labels``).
        clip_sampler: a :class:`reid.data.sampling.ClipSampler`.
        transform: ``(frames, rng) -> FloatTensor[T,3,H,W]``
            (:func:`reid.data.transforms.build_clip_transform`).
        seed: base seed of the per-item generators.
        corrupt: a corrupt-frame policy name (module docstring); normally ``data.corrupt``.
        reader: frame decoder, ``path -> HxWx3 uint8 RGB`` (default :func:`reid.data.frames.read_frame`).
        uint8: uint8 frames (module docstring); None = when the transform has a uint8 variant,
            False = always the float path, True = uint8 or an error.
    """

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        clip_sampler: ClipSampler,
        transform: Callable[..., torch.Tensor],
        seed: int = 0,
        corrupt: str = "error",
        reader: Callable[[str], np.ndarray] = read_frame,
        uint8: bool | None = None,
    ) -> None:
        self.tracklets = check_tracklets(tracklets, "TrainClipDataset", need_labels=True)
        self.clip_sampler = clip_sampler
        self.transform = transform
        self.uint8_transform = resolve_uint8(transform, uint8, "TrainClipDataset")
        self.seed = int(seed)
        self._loader = FrameLoader(corrupt, reader)
        # shared memory: persistent DataLoader workers see set_epoch without being restarted
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.batch_slots = None  # reused shared batch buffers, set by reid.data.batch_slots.SlotLoader

    @property
    def corrupt(self) -> str:
        return self._loader.policy.name

    def batch_buffer_shape(self, batch_sampler) -> tuple[int, ...] | None:
        """``[B, T, H, W, 3]`` of a uint8 batch from ``batch_sampler`` (a PK sampler: ``B = p k``);
        None when frames are float or the batch size is not fixed."""
        u8 = self.uint8_transform
        p, k = getattr(batch_sampler, "p", None), getattr(batch_sampler, "k", None)
        if u8 is None or p is None or k is None:
            return None
        return (int(p) * int(k), self.clip_sampler.length, u8.height, u8.width, 3)

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

    def _draw(self, index: int, occurrence: int) -> tuple[int, np.random.Generator, np.ndarray, np.ndarray]:
        """The clip of item ``index``: its generator, frame indices and mask (the transform then
        draws its augmentation from the same generator)."""
        if not 0 <= index < len(self.tracklets):
            raise IndexError(f"TrainClipDataset: index {index} out of range [0, {len(self.tracklets)})")
        rng = self.item_rng(index, occurrence)
        idx, mask = self.clip_sampler.sample(len(self.tracklets[index].frames), rng)
        return index, rng, idx, mask

    def _item(self, draw: tuple, out: torch.Tensor | None = None) -> dict[str, Any]:
        index, rng, idx, mask = draw
        t = self.tracklets[index]
        frames = self._loader.frames(t, idx)
        u8 = self.uint8_transform
        clip = self.transform(frames, rng=rng) if u8 is None else u8(frames, rng=rng, out=out)
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
        return self._item(self._draw(int(index), 0))

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        # DataLoader hands a whole batch here: number repeated indices so that each copy of a
        # repeated tracklet gets its own clip and augmentation.
        seen: dict[int, int] = {}
        draws = []
        for i in indices:
            i = int(i)
            occ = seen.get(i, 0)
            seen[i] = occ + 1
            draws.append(self._draw(i, occ))
        u8 = self.uint8_transform
        lengths = {len(d[2]) for d in draws}
        if u8 is None or len(lengths) != 1:
            return [self._item(d) for d in draws]
        # uint8: every clip written into its slot of one batch buffer, which collate_clips returns;
        # in a worker, a reused shared buffer when the loader assigned one (reid.data.batch_slots)
        shape = (len(draws), lengths.pop(), u8.height, u8.width, 3)
        slots = self.batch_slots if get_worker_info() is not None else None
        buf = None if slots is None else slots.buffer_for(getattr(indices, "slot", -1), shape)
        if buf is None:
            buf = new_frame_buffer(shape, shared=get_worker_info() is not None)
        return [self._item(d, out=buf[b]) for b, d in enumerate(draws)]


class TestTrackletDataset(Dataset):
    """Test tracklets, one item per tracklet, no randomness.

    ``mode="all"``: every frame (``T_i = len(tracklet)``; the extractor chunks long ones);
    ``mode="evenly"``: ``length`` evenly spaced frames (padded by repetition for short tracklets).

    Returns ``{"frames": [T_i,3,H,W], "mask": BoolTensor[T_i], "index": int, "pid": int,
    "camid": int}``; ``frames`` uint8 or float as in :class:`TrainClipDataset` (``uint8=``).
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
        uint8: bool | None = None,
    ) -> None:
        self.tracklets = check_tracklets(tracklets, "TestTrackletDataset", need_labels=False)
        self.transform = transform
        self.uint8_transform = resolve_uint8(transform, uint8, "TestTrackletDataset")
        self.clip_sampler = TestClipSampler(mode, length)
        self._loader = FrameLoader(corrupt, reader)

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
        frames = self._loader.frames(t, idx)
        u8 = self.uint8_transform
        clip = self.transform(frames) if u8 is None else u8(frames, shared=get_worker_info() is not None)
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


def _slots_as_batch(clips: list[torch.Tensor]) -> torch.Tensor | None:
    """The ``[B,T,3,H,W]`` view of the buffer when ``clips`` are its ``B`` consecutive slots (uint8
    ``[T,3,H,W]`` views of ``[T,H,W,3]`` blocks laid end to end in one storage, as
    ``TrainClipDataset.__getitems__`` writes them); None otherwise. The view then holds exactly
    the clips' pixels, so no copy is needed."""
    first = clips[0]
    if first.dtype != torch.uint8 or first.dim() != 4:
        return None
    t, c, h, w = first.shape
    slot = t * h * w * c
    if first.stride() != (h * w * c, 1, w * c, c):
        return None
    storage, start = first.untyped_storage(), first.storage_offset()
    for b, clip in enumerate(clips):
        if (clip.shape != first.shape or clip.stride() != first.stride() or clip.storage_offset() != start + b * slot
                or clip.untyped_storage().data_ptr() != storage.data_ptr()):
            return None
    buf = torch.empty(0, dtype=torch.uint8).set_(storage, start, (len(clips), t, h, w, c))
    return as_chw(buf)


# the per-clip integers of a training batch, each stacked into an int64 [B] tensor
_CLIP_INT_KEYS = ("label", "index", "row", "pid", "camid")


def collate_clips(batch: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack training items: ``frames [B,T,3,H,W]``, ``mask [B,T]``, and int64 ``[B]``
    ``label`` (training label), ``index`` (position in the dataset's tracklet list), ``row``
    (``Tracklet.row``), ``pid``, ``camid``. All clips must have the same ``T`` and size. Clips
    already written into one batch buffer (uint8 ``__getitems__``) are returned as that buffer."""
    if not batch:
        raise ValueError("collate_clips: empty batch")
    shapes = {tuple(item["frames"].shape) for item in batch}
    if len(shapes) != 1:
        raise ValueError(f"collate_clips: clips of different shapes {sorted(shapes)} cannot be stacked")
    clips = [item["frames"] for item in batch]
    frames = _slots_as_batch(clips)
    return {
        "frames": _stack_shared(clips) if frames is None else frames,
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
