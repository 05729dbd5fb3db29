"""Extraction with backbone batches filled across tracklets (issue 14, goal 3): the frame stream
and its chunks, and features equal to one forward + one aggregation per tracklet (to float
rounding) for every aggregation, all frames or ``max_frames``, any chunk size, with workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.data.frame_chunks import FrameChunks
from reid.data.frames import read_frame
from reid.data.transforms import build_clip_transform
from reid.eval.extract import extract_features
from reid.models import build_model
from test_eval_extract import H, W, transform, tracklets  # noqa: F401  (module fixtures)

LENGTHS = [2, 7, 3, 1]  # the tracklets fixture of test_eval_extract


def reference(model, tracklet, tf, max_frames=None, bn=True):
    """Today's semantics: one tracklet, its (evenly spaced) frames in one forward, one aggregation."""
    frames = [read_frame(p) for p in tracklet.frames]
    if max_frames and len(frames) > max_frames:
        idx = FrameChunks([tracklet], tf, 1, max_frames=max_frames).selected[0]
        frames = [frames[i] for i in idx]
    with torch.no_grad():
        out = model.aggregate(model.encode_frames(tf(frames))[None])
    return out["bn_feat" if bn else "feat"][0].numpy()


def test_stream_parts_and_completion(tracklets, transform):  # noqa: F811
    chunks = FrameChunks(tracklets, transform, chunk=3)
    assert chunks.lengths.tolist() == LENGTHS and chunks.total_frames == 13 and len(chunks) == 5
    assert chunks.parts(0)[0][0] == 0 and [r for r, _ in chunks.parts(0)] == [0, 1]
    assert [idx.tolist() for _, idx in chunks.parts(1)] == [[1, 2, 3]]  # tracklet 1, frames 1-3
    assert [chunks.completed_by(c) for c in range(5)] == [1, 1, 2, 3, 4]
    seen = [(r, int(i)) for c in range(len(chunks)) for r, idx in chunks.parts(c) for i in idx]
    assert seen == [(r, i) for r, n in enumerate(LENGTHS) for i in range(n)], "every frame once, in order"
    item = chunks[4]
    assert item["frames"].shape == (1, 3, H, W) and item["frames"].dtype == torch.uint8 and item["start"] == 12
    evenly = FrameChunks(tracklets, transform, chunk=4, max_frames=3)
    assert evenly.lengths.tolist() == [2, 3, 3, 1], "padding copies are not in the stream"
    with pytest.raises(IndexError):
        chunks[5]


@pytest.mark.parametrize("aggregation", ["mean", "max", "quality", "id_quality", "attention"])
def test_features_equal_per_tracklet_reference(aggregation, tracklets, transform):  # noqa: F811
    torch.manual_seed(0)
    model = build_model({"backbone": "resnet18", "aggregation": aggregation, "embedding_dim": 16,
                         "classifier": "cosine"}, 3).eval()
    with torch.no_grad():
        model.bnneck.bn.running_mean.uniform_(-0.3, 0.3)
    for max_frames in (None, 3):
        expected = np.stack([reference(model, t, transform, max_frames) for t in tracklets])
        for chunk in (1, 3, 100):  # 1: every frame alone; 3: tracklets split and sharing forwards; 100: one forward
            feats = extract_features(model, tracklets, transform, chunk=chunk, max_frames=max_frames, progress=False)
            np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{aggregation} chunk={chunk} max_frames={max_frames}")


def test_workers_bn_false_and_float_fallback(tracklets, transform):  # noqa: F811
    torch.manual_seed(1)
    model = build_model({"backbone": "resnet18", "aggregation": "mean", "embedding_dim": 16}, 3).eval()
    ref = extract_features(model, tracklets, transform, chunk=3, progress=False)
    np.testing.assert_array_equal(extract_features(model, tracklets, transform, chunk=3, num_workers=2,
                                                   progress=False), ref)
    pre_bn = extract_features(model, tracklets, transform, chunk=3, bn=False, progress=False)
    np.testing.assert_allclose(pre_bn[1], reference(model, tracklets[1], transform, bn=False), rtol=1e-5, atol=1e-5)
    # a transform without a uint8 variant (other mean/std): normalised on the CPU, same stream
    other = build_clip_transform(False, height=H, width=W, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert FrameChunks(tracklets, other, 3)[0]["frames"].dtype == torch.float32
    np.testing.assert_allclose(extract_features(model, tracklets, other, chunk=3, progress=False),
                               np.stack([reference(model, t, other) for t in tracklets]), rtol=1e-5, atol=1e-5)
