"""Figures of the per-example trajectories (:mod:`reid.studies.trajectories`).

* :func:`plot_trajectory_bands` -- ``p_i`` and ``w_i`` over evaluation epochs, clean vs noisy:
  the median line with the 10-90 % band of each subset.
* :func:`plot_detection_curves` -- per scheme, ``auc_p`` and ``auc_w`` over evaluations and the
  noisy examples' share of the batch's gradient magnitude over epochs (dashed: their frequency,
  the share equal weights would give).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid.studies.plots import CLEAN_COLOR, NOISY_COLOR, _save, plt


def plot_trajectory_bands(npz_path: str | Path, path: str | Path, title: str = "") -> Path | None:
    """Median and 10-90 % band of ``p_i`` and ``w_i`` per subset; None when nothing was recorded."""
    z = np.load(npz_path)
    epochs, p, w, noisy = z["epochs"], z["p"], z["w"], z["noisy_mask"].astype(bool)
    if epochs.size == 0:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, values, name in ((axes[0], p, "$p_i$ (training label, eval mode)"), (axes[1], w, "$w_i = w(p_i)$")):
        for sel, color, label in ((~noisy, CLEAN_COLOR, "clean"), (noisy, NOISY_COLOR, "noisy")):
            if not sel.any():
                continue
            lo, mid, hi = np.percentile(values[:, sel], [10, 50, 90], axis=1)
            ax.plot(epochs, mid, color=color, label=f"{label} (median, n={int(sel.sum())})")
            ax.fill_between(epochs, lo, hi, color=color, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend(fontsize=7)
    return _save(fig, path, title)


def plot_detection_curves(curves: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """``curves``: display name -> :meth:`TrajectoryRecorder.curves` output."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for k, (name, c) in enumerate(curves.items()):
        # 10 dark tab20 hues, then the light ones: one distinct colour per loss up to 20
        color = plt.cm.tab20((2 * k) % 20 + (k // 10) % 2)
        axes[0].plot(c["epoch"], c["auc_p"], color=color, marker=".", ms=3, lw=1, label=name)
        axes[1].plot(c["epoch"], c["auc_w"], color=color, marker=".", ms=3, lw=1, label=name)
        axes[2].plot(c["share_epoch"], c["grad_share_noisy"], color=color, marker=".", ms=3, lw=1, label=name)
        axes[2].plot(c["share_epoch"], c["batch_noisy_frac"], color="grey", ls=":", lw=0.6)
    for ax, label in zip(axes, ("AUC of low $p_i$ for noisy", "AUC of low $w_i$ for noisy",
                                "noisy share of gradient magnitude")):
        ax.axhline(0.5 if "AUC" in label else np.nan, color="grey", lw=0.5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    axes[2].legend(fontsize=6, loc="lower right", ncol=2)  # dotted grey: the batches' noisy frequency
    return _save(fig, path, title)


__all__ = ["plot_trajectory_bands", "plot_detection_curves"]
