"""uint8 frames through the DataLoader, normalised on the model's device (issue 14, goal 2):
the same numbers as the float pipeline on the same decoded frames, the same augmentation draws,
random erasing with the documented fill, batches handed over without a copy in collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from reid.data.datasets import TestTrackletDataset, TrainClipDataset, collate_clips, worker_init
from reid.data.sampling import ClipSampler, PKSampler
from reid.data.transforms import build_clip_transform
from reid.data.uint8_frames import (
    ERASING_FILL,
    Uint8ClipTransform,
    as_chw,
    new_frame_buffer,
    normalize_frames,
    uint8_variant,
)
from test_data_datasets import H, T, W, write_tracklets


def clip_frames(seed: int, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H + 6 + i, W + 3, 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def tracklets(tmp_path_factory):
    return write_tracklets(tmp_path_factory.mktemp("u8"), [[5, 2], [7], [3, 9, 4], [1, 6], [8, 8]])


def test_test_transform_is_equal_bit_for_bit():
    tf = build_clip_transform(False, height=H, width=W)
    u8 = uint8_variant(tf)
    assert isinstance(u8, Uint8ClipTransform) and not u8.train
    frames = clip_frames(0) + [np.zeros((H, W, 3), np.uint8) + 255]  # a frame already at size: copied
    pixels = u8(frames)
    assert pixels.dtype == torch.uint8 and pixels.shape == (5, 3, H, W)
    assert torch.equal(normalize_frames(pixels), tf(frames))


def test_train_transform_same_draws_within_1e6_and_erasing_fill():
    """Same generator -> same crop/flip/jitter/erasing box; pixels within 7.2e-7 of the float path
    (albumentations' lookup table vs (x/255 - mean)/std); erased pixels hold ERASING_FILL."""
    fill = normalize_frames(torch.tensor(ERASING_FILL, dtype=torch.uint8).view(3, 1, 1)).flatten()
    assert ERASING_FILL == (124, 116, 104)
    np.testing.assert_allclose(fill.numpy(), [0.0055655, -0.0049020, 0.0081918], atol=1e-6)
    erased_clips = 0
    for jitter in (0.0, 0.3):
        tf = build_clip_transform(True, height=H, width=W, pad=3, color_jitter=jitter)
        u8 = uint8_variant(tf)
        for draw in range(60):
            ref = tf(clip_frames(draw), rng=np.random.default_rng(draw))
            got = normalize_frames(u8(clip_frames(draw), rng=np.random.default_rng(draw)))
            erased = (ref == 0).all(dim=1)  # [T, H, W]: the float pipeline fills 0 after normalisation
            assert torch.equal(erased, erased[:1].expand_as(erased)), "one box for every frame of the clip"
            keep = ~erased[:, None].expand_as(ref)
            assert (ref[keep] - got[keep]).abs().max() <= 1e-6
            if erased.any():
                erased_clips += 1
                assert torch.equal(got.permute(0, 2, 3, 1)[erased], fill.expand(int(erased.sum()), 3))
    assert 35 < erased_clips < 85, f"erasing_p=0.5 over 120 clips erased {erased_clips}"


def test_other_normalisation_keeps_the_float_path(tracklets):
    tf = build_clip_transform(True, height=H, width=W, mean=(0.5, 0.5, 0.5))
    assert uint8_variant(tf) is None and uint8_variant(lambda f, rng=None: f) is None
    ds = TrainClipDataset(tracklets, ClipSampler("restricted_random", T), tf)
    assert ds.uint8_transform is None and ds[0]["frames"].dtype == torch.float32
    with pytest.raises(ValueError, match="uint8=True needs"):
        TrainClipDataset(tracklets, ClipSampler("restricted_random", T), tf, uint8=True)


def make(tracklets, uint8, erasing_p=0.0):
    tf = build_clip_transform(True, height=H, width=W, pad=2, erasing_p=erasing_p)
    return TrainClipDataset(tracklets, ClipSampler("restricted_random", T), tf, seed=4, uint8=uint8)


def test_dataset_uint8_items_normalise_to_the_float_items(tracklets):
    u8, f32 = make(tracklets, None), make(tracklets, False)
    for i in (0, 4, 6):
        a, b = u8[i], f32[i]
        assert a["frames"].dtype == torch.uint8 and a["frames"].shape == (T, 3, H, W)
        assert (normalize_frames(a["frames"]) - b["frames"]).abs().max() <= 1e-6
        assert torch.equal(a["mask"], b["mask"])
    batch = u8.__getitems__([1, 1, 3])
    assert torch.equal(batch[0]["frames"], u8[1]["frames"]) and not torch.equal(batch[0]["frames"], batch[1]["frames"])


def test_collate_returns_the_batch_buffer_without_a_copy(tracklets):
    ds = make(tracklets, None, erasing_p=0.5)
    items = ds.__getitems__([0, 2, 2, 5])
    batch = collate_clips(items)
    assert batch["frames"].shape == (4, T, 3, H, W) and batch["frames"].dtype == torch.uint8
    ptr = batch["frames"].untyped_storage().data_ptr()
    assert all(it["frames"].untyped_storage().data_ptr() == ptr for it in items), "collate copied the clips"
    for b, it in enumerate(items):
        assert torch.equal(batch["frames"][b], it["frames"])
    # clips built one by one live in separate buffers: stacked (a copy), same values
    single = [ds[i] for i in (0, 2)]
    stacked = collate_clips(single)["frames"]
    assert stacked.untyped_storage().data_ptr() != single[0]["frames"].untyped_storage().data_ptr()
    assert torch.equal(stacked[1], single[1]["frames"])


def test_workers_hand_over_the_same_uint8_batches(tracklets):
    labels = [t.label for t in tracklets]

    def run(workers):
        ds = make(tracklets, None, erasing_p=0.5)
        sampler = PKSampler(labels, p=2, k=3, seed=1)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_clips, num_workers=workers,
                            worker_init_fn=worker_init if workers else None)
        return list(loader)

    ref, got = run(0), run(2)
    assert len(ref) == len(got) > 0
    for r, g in zip(ref, got):
        assert g["frames"].dtype == torch.uint8 and g["frames"].shape == (6, T, 3, H, W)
        assert torch.equal(r["frames"], g["frames"]) and torch.equal(r["index"], g["index"])


