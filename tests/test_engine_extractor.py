"""``reid.FeatureExtractor`` (issue 12): features equal the trainer's own evaluation features on
the same checkpoint (``features_from_checkpoint``), bit for bit; frame arrays, path lists and a
folder of tracklet folders give the same vectors; errors name the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import reid
from reid.data.frames import read_frame
from reid.engine.evaluation import features_from_checkpoint
from reid.engine.extractor import ExtractorInputError, FeatureExtractor
from reid.errors import UserError
from test_eval_extract import MODEL_CFG, H, W, model  # noqa: F401


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model, tiny_synthetic_mars):  # noqa: F811
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.save({"model": model.state_dict(), "num_classes": 3, "epoch": 1,
                "config": {"model": dict(MODEL_CFG), "data": {"root": str(tiny_synthetic_mars), "height": H,
                                                                "width": W},
                           "eval": {"max_frames": 4, "chunk": 8}}}, path)
    return path


@pytest.fixture(scope="module")
def reference(checkpoint):
    return features_from_checkpoint(checkpoint, device="cpu", progress=False)


def _distinct(out):
    """The distinct test tracklets in the order the evaluation extracts them (queries, then gallery)."""
    seen, order = set(), []
    for frames in [*out["query_paths"], *out["gallery_paths"]]:
        if tuple(frames) not in seen:
            seen.add(tuple(frames))
            order.append(frames)
    return order


@pytest.mark.slow  # the module's checkpoint + tiny dataset fixtures: ~15 s on 2 cores
def test_features_equal_the_evaluation_features_bit_for_bit(checkpoint, reference):
    extractor = reid.FeatureExtractor(checkpoint, device="cpu")
    assert extractor.settings["max_frames"] == 4 and extractor.settings["chunk"] == 8  # the run's eval settings
    tracklets = _distinct(reference)
    feats = extractor(tracklets)
    by_frames = {tuple(t): f for t, f in zip(tracklets, feats)}
    np.testing.assert_array_equal(np.stack([by_frames[tuple(t)] for t in reference["gallery_paths"]]),
                                  reference["gallery_feats"])
    np.testing.assert_array_equal(np.stack([by_frames[tuple(t)] for t in reference["query_paths"]]),
                                  reference["query_feats"])
    # another grouping of the same tracklets (gallery only, other packing): equal to 1e-6
    np.testing.assert_allclose(extractor(reference["gallery_paths"]), reference["gallery_feats"], atol=1e-6, rtol=0)


@pytest.mark.slow  # the module's checkpoint + tiny dataset fixtures: ~15 s on 2 cores
def test_one_tracklet_arrays_and_paths_agree(checkpoint, reference):
    extractor = FeatureExtractor(checkpoint, device="cpu", chunk=3)
    paths = reference["gallery_paths"][0]
    one = extractor(paths)
    assert one.shape == (extractor.feat_dim,)
    frames = np.stack([read_frame(p) for p in paths])  # [T, H, W, 3] uint8
    np.testing.assert_array_equal(extractor(frames), one)
    both = extractor([frames, [Path(p) for p in reference["gallery_paths"][1]]])
    np.testing.assert_allclose(both[0], one, atol=1e-6, rtol=0)  # packed with another tracklet: ULPs
    np.testing.assert_allclose(both[1], extractor(reference["gallery_paths"][1]), atol=1e-6, rtol=0)


@pytest.mark.slow  # the module's checkpoint + tiny dataset fixtures: ~15 s on 2 cores
def test_folder_of_tracklet_folders(checkpoint, reference, tmp_path):
    import shutil

    for name, frames in (("b_second", reference["gallery_paths"][1]), ("a_first", reference["gallery_paths"][0])):
        (tmp_path / name).mkdir()
        for i, f in enumerate(frames):
            shutil.copy(f, tmp_path / name / f"{i:04d}{Path(f).suffix}")
    extractor = FeatureExtractor(checkpoint, device="cpu")
    names, feats = extractor.folder(tmp_path)
    assert names == ["a_first", "b_second"] and feats.shape == (2, extractor.feat_dim)
    np.testing.assert_allclose(feats, reference["gallery_feats"][:2], atol=1e-6, rtol=0)


def test_a_bare_model_and_input_errors(model, tmp_path):  # noqa: F811
    extractor = FeatureExtractor(model, device="cpu", height=H, width=W, max_frames=2)
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 20, 3), dtype=np.uint8)
    assert extractor(frames).shape == (24,)
    with pytest.raises(ExtractorInputError, match=r"tracklet 0: frame arrays must be \[T, H, W, 3\] uint8"):
        extractor([frames.astype(np.float32)])
    with pytest.raises(ExtractorInputError, match="frame not found: .*nope.jpg"):
        extractor([str(tmp_path / "nope.jpg")])
    with pytest.raises(UserError, match=r"use extractor\.folder"):
        extractor(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExtractorInputError, match="empty: no frames"):
        extractor.folder(tmp_path)
    with pytest.raises(ExtractorInputError, match="not a folder"):
        extractor.folder(tmp_path / "absent")
