"""Clip transforms: one parameter draw per clip, shapes/normalisation, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_clip_transform

H, W = 32, 16  # small frames keep the tests fast


def random_image(seed: int, h: int = 40, w: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_one_draw_hits_every_frame_and_draws_differ():
    tf = build_clip_transform(True, height=H, width=W, pad=4, flip_p=0.5, erasing_p=0.5, color_jitter=0.3)
    img = random_image(0)
    outputs = []
    for draw in range(40):
        clip = tf([img] * 6, rng=np.random.default_rng(draw))
        assert clip.shape == (6, 3, H, W) and clip.dtype == torch.float32
        for t in range(1, 6):
            assert torch.equal(clip[t], clip[0]), f"draw {draw}: frame {t} was augmented differently"
        outputs.append(clip[0])
    distinct = {tuple(o.flatten()[::37].tolist()) for o in outputs}
    assert len(distinct) > 30, "different draws should give different augmentations"


def test_same_rng_seed_same_clip():
    tf = build_clip_transform(True, height=H, width=W, color_jitter=0.2)
    frames = [random_image(s) for s in range(4)]
    a = tf(frames, rng=np.random.default_rng(11))
    b = tf(frames, rng=np.random.default_rng(11))
    c = tf(frames, rng=np.random.default_rng(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flip_is_shared_across_frames_with_asymmetric_image():
    # left half bright, right half dark: a flipped frame has its bright side on the right
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[:, : W // 2] = 255
    tf = build_clip_transform(True, height=H, width=W, pad=0, flip_p=0.5, erasing_p=0.0)
    flips = []
    for draw in range(60):
        clip = tf([img, img.copy(), img.copy(), img.copy()], rng=np.random.default_rng(draw))
        left = clip[:, 0, :, : W // 2].mean(dim=(1, 2))
        right = clip[:, 0, :, W // 2 :].mean(dim=(1, 2))
        flipped = (right > left).tolist()
        assert len(set(flipped)) == 1, f"draw {draw}: frames disagree on the flip {flipped}"
        flips.append(flipped[0])
    assert 10 < sum(flips) < 50, "flip_p=0.5 should flip about half the clips"


def test_crop_offset_shared_on_distinct_frames():
    # frames differ only by a constant: identical crop/erasing => constant difference everywhere
    base = random_image(3, H, W).astype(np.int16)
    f0 = np.clip(base, 20, 200).astype(np.uint8)
    f1 = (f0.astype(np.int16) + 30).astype(np.uint8)
    tf = build_clip_transform(True, height=H, width=W, pad=6, flip_p=0.5, erasing_p=1.0)
    for draw in range(20):
        clip = tf([f0, f1], rng=np.random.default_rng(draw))
        diff = (clip[1] - clip[0]) * torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
        inside = diff.abs().amax(dim=0) > 1e-3
        # where the frame content is visible (not pad, not erased) the difference is +30
        assert inside.any()
        assert torch.allclose(diff[:, inside], torch.full_like(diff[:, inside], 30.0), atol=1e-2)


def test_test_transform_is_resize_and_normalise_only():
    img = random_image(5, H, W)
    tf = build_clip_transform(False, height=H, width=W)
    clip = tf([img, img])
    expected = (img.astype(np.float32) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    expected = torch.from_numpy(expected.transpose(2, 0, 1).astype(np.float32))
    assert torch.allclose(clip[0], expected, atol=1e-5)
    assert torch.equal(clip[0], clip[1])
    # frames of another size are resized
    assert tf([random_image(6, 50, 30)]).shape == (1, 3, H, W)


def test_train_transform_accepts_frames_of_different_sizes():
    tf = build_clip_transform(True, height=H, width=W)
    clip = tf([random_image(1, 40, 20), random_image(2, 64, 30)], rng=np.random.default_rng(0))
    assert clip.shape == (2, 3, H, W)


def test_bad_input_errors():
    tf = build_clip_transform(True, height=H, width=W)
    with pytest.raises(ValueError, match="empty clip"):
        tf([])
    with pytest.raises(ValueError, match="frame 1"):
        tf([random_image(0), random_image(0).astype(np.float32)])
    with pytest.raises(ValueError, match="flip_p"):
        build_clip_transform(True, flip_p=1.5)
