"""Test-time frame weights of an id_quality model on tracklets with outlier frames
(reid.studies.frame_quality): every outlier frame of the manifest is counted once per rule, the
weights are relative to uniform (they average to 1 over each tracklet)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_frame_weight_report_on_a_tiny_id_quality_run(tmp_path, tiny_synthetic_mars):
    from reid.data.noise import NoiseManifest
    from reid.engine import train
    from reid.engine.config import load_config
    from reid.studies.frame_quality import frame_weight_report, plot_frame_weights
    from reid.studies.hooks import study_hooks

    noise = {"items": [{"kind": "outlier_frames", "rate": 0.25, "source": "other_identity"}], "seed": 0}
    cfg = load_config(None, [
        f"data.root={tiny_synthetic_mars}", "data.height=64", "data.width=32", "data.p=2", "data.k=2",
        "model.aggregation=id_quality", f"noise={json.dumps(noise)}", "train.epochs=1",
        "train.iters_per_epoch=2", "train.device=cpu", "train.progress=false", "eval.untrained=false",
        "eval.chunk=8", f"output_dir={tmp_path / 'run'}",
    ])
    train(cfg, hooks=study_hooks(cfg))
    report = frame_weight_report(tmp_path / "run")
    manifest = NoiseManifest.load(tmp_path / "run" / "noise_manifest.json")
    assert report["tracklets"] == len({c.index for c in manifest.frame_changes})
    for rule in ("consensus", "confidence"):
        groups = report["values"][rule]
        assert len(groups["outlier"]) == len(manifest.frame_changes)
        summary = report["weights_relative_to_uniform"][rule]
        assert summary["outlier"]["n"] == len(manifest.frame_changes) and summary["clean"]["n"] > 0
        # relative weights: w_t * T, so over all frames of the outlier tracklets they average to 1
        values = np.concatenate([groups["clean"], groups["outlier"]])
        assert values.min() >= 0 and np.isclose(values.mean(), 1.0, atol=1e-6)
    assert plot_frame_weights(report, tmp_path / "fq.png").stat().st_size > 0
