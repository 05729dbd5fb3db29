"""Shared-memory batch buffers reused across batches by DataLoader workers (issue 14, goal 2).

A worker hands each uint8 batch to the main process in shared memory. Allocating a fresh segment
per batch costs, on the development VM, ~6 ms of first-touch page faults for a 12.6 MB batch (16
clips x 8 frames x 256 x 128 x 3) plus the segment's creation and teardown: ~0.2 CPU ms per frame
against ~0.55 ms for decoding and augmenting it (docs/benchmarks.md). Here the buffers are
allocated once per DataLoader, in the main process before the workers start (so every worker
shares them), and a buffer is handed to a new batch only once nothing can read its previous one:

* the batch sampler (:class:`SlotSampler`, main process) gives each batch of indices a *slot*:
  a buffer that is neither waiting for a worker nor still referenced by the consumer, or ``-1``
  (no free buffer: the worker allocates a fresh segment, as without this module);
* the worker writes the batch into its slot (:class:`reid.data.datasets.TrainClipDataset`);
* :class:`SlotLoader` (main process) takes a weak reference to the storage of each delivered
  batch's frames (batches arrive in sampler order); the slot is free again when that storage
  has no strong reference left - the consumer dropped the batch and every view, array or storage
  object made from it (torch's ``StorageWeakRef``, which counts all of them).

So a consumer that keeps batches (a list of them, a view, ``.numpy()``) never sees them
overwritten; it only makes the loader fall back to fresh segments. One pool per DataLoader: a
DataLoader built for the next epoch gets new buffers, whatever the previous one's workers are
still doing.
"""

from __future__ import annotations

import collections
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef

from reid.data.uint8_frames import new_frame_buffer

_FREE, _IN_FLIGHT, _DELIVERED = 0, 1, 2


class SlotBatch(list):
    """A batch of dataset indices with the buffer slot its frames go to (``-1``: none)."""

    def __init__(self, indices: Sequence[int], slot: int) -> None:
        super().__init__(indices)
        self.slot = slot

    def __reduce__(self):  # sent to a worker through the index queue
        return SlotBatch, (list(self), self.slot)


class BatchSlots:
    """``count`` shared uint8 buffers of ``shape`` (``[B, T, H, W, 3]``) and their state.

    ``buffers`` is what the workers write into (inherited or shared when they start); the state
    (``acquire``, ``delivered``) lives in the main process only."""

    def __init__(self, count: int, shape: Sequence[int]) -> None:
        if count < 1:
            raise ValueError(f"BatchSlots: count must be >= 1, got {count}")
        self.shape = tuple(int(s) for s in shape)
        self.buffers = [new_frame_buffer(self.shape, shared=True) for _ in range(count)]
        self._state = [_FREE] * count
        self._refs: list[StorageWeakRef | None] = [None] * count
        self.fallbacks = 0  # batches that found no free slot (a consumer kept batches)

    def acquire(self) -> int:
        """A free slot, marked as waiting for its batch; ``-1`` when every slot is in use."""
        for k, state in enumerate(self._state):
            if state == _FREE or (state == _DELIVERED and self._refs[k].expired()):
                self._state[k], self._refs[k] = _IN_FLIGHT, None
                return k
        self.fallbacks += 1
        return -1

    def delivered(self, slot: int, frames: torch.Tensor) -> None:
        """The batch of ``slot`` reached the consumer as ``frames``: the slot is free again once
        that storage is unreferenced."""
        self._state[slot] = _DELIVERED
        self._refs[slot] = StorageWeakRef(frames.untyped_storage())

    def buffer_for(self, slot: int, shape: Sequence[int]) -> torch.Tensor | None:
        """Worker side: the first ``shape[0]`` rows of the slot's buffer when ``shape`` fits it."""
        if slot < 0 or slot >= len(self.buffers) or tuple(shape[1:]) != self.shape[1:] or shape[0] > self.shape[0]:
            return None
        return self.buffers[slot][: shape[0]]

    def __getstate__(self):  # workers need the buffers only (spawned ones get them through fd sharing)
        return {"shape": self.shape, "buffers": self.buffers}

    def __setstate__(self, state) -> None:
        self.shape, self.buffers = state["shape"], state["buffers"]
        self._state, self._refs, self.fallbacks = [_FREE] * len(self.buffers), [None] * len(self.buffers), 0