def test_new_frame_buffer_shared_and_layout():
    buf = new_frame_buffer((2, 3, H, W, 3), shared=True)
    assert buf.is_shared() and buf.shape == (2, 3, H, W, 3) and buf.is_contiguous()
    assert not new_frame_buffer((1, H, W, 3), shared=False).is_shared()


def test_test_dataset_uint8_items(tracklets):
    tf = build_clip_transform(False, height=H, width=W)
    u8, f32 = TestTrackletDataset(tracklets, tf, mode="evenly", length=4), TestTrackletDataset(
        tracklets, tf, mode="evenly", length=4, uint8=False)
    for i in (3, 6):
        assert u8[i]["frames"].dtype == torch.uint8
        assert torch.equal(normalize_frames(u8[i]["frames"]), f32[i]["frames"])


def test_model_normalises_uint8_input_on_its_device():
    from reid.models import build_model

    torch.manual_seed(0)
    model = build_model({"backbone": "resnet18", "aggregation": "mean", "embedding_dim": 16}, 3).eval()
    u8 = uint8_variant(build_clip_transform(False, height=H, width=W))
    hwc = new_frame_buffer((2, 3, H, W, 3), shared=False)
    u8.fill(clip_frames(1, 6), hwc.view(6, H, W, 3).numpy())
    pixels = as_chw(hwc)  # [2, 3, 3, H, W], the datasets' strided layout
    assert not pixels.is_contiguous()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        a = model(pixels, mask)["bn_feat"]
        b = model(normalize_frames(pixels), mask)["bn_feat"]
        assert torch.equal(a, b)
        assert torch.equal(model.retrieval_features(pixels, mask), model.retrieval_features(normalize_frames(pixels), mask))
    with pytest.raises(TypeError, match="uint8"):
        normalize_frames(pixels.float())
