"""Figures of the robustness study (matplotlib, Agg backend: no display needed).

* :func:`plot_pw_distributions` -- per epoch, histograms of ``p_i`` and ``w_i`` for clean vs
  noisy examples: the slides' "ideal learning process" figure (a robust scheme keeps the noisy
  examples' ``p_i`` low and their weight small while the clean examples' ``p_i`` moves to 1).
* :func:`plot_metric_vs_rate` -- test metric against noise rate, one line per scheme.
* :func:`plot_weight_curves` -- ``w(p)`` of the schemes used, straight from ``reid.weighting``.
* :func:`plot_final_p_histograms` -- one panel per scheme, clean vs noisy ``p_i`` at one epoch.

Histogram records are dicts with keys ``epoch``, ``p_edges``, ``p_hist_clean``, ``p_hist_noisy``,
``w_edges``, ``w_hist_clean``, ``w_hist_noisy`` (written by the classification study and by
``NoiseHook``).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reid.studies.schemes import weight_scheme_of  # noqa: E402

CLEAN_COLOR, NOISY_COLOR = "tab:blue", "tab:red"


def _save(fig, path: str | Path, title: str | None = None) -> Path:
    """Title, tighten, write (creating the folder) and close ``fig``; returns the path."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _density(counts) -> np.ndarray:
    c = np.asarray(counts, dtype=float)
    return c / c.sum() if c.sum() > 0 else c


def _bar(ax, edges, counts, color, label):
    edges = np.asarray(edges, dtype=float)
    ax.stairs(_density(counts), edges, fill=True, alpha=0.45, color=color, label=label)


def plot_pw_distributions(records: list[dict], path: str | Path, title: str = "", max_epochs: int = 6) -> Path:
    """Rows = epochs (at most ``max_epochs``, evenly spaced, last included); columns = ``p_i`` and
    ``w_i``; clean (blue) vs noisy (red) histograms, each normalised to sum 1."""
    if not records:
        raise ValueError("plot_pw_distributions: no per-epoch histogram records")
    pick = np.unique(np.linspace(0, len(records) - 1, min(max_epochs, len(records))).round().astype(int))
    recs = [records[i] for i in pick]
    fig, axes = plt.subplots(len(recs), 2, figsize=(8, 1.9 * len(recs) + 0.6), squeeze=False)
    for row, r in enumerate(recs):
        for col, key in enumerate(("p", "w")):
            ax = axes[row, col]
            _bar(ax, r[f"{key}_edges"], r[f"{key}_hist_clean"], CLEAN_COLOR, "clean")
            _bar(ax, r[f"{key}_edges"], r[f"{key}_hist_noisy"], NOISY_COLOR, "noisy")
            ax.set_ylabel(f"epoch {r['epoch']}", fontsize=8)
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title("$p_i$ (prob. of the training label)" if key == "p" else "$w_i$ (example weight)", fontsize=9)
                ax.legend(fontsize=7)
    return _save(fig, path, title)


