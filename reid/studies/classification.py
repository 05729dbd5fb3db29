"""Noisy-label image classification: the controlled experiment behind the ReID robustness study.

Same network, same schedule, same noisy labels for every scheme; only the loss (= the example
weighting, docs/methods.md §1) changes. Per epoch it records test accuracy and the three-number
report (:func:`reid.studies.fit.fit_report`: noisy-subset fit against the noisy labels,
clean-subset fit, correction rate), computed in eval mode without augmentation, and the
distributions of ``p_i`` (probability of the *training* label) and ``w_i`` (the scheme's weight)
separately for clean and noisy examples.

Training is the engine's loop (:class:`reid.studies.classification_trainer.ClassificationTrainer`,
a :class:`reid.engine.loop.TrainLoop`): the same step, identity losses (``reid.losses.ID_LOSSES``),
optimiser and schedules (:mod:`reid.engine.optim`) as the video trainer. The network
(:class:`reid.studies.classification_model.SmallCNN`, a small CNN with a cosine head) and the
data (:mod:`reid.studies.classification_data`: class-balanced subsets, the same integer-label
noise core as the tracklet noise) live next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from reid.studies.classification_config import ClassificationConfig
from reid.studies.classification_data import stratified_subset
from reid.studies.classification_model import BNMLP, SmallCNN
from reid.studies.classification_trainer import ClassificationTrainer, EpochProgressHook, EpochRecordHook
from reid.studies.schemes import SchemeSpec


def run_classification(cfg: ClassificationConfig, out_dir: Path | None = None, progress: bool = True, log=None) -> dict:
    """Train one scheme on noisy labels; return per-epoch history and best/final numbers.

    Returns a dict with ``history`` (per epoch: ``test_acc``, ``noisy_fit``, ``clean_fit``,
    ``correction_rate``, ``train_acc``, ``lr``, clean/noisy histograms of ``p_i`` and ``w_i``),
    ``best`` (the epoch of highest test accuracy and its numbers, the DM/IMAE papers' convention)
    and ``final`` (last epoch, ProSelfLC's convention). Writes ``history.json`` in ``out_dir``.
    Also ``trajectories.npz`` there (:mod:`reid.studies.trajectories`).
    ``log``: called with one line per epoch. Raises ``FloatingPointError`` on a non-finite loss."""
    trainer = ClassificationTrainer(cfg, hooks=[EpochRecordHook(), EpochProgressHook(progress, log)])
    result = trainer.fit()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "history.json").write_text(json.dumps(result, indent=1))
        trainer.trajectories.save(out_dir / "trajectories.npz")
    return result


__all__ = ["SchemeSpec", "ClassificationConfig", "SmallCNN", "BNMLP", "ClassificationTrainer", "run_classification",
           "stratified_subset"]
