"""The three-number report on a hand-made case."""

import math

import numpy as np
import pytest

from reid.studies.fit import fit_report


def test_fit_report_hand_made():
    true = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    noisy = np.array([0, 1, 2, 3, 1, 2, 3, 0])  # last four corrupted
    mask = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    pred = np.array([0, 1, 2, 0, 1, 1, 2, 1])
    # clean: 3/4 right; noisy vs noisy labels: only index 4 (pred 1 == noisy 1) -> 1/4;
    # corrected (pred == true on noisy): indices 5 and 6 -> 2/4; overall vs noisy labels: 3 + 1 = 4/8
    rep = fit_report(pred, noisy, true, mask)
    assert rep["clean_fit"] == 0.75 and rep["noisy_fit"] == 0.25
    assert rep["correction_rate"] == 0.5 and rep["train_acc"] == 0.5
    assert rep["num_noisy"] == 4 and rep["num_clean"] == 4


def test_fit_report_empty_noisy_subset_is_nan_and_inconsistency_is_an_error():
    rep = fit_report([0, 1], [0, 1], [0, 1], [False, False])
    assert math.isnan(rep["noisy_fit"]) and rep["clean_fit"] == 1.0
    with pytest.raises(ValueError, match="example 1"):
        fit_report([0, 1], [0, 0], [0, 1], [False, False])
    with pytest.raises(ValueError, match="noisy_mask has 1"):
        fit_report([0, 1], [0, 1], [0, 1], [False])