def plot_metric_vs_rate(rows: list[dict], metric: str, path: str | Path, ylabel: str | None = None) -> Path:
    """``rows``: dicts with ``scheme``, ``noise_rate``, ``seed`` and ``metric``; mean +- std over
    seeds per (scheme, rate)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    for s in schemes:
        rates = sorted({r["noise_rate"] for r in rows if r["scheme"] == s})
        vals = [[r[metric] for r in rows if r["scheme"] == s and r["noise_rate"] == x] for x in rates]
        mean = [float(np.mean(v)) for v in vals]
        std = [float(np.std(v)) for v in vals]
        ax.errorbar(rates, mean, yerr=std, marker="o", capsize=3, label=s)
    ax.set_xlabel("noise rate")
    ax.set_ylabel(ylabel or metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_weight_curves(schemes: list[tuple[str, str, dict]], path: str | Path) -> Path:
    """``schemes``: ``(display, scheme_name, params)``; left raw ``w(p)``, right ``w(p) / max w``
    (the emphasis shape, what batch-sum normalisation leaves). Each curve is the ``w(p)`` of the
    loss's own ``weight_scheme`` (:func:`reid.studies.schemes.weight_scheme_of`)."""
    import torch

    p = np.linspace(0.0, 1.0, 401)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for display, name, params in schemes:
        scheme = weight_scheme_of(name, params)
        if scheme is None:  # not along CCE's direction: measured in plot_emphasis_densities
            continue
        w = scheme.w(torch.as_tensor(p, dtype=torch.float64)).numpy()
        label = f"{display} (mode {scheme.mode():.2f})"
        axes[0].plot(p, w, label=label)
        axes[1].plot(p, w / max(w.max(), 1e-12), label=label)
    axes[0].set_title("w(p): L1 norm of the logit gradient")
    axes[1].set_title("w(p) / max w: emphasis shape")
    for ax in axes:
        ax.set_xlabel("p = probability of the labelled class")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def binned_weights(p: np.ndarray, w: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin centres of ``p`` and the median, 25th and 75th percentile of ``w`` per bin (nan where
    a bin is empty): the empirical emphasis density of a loss."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    med, lo, hi = (np.full(bins, np.nan) for _ in range(3))
    for b in range(bins):
        sel = w[idx == b]
        if sel.size:
            lo[b], med[b], hi[b] = np.percentile(sel, [25, 50, 75])
    return (edges[:-1] + edges[1:]) / 2, med, lo, hi


def plot_emphasis_densities(schemes: list[tuple[str, str, dict]], measured: dict[str, tuple[np.ndarray, np.ndarray]],
                            path: str | Path, title: str = "") -> Path:
    """One figure for every loss of a study, in the weighting lens (docs/methods.md §1, §6).

    Left: ``w(p) / max w`` of each loss whose logit gradient lies along CCE's direction (its
    ``weight_scheme``). Right: the *measured* weight, ``w_i`` = L1 norm of each training example's
    logit gradient against its ``p_i`` (pooled over a run's evaluations, ``measured``: display ->
    ``(p, w)``), as the median and inter-quartile band per p-bin, scaled by the loss's largest
    median - for the losses without a ``w(p)`` (NCE+RCE, bootstrapping, label smoothing) this is
    the only emphasis density there is; for the others it checks the curve on the left."""
    import torch

    p = np.linspace(0.0, 1.0, 401)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    names = list(dict.fromkeys([d for d, _, _ in schemes] + list(measured)))
    # one colour per loss in both panels: the 10 dark tab20 hues, then the light ones dashed
    style = {d: {"color": plt.cm.tab20((2 * i) % 20 + (i // 10) % 2), "linestyle": "-" if i < 10 else "--"}
             for i, d in enumerate(names)}
    for display, name, params in schemes:
        scheme = weight_scheme_of(name, params)
        if scheme is not None:
            w = scheme.w(torch.as_tensor(p, dtype=torch.float64)).numpy()
            axes[0].plot(p, w / max(w.max(), 1e-12), label=f"{display} (mode {scheme.mode():.2f})", **style[display])
    for display, (pi, wi) in measured.items():
        centre, med, lo, hi = binned_weights(np.asarray(pi, np.float64), np.asarray(wi, np.float64))
        scale = np.nanmax(med) if np.isfinite(med).any() and np.nanmax(med) > 0 else 1.0
        axes[1].plot(centre, med / scale, marker=".", label=display, **style[display])
        axes[1].fill_between(centre, lo / scale, hi / scale, color=style[display]["color"], alpha=0.12)
    axes[1].set_ylim(0, 1.6)
    axes[0].set_title("w(p) / max w (losses along CCE's direction)", fontsize=9)
    axes[1].set_title("measured |dL/dz_i|_1 vs p_i (median, IQR), / max median", fontsize=9)
    for ax in axes:
        ax.set_xlabel("p = probability of the labelled class")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return _save(fig, path, title)


def plot_final_p_histograms(per_scheme: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """``per_scheme``: display name -> one histogram record; clean vs noisy ``p_i``."""
    n = len(per_scheme)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, r) in zip(axes.flat, per_scheme.items()):
        _bar(ax, r["p_edges"], r["p_hist_clean"], CLEAN_COLOR, "clean")
        _bar(ax, r["p_edges"], r["p_hist_noisy"], NOISY_COLOR, "noisy")
        ax.set_title(f"{name} (epoch {r['epoch']})", fontsize=9)
        ax.set_xlabel("$p_i$", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    return _save(fig, path, title)


__all__ = ["plot_pw_distributions", "plot_metric_vs_rate", "plot_weight_curves", "plot_final_p_histograms",
           "plot_emphasis_densities", "binned_weights"]
