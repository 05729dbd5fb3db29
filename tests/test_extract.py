"""Feature extraction: packing/chunking invariance, order, checkpoint round trip on tiny data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from reid.data.frames import read_frame
from reid.data.tracklet import Tracklet
from reid.data.transforms import build_clip_transform
from reid.eval.extract import extract_features, features_from_checkpoint, load_model_from_checkpoint
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


def reference(model, tracklet, transform):
    frames = transform([read_frame(p) for p in tracklet.frames])
    return model.extract(frames, chunk=1000).numpy()


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
    frames = transform([read_frame(p) for p in tracklets[0].frames])
    np.testing.assert_allclose(feats[0], model.extract(frames, bn=False).numpy(), rtol=1e-5, atol=1e-5)


def test_max_frames_drops_padding_copies(model, tracklets, transform):
    """With max_frames, short tracklets are padded by the dataset; the copies must not count."""
    feats = extract_features(model, tracklets, transform, max_frames=3, progress=False)
    for i in (0, 2, 3):  # 2, 3 and 1 frames: all frames used, same as without max_frames
        np.testing.assert_allclose(feats[i], reference(model, tracklets[i], transform), rtol=1e-5, atol=1e-5)
    assert not np.allclose(feats[1], reference(model, tracklets[1], transform))  # 3 of 7 frames


def test_empty_list_gives_empty_matrix(model, transform):
    feats = extract_features(model, [], transform, progress=False)
    assert feats.shape == (0, 24) and feats.dtype == np.float32


def _save_checkpoint(path, model, data_root):
    torch.save(
        {
            "model": model.state_dict(),
            "config": {"model": {**MODEL_CFG, "pretrained": "/no/such/imagenet.pth", "future_key": 1},
                       "data": {"root": data_root, "height": H, "width": W}},
            "num_classes": 3,
            "epoch": 1,
        },
        path,
    )


def test_features_from_checkpoint_on_tiny_mars(tmp_path, model, tiny_synthetic_mars):
    from reid.data.build import build_data

    ckpt = tmp_path / "model.pt"
    # the stored root is stale (the run was elsewhere): data_root overrides it; the stored
    # 'pretrained' path is ignored (weights come from the checkpoint), unknown keys tolerated
    _save_checkpoint(ckpt, model, "/moved/away")
    out = features_from_checkpoint(ckpt, data_root=tiny_synthetic_mars, protocol="official", device="cpu",
                                   chunk=32, progress=False)
    data = build_data(root=str(tiny_synthetic_mars), protocol="official", progress=False)
    assert out["protocol"] == "official"
    assert out["query_feats"].shape == (len(data.query), 24)
    assert out["gallery_feats"].shape == (len(data.gallery), 24)
    np.testing.assert_array_equal(out["query_pids"], [t.pid for t in data.query])
    np.testing.assert_array_equal(out["gallery_camids"], [t.camid for t in data.gallery])
    assert out["query_paths"][0] == list(data.query[0].frames)
    # each query is also a gallery entry under the official protocol: same feature
    g_index = {tuple(p): i for i, p in enumerate(out["gallery_paths"])}
    q0 = g_index[tuple(out["query_paths"][0])]
    np.testing.assert_array_equal(out["query_feats"][0], out["gallery_feats"][q0])
    # and it is the feature of the trained weights, not of a fresh model
    transform = build_clip_transform(train=False, height=H, width=W)
    np.testing.assert_allclose(out["gallery_feats"][1], reference(model, data.gallery[1], transform),
                               rtol=1e-5, atol=1e-5)


def test_checkpoint_errors_name_file_and_key(tmp_path, model):
    missing = tmp_path / "absent.pt"
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_model_from_checkpoint(missing)
    no_config = tmp_path / "no_config.pt"
    torch.save({"model": model.state_dict(), "num_classes": 3}, no_config)
    with pytest.raises(KeyError, match="no_config.pt.*'config'"):
        load_model_from_checkpoint(no_config)
    wrong = tmp_path / "wrong_arch.pt"
    torch.save({"model": model.state_dict(), "num_classes": 3,
                "config": {"model": {**MODEL_CFG, "embedding_dim": 0}, "data": {}}}, wrong)
    with pytest.raises(RuntimeError, match="wrong_arch.pt"):
        load_model_from_checkpoint(wrong)


def test_eval_cli_checkpoint_mode_round_trips_through_saved_features(tmp_path, model, tiny_synthetic_mars):
    """tools/eval.py --checkpoint extracts, scores, saves the npz and draws ranked lists; scoring
    the saved npz with --features gives the same numbers."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    ckpt, npz, vis = tmp_path / "model.pt", tmp_path / "feats.npz", tmp_path / "vis"
    _save_checkpoint(ckpt, model, str(tiny_synthetic_mars))

    def run(*args):
        res = subprocess.run([sys.executable, str(repo / "tools" / "eval.py"), *args, "--json"],
                             capture_output=True, text=True, cwd=repo, timeout=300)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    from_ckpt = run("--checkpoint", str(ckpt), "--protocol", "torchreid", "--device", "cpu",
                    "--save-features", str(npz), "--visualize", "2", "--out", str(vis))
    from_npz = run("--features", str(npz), "--protocol", "torchreid")
    assert from_ckpt["protocol"] == "torchreid" and from_ckpt["queries"] > 0
    for key in ("mAP", "rank1", "rank5", "mINP", "queries", "queries_without_match"):
        assert from_ckpt[key] == pytest.approx(from_npz[key])
    with np.load(npz) as saved:
        assert saved["query_feats"].shape == (from_ckpt["queries"], 24)
        assert len(saved["gallery_pids"]) == len(saved["gallery_feats"])
    assert len(list(vis.glob("*.png"))) == 2
