"""The three-number robustness report of docs/methods.md §5, computed from training-set predictions.

Papers on noisy labels (IMAE, DM, ProSelfLC) report, besides test performance:

* ``noisy_fit`` -- accuracy on the *noisy* training subset measured **against its noisy labels**:
  how much of the corruption the model memorised (noise tolerance; **lower is better**);
* ``clean_fit`` -- accuracy on the *clean* training subset (learning ability; higher is better);
* ``correction_rate`` -- fraction of the noisy subset predicted as its **true** label (the model
  "corrects" the label; higher is better);
* ``train_acc`` -- accuracy on the whole training set against the (noisy) labels it was trained on.

Predictions must come from the model in eval mode without augmentation (the trainer's
``predict_train_split``), otherwise the fit numbers measure augmentation, not memorisation.
"""

from __future__ import annotations

import numpy as np


def fit_report(pred_labels, noisy_labels, true_labels, noisy_mask) -> dict[str, float]:
    """Noisy-subset fit, clean-subset fit, correction rate and overall training accuracy.

    Args:
        pred_labels: predicted class per training example ``[N]`` (argmax of the logits).
        noisy_labels: the labels the model was trained on ``[N]``.
        true_labels: the true labels ``[N]``.
        noisy_mask: bool ``[N]``, True where the training label was corrupted.

    Returns fractions in [0, 1]; a subset that is empty gives ``nan`` (not 0, which would read as
    a result), and the counts ``num_noisy`` / ``num_clean`` are included so readers can tell.
    """
    pred = np.asarray(pred_labels).reshape(-1)
    noisy = np.asarray(noisy_labels).reshape(-1)
    true = np.asarray(true_labels).reshape(-1)
    mask = np.asarray(noisy_mask, dtype=bool).reshape(-1)
    n = pred.shape[0]
    for name, arr in (("noisy_labels", noisy), ("true_labels", true), ("noisy_mask", mask)):
        if arr.shape[0] != n:
            raise ValueError(f"fit_report: {name} has {arr.shape[0]} entries, pred_labels has {n}")
    inconsistent = np.flatnonzero((noisy != true) & ~mask)
    if inconsistent.size:
        i = int(inconsistent[0])
        raise ValueError(
            f"fit_report: example {i} has noisy label {int(noisy[i])} != true label {int(true[i])} "
            "but is not in noisy_mask"
        )

    def frac(sel: np.ndarray) -> float:
        return float(sel.mean()) if sel.size else float("nan")

    return {
        "noisy_fit": frac(pred[mask] == noisy[mask]),
        "clean_fit": frac(pred[~mask] == true[~mask]),
        "correction_rate": frac(pred[mask] == true[mask]),
        "train_acc": frac(pred == noisy),
        "num_noisy": int(mask.sum()),
        "num_clean": int((~mask).sum()),
    }


__all__ = ["fit_report"]
