"""Re-evaluation from a checkpoint (``reid.engine.evaluation``): the model and the data are
rebuilt from the run's own config; errors name the file and the key; ``tools/eval.py
--checkpoint`` round-trips through saved features and reproduces the run's final mAP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.data.transforms import build_clip_transform
from reid.engine.evaluation import features_from_checkpoint, load_model_from_checkpoint
# the extraction tests' model fixture and one-forward reference (same model, same frames size)
from test_eval_extract import MODEL_CFG, H, W, model, reference  # noqa: F401


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_eval_cli_reproduces_the_runs_final_map_on_a_non_default_synthetic_dataset(tmp_path):
    """A run trained on a non-default synthetic dataset (``data.synthetic`` set, ``root: null``)
    is re-evaluated by ``tools/eval.py --checkpoint`` on that same dataset, with the run's own
    evaluation settings: the mAP equals the run's final mAP. (The checkpoint path used to rebuild
    the data without ``data.synthetic`` / ``data.format`` and so scored the default dataset.)"""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from reid.engine import train
    from reid.engine.config import load_config

    repo = Path(__file__).resolve().parents[1]
    synthetic = {"out": str(tmp_path / "other_synthetic"), "ids_train": 5, "ids_test": 5, "cameras": 2,
                 "seed": 3, "tiny": True}
    cfg = load_config(None, [
        "data.root=null", f"data.synthetic={json.dumps(synthetic)}", "data.height=64", "data.width=32",
        "data.clip_length=2", "data.p=2", "data.k=2", "model.classifier=cosine", "train.epochs=1",
        "train.iters_per_epoch=2", "train.device=cpu", "train.progress=false", "eval.untrained=false",
        "eval.chunk=8", "eval.max_frames=3", f"output_dir={tmp_path / 'run'}",
    ])
    final = train(cfg)
    res = subprocess.run([sys.executable, str(repo / "tools" / "eval.py"), "--checkpoint",
                          str(tmp_path / "run" / "last.pt"), "--protocol", "official", "--device", "cpu",
                          "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    again = json.loads(res.stdout)
    assert again["queries"] == final["final"]["queries"]
    assert again["mAP"] == pytest.approx(final["final"]["mAP"], abs=1e-6)
    assert again["rank1"] == pytest.approx(final["final"]["rank1"], abs=1e-6)
