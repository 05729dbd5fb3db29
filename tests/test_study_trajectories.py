"""Per-example trajectories: AUC of p/w for the noisy subset, gradient share, memorisation onset."""

from __future__ import annotations

import numpy as np
import pytest

from reid.studies.trajectories import TrajectoryRecorder, auc_lower, memorisation_onset, noisy_share


def test_auc_lower_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=30).astype(float)  # many ties
    b = rng.integers(1, 7, size=40).astype(float)
    pairwise = np.mean([(x < y) + 0.5 * (x == y) for x in a for y in b])
    assert auc_lower(a, b) == pytest.approx(pairwise)
    assert auc_lower([0.1, 0.2], [0.8, 0.9]) == 1.0 and auc_lower([0.8], [0.1]) == 0.0
    assert np.isnan(auc_lower([], [1.0]))


def test_noisy_share_is_the_noisy_part_of_the_weight_sum():
    w = np.array([1.0, 3.0, 0.0, 4.0])
    assert noisy_share(w, [True, False, False, True]) == pytest.approx(5 / 8)
    assert np.isnan(noisy_share(np.zeros(3), [True, False, False]))


def test_recorder_curves_and_npz(tmp_path):
    noisy = np.array([True, False, False, True])
    rec = TrajectoryRecorder(noisy, [0, 1, 2, 3])
    rec.add_batch([1.0, 1.0], [True, False])
    rec.add_batch([3.0, 1.0], [True, False])
    assert rec.close_epoch(1) == pytest.approx((0.5 + 0.75) / 2)
    s = rec.add_evaluation(1, [0.1, 0.9, 0.8, 0.2], [2.0, 1.0, 1.0, 2.0])
    assert s["auc_p"] == 1.0 and s["auc_w"] == 0.0  # low p flags noise; CCE-like weights favour it
    rec.save(tmp_path / "t.npz")
    z = np.load(tmp_path / "t.npz")
    assert z["p"].shape == (1, 4) and z["noisy_mask"].tolist() == noisy.tolist()
    assert rec.curves()["grad_share_noisy"] == [pytest.approx(0.625)]
    with pytest.raises(ValueError, match="4 training examples"):
        rec.add_evaluation(2, [0.1], [1.0])
    rec.restrict([1, 2])
    assert rec.noisy_mask.tolist() == [False, False]


def test_memorisation_onset_is_the_first_evaluation_over_threshold():
    hist = [{"epoch": 1, "noisy_fit": 0.1}, {"epoch": 3, "noisy_fit": 0.6}, {"epoch": 5, "noisy_fit": 0.9}]
    assert memorisation_onset(hist, 0.5) == 3
    assert memorisation_onset(hist, 0.95) is None
    assert memorisation_onset([{"epoch": 1, "noisy_fit": float("nan")}], 0.0) is None
