"""Test-time frame weights of a trained ``id_quality`` model on tracklets with outlier frames.

Issue 10, fix 3: frame quality at test time must down-weight frames that disagree with the rest
of the tracklet. This measures it on the run's own noisy training tracklets (the noise manifest
says which frames are outliers, i.e. another person's crops put into the tracklet): every such
tracklet goes through the trained model in eval mode (all its frames, the test transform), and
the aggregation's frame weights are read, for each test-time identity rule of
:class:`reid.models.aggregation.IDQualityAggregator` (``consensus``, the default, and the earlier
``confidence`` proxy). Weights are reported relative to uniform (``w_t * T``: 1 = the mean's
weight), separately for clean and outlier frames.

    python -m reid.studies.frame_quality RUN_DIR --out docs/img/frame_quality.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def frame_weight_report(run_dir: str | Path, checkpoint: str = "last.pt") -> dict:
    """Relative test-time frame weights (clean vs outlier frames) of the run in ``run_dir``,
    which must have been trained with ``model.aggregation: id_quality`` and an
    ``outlier_frames`` noise item (its ``noise_manifest.json`` lists the outlier frames)."""
    from reid.data.frames import read_frame
    from reid.data.noise import NoiseManifest, apply_manifest
    from reid.engine import builders
    from reid.engine.evaluation import load_model_from_checkpoint, run_settings_of

    run_dir = Path(run_dir)
    model, ckpt = load_model_from_checkpoint(run_dir / checkpoint)
    aggregator = model.aggregator
    if not hasattr(aggregator, "test_identity"):
        raise ValueError(f"{run_dir}: the model's aggregation is not id_quality")
    manifest = NoiseManifest.load(run_dir / "noise_manifest.json")
    if not manifest.frame_changes:
        raise ValueError(f"{run_dir}: the noise manifest lists no outlier frames")
    data_cfg, _ = run_settings_of(ckpt)
    data = builders.build_data(data_cfg, progress=False)
    train = apply_manifest(data.train, manifest)
    transform = builders.build_test_transform(data_cfg)
    outliers: dict[int, set[int]] = {}
    for change in manifest.frame_changes:
        outliers.setdefault(change.index, set()).add(change.position)
    rows = {rule: {"clean": [], "outlier": []} for rule in ("consensus", "confidence")}
    for index, positions in sorted(outliers.items()):
        tracklet = train[index]
        frames = transform([read_frame(p) for p in tracklet.frames])[None]
        mask = torch.ones(frames.shape[:2], dtype=torch.bool)
        is_outlier = np.array([t in positions for t in range(frames.shape[1])])
        for rule in rows:
            aggregator.test_identity = rule
            weights = model(frames, mask)["frame_weights"][0].double().numpy() * frames.shape[1]
            rows[rule]["clean"].extend(weights[~is_outlier].tolist())
            rows[rule]["outlier"].extend(weights[is_outlier].tolist())
    aggregator.test_identity = "consensus"

    def summary(values: list[float]) -> dict:
        v = np.asarray(values)
        return {"n": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)),
                "q10": float(np.quantile(v, 0.1)), "q90": float(np.quantile(v, 0.9))}

    return {
        "run": str(run_dir),
        "tracklets": len(outliers),
        "weights_relative_to_uniform": {rule: {k: summary(v) for k, v in groups.items()} for rule, groups in rows.items()},
        "values": rows,
    }


def plot_frame_weights(report: dict, path: str | Path) -> Path:
    """Histograms of relative frame weights, clean vs outlier, one panel per test-time rule."""
    import matplotlib.pyplot as plt

    from reid.studies.plots import _save  # the studies' one figure writer (Agg backend)

    rules = list(report["values"])
    fig, axes = plt.subplots(1, len(rules), figsize=(4.5 * len(rules), 3.4), sharey=True)
    bins = np.linspace(0.0, max(max(max(v) for v in g.values()) for g in report["values"].values()) * 1.02, 31)
    for ax, rule in zip(np.atleast_1d(axes), rules):
        for kind, colour in (("clean", "tab:green"), ("outlier", "tab:red")):
            values = report["values"][rule][kind]
            mean = np.mean(values)
            ax.hist(values, bins=bins, alpha=0.6, color=colour, density=True,
                    label=f"{kind} frames (n={len(values)}, mean {mean:.2f})")
        ax.axvline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_title(f"test-time identity: {rule}")
        ax.set_xlabel("frame weight x T (1 = mean pooling)")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("density")
    return _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reid.studies.frame_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run trained with model.aggregation=id_quality and outlier_frames noise")
    parser.add_argument("--out", type=Path, default=None, help="PNG of the clean vs outlier weight histograms")
    parser.add_argument("--json", type=Path, default=None, help="write the summary (without per-frame values) here")
    args = parser.parse_args(argv)
    report = frame_weight_report(args.run_dir)
    summary = {k: v for k, v in report.items() if k != "values"}
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.out is not None:
        print(f"figure: {plot_frame_weights(report, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
