"""Robustness studies: what example weighting does when identity (or class) labels are wrong.

* :mod:`reid.studies.fit` -- the three-number report (test / noisy-subset fit / clean-subset fit).
* :mod:`reid.studies.noise_hook` -- the trainer hook that injects noise and records ``p_i``, ``w_i``.
* :mod:`reid.studies.classification` -- the controlled image-classification experiment.
* :mod:`reid.studies.runner` -- grids of schemes x noise x seeds, resumable (``tools/study.py``).
* :mod:`reid.studies.plots` -- the figures.

Noise injection itself lives in :mod:`reid.data.noise`.
"""

from reid.studies.fit import fit_report

__all__ = ["fit_report"]
