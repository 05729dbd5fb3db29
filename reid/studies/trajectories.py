"""Per-example trajectories of a noisy-label run: ``p_i`` and ``w_i`` of every training example at
every evaluation, the clean/noisy mask, and the two summaries that decide memorisation.

* ``p_i``: eval-mode probability of the example's *training* label (no augmentation);
  ``w_i`` the L1 norm of its logit gradient under the id loss (:func:`reid.losses.example_weights_of`:
  ``w(p_i)`` of the loss's ``weight_scheme``, or the closed form for losses off CCE's direction).
* ``auc_p`` / ``auc_w``: the probability that a random noisy example has a lower ``p`` (a lower
  ``w``) than a random clean one, ties counted half (Mann-Whitney U / (n_noisy n_clean)).
  0.5 = no separation; 1 = every noisy example below every clean one. ``auc_w`` > 0.5 means the
  scheme gives the noisy subset *less* weight than the clean one.
* ``grad_share_noisy``: per training epoch, the mean over batches of
  ``sum_{i noisy} w_i / sum_i w_i``, the share of the batch's total gradient magnitude that goes to
  noisy examples (the logit gradient's L1 norm is ``w_i / Z``, docs/weighting.md, so ``Z`` cancels).
  With equal weights it equals the noisy frequency of the batch (``batch_noisy_frac``).

Stored as ``trajectories.npz`` (``epochs [E]``, ``p [E, N]`` and ``w [E, N]`` float32,
``noisy_mask [N]``, ``train_labels [N]``, ``share_epochs [T]``, ``grad_share_noisy [T]``,
``batch_noisy_frac [T]``), compressed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def auc_lower(noisy_scores, clean_scores) -> float:
    """P(noisy score < clean score) + 0.5 P(tie): the AUC of "a low score flags a noisy example".
    ``nan`` when either group is empty."""
    a = np.asarray(noisy_scores, dtype=np.float64).reshape(-1)
    b = np.asarray(clean_scores, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        return float("nan")
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size, dtype=np.float64)
    sorted_vals = both[order]
    # average ranks of ties (1-based)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    ends = np.r_[starts[1:], both.size]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    u_clean = ranks[a.size:].sum() - b.size * (b.size + 1) / 2.0  # clean ranked above noisy
    return float(u_clean / (a.size * b.size))


def noisy_share(w, noisy) -> float:
    """``sum_{noisy} w_i / sum_i w_i`` (``nan`` when the weights sum to 0)."""
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    noisy = np.asarray(noisy, dtype=bool).reshape(-1)
    total = w.sum()
    return float(w[noisy].sum() / total) if total > 0 else float("nan")


class TrajectoryRecorder:
    """Collects the batch shares during training and ``p_i``/``w_i`` at each evaluation."""

    def __init__(self, noisy_mask, train_labels) -> None:
        self.noisy_mask = np.asarray(noisy_mask, dtype=bool).reshape(-1)
        self.train_labels = np.asarray(train_labels, dtype=np.int64).reshape(-1)
        self.epochs: list[int] = []
        self.p: list[np.ndarray] = []
        self.w: list[np.ndarray] = []
        self.share_epochs: list[int] = []
        self.shares: list[float] = []
        self.batch_noisy: list[float] = []
        self._batch_shares: list[float] = []
        self._batch_frac: list[float] = []

    def restrict(self, keep_index) -> None:
        """Keep only the examples ``keep_index`` (the training set after a validation carve)."""
        keep = np.asarray(keep_index, dtype=np.int64)
        self.noisy_mask, self.train_labels = self.noisy_mask[keep], self.train_labels[keep]

    def add_batch(self, w, noisy) -> None:
        noisy = np.asarray(noisy, dtype=bool)
        share = noisy_share(w, noisy)
        if np.isfinite(share):
            self._batch_shares.append(share)
            self._batch_frac.append(float(noisy.mean()))

    def close_epoch(self, epoch: int) -> float:
        """Record the epoch's mean batch share; returns it (``nan`` without batches)."""
        share = float(np.mean(self._batch_shares)) if self._batch_shares else float("nan")
        frac = float(np.mean(self._batch_frac)) if self._batch_frac else float("nan")
        self._batch_shares, self._batch_frac = [], []
        self.share_epochs.append(int(epoch))
        self.shares.append(share)
        self.batch_noisy.append(frac)
        return share

    def add_evaluation(self, epoch: int, p, w) -> dict:
        """Store ``p_i``, ``w_i`` of every training example; returns that evaluation's summary."""
        p = np.asarray(p, dtype=np.float32).reshape(-1)
        w = np.asarray(w, dtype=np.float32).reshape(-1)
        if p.shape[0] != self.noisy_mask.shape[0] or w.shape[0] != p.shape[0]:
            raise ValueError(f"trajectories: {p.shape[0]} p / {w.shape[0]} w values for "
                             f"{self.noisy_mask.shape[0]} training examples")
        self.epochs.append(int(epoch))
        self.p.append(p)
        self.w.append(w)
        return summarize(p, w, self.noisy_mask)

    def curves(self) -> dict:
        """Per evaluation ``epoch, auc_p, auc_w, mean_p_clean/noisy, mean_w_clean/noisy`` and per
        training epoch ``share_epoch, grad_share_noisy, batch_noisy_frac`` (lists)."""
        rows = [summarize(p, w, self.noisy_mask) for p, w in zip(self.p, self.w)]
        out = {"epoch": list(self.epochs)}
        for key in ("auc_p", "auc_w", "mean_p_clean", "mean_p_noisy", "mean_w_clean", "mean_w_noisy"):
            out[key] = [r[key] for r in rows]
        out.update(share_epoch=list(self.share_epochs), grad_share_noisy=list(self.shares),
                   batch_noisy_frac=list(self.batch_noisy))
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        n = self.noisy_mask.shape[0]
        np.savez_compressed(
            path, epochs=np.asarray(self.epochs, dtype=np.int64),
            p=np.stack(self.p) if self.p else np.zeros((0, n), np.float32),
            w=np.stack(self.w) if self.w else np.zeros((0, n), np.float32),
            noisy_mask=self.noisy_mask, train_labels=self.train_labels,
            share_epochs=np.asarray(self.share_epochs, dtype=np.int64),
            grad_share_noisy=np.asarray(self.shares, dtype=np.float64),
            batch_noisy_frac=np.asarray(self.batch_noisy, dtype=np.float64))
        return path


def summarize(p, w, noisy_mask) -> dict:
    noisy = np.asarray(noisy_mask, dtype=bool)

    def mean(v, sel):
        return float(v[sel].mean()) if sel.any() else float("nan")

    return {"auc_p": auc_lower(p[noisy], p[~noisy]), "auc_w": auc_lower(w[noisy], w[~noisy]),
            "mean_p_clean": mean(p, ~noisy), "mean_p_noisy": mean(p, noisy),
            "mean_w_clean": mean(w, ~noisy), "mean_w_noisy": mean(w, noisy)}


def memorisation_onset(history: list[dict], threshold: float, key: str = "noisy_fit") -> int | None:
    """The first evaluation epoch whose ``key`` (noisy-subset fit) exceeds ``threshold``; None when
    none does within the run (the budget is then the bound: "not before epoch E")."""
    for rec in history:
        v = rec.get(key)
        if v is not None and np.isfinite(v) and v > threshold:
            return int(rec["epoch"])
    return None


__all__ = ["auc_lower", "noisy_share", "TrajectoryRecorder", "summarize", "memorisation_onset"]