class SlotSampler:
    """Wraps a batch sampler: each batch of indices becomes a :class:`SlotBatch` with a slot of
    ``slots``; the slots handed out are queued, in order, for :class:`SlotLoader`."""

    def __init__(self, batch_sampler, slots: BatchSlots) -> None:
        self.batch_sampler = batch_sampler
        self.slots = slots
        self.pending: collections.deque[int] = collections.deque()

    def __iter__(self) -> Iterator[SlotBatch]:
        for indices in self.batch_sampler:
            slot = self.slots.acquire()
            self.pending.append(slot)
            yield SlotBatch(indices, slot)

    def __len__(self) -> int:
        return len(self.batch_sampler)


class SlotLoader:
    """A DataLoader (built on a :class:`SlotSampler`) whose delivered batches release their slot
    when the consumer drops them. Iterates like the DataLoader; other attributes are its."""

    def __init__(self, loader: torch.utils.data.DataLoader, sampler: SlotSampler) -> None:
        self.loader = loader
        self.sampler = sampler

    def __iter__(self) -> Iterator[dict]:
        self.sampler.pending.clear()  # a new iteration: the previous one's queue is void
        dataset = self.loader.dataset
        # the workers start inside iter() and take the dataset as it is then: with this loader's
        # buffers (another loader over the same dataset sets its own when it starts its workers)
        dataset.batch_slots = self.sampler.slots
        try:
            batches = iter(self.loader)
        finally:
            dataset.batch_slots = None  # the main process never writes into them
        for batch in batches:  # in sampler order (DataLoader's in_order)
            slot = self.sampler.pending.popleft()
            if slot >= 0:
                self.sampler.slots.delivered(slot, batch["frames"])
            yield {key: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for key, v in batch.items()}

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.__dict__["loader"], name)


def build_clip_loader(dataset, batch_sampler, num_workers: int = 0, **loader_kwargs):
    """The training DataLoader over a :class:`reid.data.datasets.TrainClipDataset`: with workers
    and uint8 frames, a :class:`SlotLoader` whose batches travel in reused shared buffers; else
    a plain DataLoader (``loader_kwargs`` go to it either way)."""
    shape = None
    if num_workers > 0 and loader_kwargs.get("in_order", True):
        shape = dataset.batch_buffer_shape(batch_sampler)
    if shape is None:
        return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                                           **loader_kwargs)
    slots = BatchSlots(slot_count(num_workers, loader_kwargs.get("prefetch_factor")), shape)
    sampler = SlotSampler(batch_sampler, slots)
    collate = loader_kwargs.pop("collate_fn", None) or torch.utils.data.default_collate
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                         collate_fn=_SmallByValue(collate), **loader_kwargs)
    return SlotLoader(loader, sampler)


class _SmallByValue:
    """A collate function whose small tensors (everything but ``frames``) leave the worker as
    numpy arrays: pickled by value, where a tensor would travel as one more shared-memory
    segment and descriptor each (3-6 CPU ms per batch for six of them); :class:`SlotLoader`
    turns them back into the same tensors."""

    def __init__(self, collate) -> None:
        self.collate = collate

    def __call__(self, items):
        batch = self.collate(items)
        if torch.utils.data.get_worker_info() is None or not isinstance(batch, dict):
            return batch
        return {key: v.numpy() if key != "frames" and isinstance(v, torch.Tensor) and v.numel() <= _BY_VALUE_MAX
                else v for key, v in batch.items()}


_BY_VALUE_MAX = 1 << 16  # elements: metadata, never frames


def slot_count(num_workers: int, prefetch_factor: int | None) -> int:
    """Buffers for a loader: the batches its workers may have in flight, plus the one the
    consumer holds and the next."""
    return num_workers * (prefetch_factor or 2) + 2


__all__ = ["BatchSlots", "SlotBatch", "SlotLoader", "SlotSampler", "build_clip_loader", "slot_count"]
