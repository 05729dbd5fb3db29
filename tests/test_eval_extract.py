"""Feature extraction: packing/chunking invariance, order, checkpoint round trip on tiny data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from reid.data.frames import read_frame
from reid.data.tracklet import Tracklet
from reid.data.transforms import build_clip_transform
from reid.eval.extract import extract_features
from reid.models import build_model

H, W = 64, 32
MODEL_CFG = {"backbone": "resnet18", "aggregation": "attention", "embedding_dim": 24, "classifier": "cosine"}


@pytest.fixture(scope="module")
def transform():
    return build_clip_transform(train=False, height=H, width=W)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(MODEL_CFG, 3)
    with torch.no_grad():  # non-trivial BNNeck statistics
        m.bnneck.bn.running_mean.uniform_(-0.3, 0.3)
        m.bnneck.bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.fixture(scope="module")
def tracklets(tmp_path_factory):
    """Four tracklets of 2, 7, 3 and 1 frames written as lossless PNGs."""
    root = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    out = []
    for row, n in enumerate([2, 7, 3, 1]):
        paths = []
        for f in range(n):
            path = root / f"t{row}_f{f}.png"
            cv2.imwrite(str(path), rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8))
            paths.append(str(path))
        out.append(Tracklet(frames=tuple(paths), pid=row + 1, camid=1 + row % 2, tracklet_id=row, row=row))
    return out


def reference(model, tracklet, transform, bn: bool = True):
    """One tracklet in one forward: all frames through the backbone, one aggregation."""
    frames = transform([read_frame(p) for p in tracklet.frames])
    with torch.no_grad():
        out = model.aggregate(model.encode_frames(frames)[None])
    return out["bn_feat" if bn else "feat"][0].numpy()


def test_features_match_per_tracklet_reference_for_any_packing(model, tracklets, transform):
    expected = np.stack([reference(model, t, transform) for t in tracklets])
    for chunk in (2, 4, 100):  # 2: splits [7] in 4 passes, [3] in 2; 4: packs [3, 1]; 100: one pass
        feats = extract_features(model, tracklets, transform, chunk=chunk, progress=False)
        assert feats.dtype == np.float32 and feats.shape == (4, 24)
        np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5, err_msg=f"chunk={chunk}")
    # row order follows the input order
    shuffled = [tracklets[i] for i in (2, 0, 3, 1)]
    feats = extract_features(model, shuffled, transform, chunk=4, progress=False)
    np.testing.assert_allclose(feats, expected[[2, 0, 3, 1]], rtol=1e-5, atol=1e-5)


def test_pre_bn_features_and_mode_restored(model, tracklets, transform):
    model.train()
    feats = extract_features(model, tracklets[:2], transform, bn=False, progress=False)
    assert model.training, "extract_features must restore the model's mode"
    model.eval()
    np.testing.assert_allclose(feats[0], reference(model, tracklets[0], transform, bn=False), rtol=1e-5, atol=1e-5)


def test_max_frames_drops_padding_copies(model, tracklets, transform):
    """With max_frames, short tracklets are padded by the dataset; the copies must not count."""
    feats = extract_features(model, tracklets, transform, max_frames=3, progress=False)
    for i in (0, 2, 3):  # 2, 3 and 1 frames: all frames used, same as without max_frames
        np.testing.assert_allclose(feats[i], reference(model, tracklets[i], transform), rtol=1e-5, atol=1e-5)
    assert not np.allclose(feats[1], reference(model, tracklets[1], transform))  # 3 of 7 frames


def test_empty_list_gives_empty_matrix(model, transform):
    feats = extract_features(model, [], transform, progress=False)
    assert feats.shape == (0, 24) and feats.dtype == np.float32
