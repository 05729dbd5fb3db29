"""Robustness studies: what example weighting does when identity (or class) labels are wrong.

* :mod:`reid.studies.hooks` -- ``study_hooks(cfg)``: study config sections -> trainer hooks (the front door).
* :mod:`reid.studies.fit` -- the three-number report (test / noisy-subset fit / clean-subset fit).
* :mod:`reid.studies.noise_hook` -- the trainer hook that injects noise and records ``p_i``, ``w_i``;
  :mod:`reid.studies.predict` -- eval-mode predictions on the training split.
* :mod:`reid.studies.schemes` -- a study's scheme entry and the identity loss it names.
* :mod:`reid.studies.classification` -- the controlled image-classification experiment, trained by
  the engine's loop (``classification_trainer``, ``classification_model``, ``classification_data``,
  ``classification_config``).
* :mod:`reid.studies.runner` -- grids of schemes x noise x seeds, resumable (``tools/study.py``).
* :mod:`reid.studies.plots` -- the figures.

Noise injection itself lives in :mod:`reid.data.noise`.
"""

from reid.studies.fit import fit_report

__all__ = ["fit_report"]
