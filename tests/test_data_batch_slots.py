"""Reused shared batch buffers (reid.data.batch_slots): the batches are those of a plain
DataLoader bit for bit, buffers are reused when the consumer drops each batch, and a batch the
consumer keeps (or a view of it, or its storage) is never overwritten."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from reid.data.batch_slots import BatchSlots, SlotBatch, SlotLoader, build_clip_loader
from reid.data.datasets import TrainClipDataset, collate_clips, worker_init
from reid.data.sampling import ClipSampler, PKSampler
from reid.data.transforms import build_clip_transform
from reid.engine.builders import build_train_loader

from test_data_datasets import H, T, W, write_tracklets

P, K = 2, 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> TrainClipDataset:
    tracklets = write_tracklets(tmp_path_factory.mktemp("slots"), [[5, 2], [7, 3], [3, 9, 4], [1, 6], [8, 8], [4, 4]])
    return TrainClipDataset(tracklets, ClipSampler("restricted_random", length=T),
                            build_clip_transform(True, height=H, width=W, pad=2), seed=3)


def sampler(dataset) -> PKSampler:
    s = PKSampler([t.label for t in dataset.tracklets], P, K, seed=1)
    s.set_epoch(0)
    return s


def plain_batches(dataset) -> list[dict]:
    loader = DataLoader(dataset, batch_sampler=sampler(dataset), collate_fn=collate_clips, num_workers=0)
    return [{k: v.clone() for k, v in b.items()} for b in loader]


def slot_loader(dataset, workers=2, **kw) -> SlotLoader:
    loader = build_clip_loader(dataset, sampler(dataset), num_workers=workers, collate_fn=collate_clips,
                               worker_init_fn=worker_init, **kw)
    assert isinstance(loader, SlotLoader)
    return loader


def assert_same(batch, ref):
    assert batch.keys() == ref.keys()
    for key in ref:
        assert torch.equal(batch[key], ref[key]), key


def test_dropped_batches_reuse_the_buffers_and_equal_a_plain_loader(dataset):
    ref = plain_batches(dataset)
    assert len(ref) >= 3
    for _ in range(2):  # several passes: each slot is handed out many times
        loader = slot_loader(dataset, workers=2, prefetch_factor=1)
        slots = loader.sampler.slots
        handed = []
        acquire = slots.acquire
        slots.acquire = lambda: handed.append(acquire()) or handed[-1]
        for epoch in range(3):
            loader.sampler.batch_sampler.set_epoch(0)
            for batch, expected in zip(loader, ref):
                assert_same(batch, expected)
                del batch
        assert len(handed) == 3 * len(ref) and min(handed) >= 0, handed
        assert len(set(handed)) <= len(slots.buffers) < len(handed), "buffers are reused"
        assert slots.fallbacks == 0
    assert dataset.batch_slots is None, "the main process keeps no pool on the dataset"


def test_kept_batches_views_and_storages_are_never_overwritten(dataset):
    ref = plain_batches(dataset)
    loader = slot_loader(dataset, workers=1, prefetch_factor=1)
    kept, views, storages = [], [], []
    for i in range(4):
        for j, batch in enumerate(loader):
            if j % 3 == 0:
                kept.append((batch, ref[j]))
            elif j % 3 == 1:
                views.append((batch["frames"][0, 1:], ref[j]["frames"][0, 1:].clone()))
            else:
                as_numpy = batch["frames"].numpy()  # an array holds the storage too
                storages.append((as_numpy, ref[j]["frames"].numpy().copy()))
            del batch
    for batch, expected in kept:
        assert_same(batch, expected)
    for view, expected in views:
        assert torch.equal(view, expected)
    for array, expected in storages:
        np.testing.assert_array_equal(array, expected)
    assert loader.sampler.slots.fallbacks > 0, "with every batch kept the loader had to allocate fresh ones"


def test_early_break_then_a_new_epoch_loader(dataset):
    ref = plain_batches(dataset)
    loader = slot_loader(dataset, workers=2)
    for batch in loader:
        break
    assert_same(batch, ref[0])
    again = slot_loader(dataset, workers=2)
    got = [b for b in again]
    assert len(got) == len(ref)
    for b, expected in zip(got, ref):
        assert_same(b, expected)


def test_without_workers_or_float_frames_a_plain_dataloader(dataset, tmp_path):
    loader = build_clip_loader(dataset, sampler(dataset), num_workers=0, collate_fn=collate_clips)
    assert isinstance(loader, DataLoader)
    float_ds = TrainClipDataset(dataset.tracklets, ClipSampler("restricted_random", length=T),
                                build_clip_transform(True, height=H, width=W, pad=2), seed=3, uint8=False)
    assert float_ds.batch_buffer_shape(sampler(float_ds)) is None
    assert isinstance(build_clip_loader(float_ds, sampler(float_ds), num_workers=2, collate_fn=collate_clips),
                      DataLoader)


def test_trainer_loader_uses_the_slots_with_workers(dataset):
    s = sampler(dataset)
    loader = build_train_loader(dataset, s, epoch=0, seed=0, num_workers=1)
    assert isinstance(loader, SlotLoader) and len(loader) == len(s)
    assert isinstance(build_train_loader(dataset, s, epoch=0, seed=0, num_workers=0), DataLoader)


def test_slot_state_and_worker_side_buffer():
    slots = BatchSlots(2, (4, T, H, W, 3))
    a, b = slots.acquire(), slots.acquire()
    assert (a, b) == (0, 1) and slots.acquire() == -1 and slots.fallbacks == 1
    held = slots.buffers[0].clone().share_memory_()
    slots.delivered(0, held)
    assert slots.acquire() == -1, "a delivered batch still referenced keeps its slot"
    del held
    assert slots.acquire() == 0
    assert slots.buffer_for(1, (3, T, H, W, 3)).shape == (3, T, H, W, 3)
    assert slots.buffer_for(1, (5, T, H, W, 3)) is None and slots.buffer_for(-1, (3, T, H, W, 3)) is None
    assert slots.buffer_for(1, (3, T + 1, H, W, 3)) is None
    batch = SlotBatch([3, 1, 2], 1)
    import pickle

    again = pickle.loads(pickle.dumps(batch))
    assert again == [3, 1, 2] and again.slot == 1
    with pytest.raises(ValueError, match="count"):
        BatchSlots(0, (1, 1, 1, 1, 3))


def test_trainer_with_workers_trains_on_the_same_batches(tiny_synthetic_mars, tmp_path):
    from test_engine_speed_options import _two_steps

    in_process = _two_steps(tiny_synthetic_mars, tmp_path, "w0", "data.num_workers=0")
    with_workers = _two_steps(tiny_synthetic_mars, tmp_path, "w2", "data.num_workers=2")
    assert with_workers[0] == in_process[0]
    assert all(torch.equal(a, b) for a, b in zip(with_workers[1], in_process[1]))
