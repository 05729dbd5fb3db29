"""Model selection without the test set: the validation carve (reid.data.holdout), the
``eval.validation`` key, best-by-val tracking and its report rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reid.data.holdout import HoldoutError, holdout_fraction, holdout_identities
from reid.data.tracklet import Tracklet
from reid.engine.config import load_config
from reid.engine.config_files import ConfigError
from reid.engine.report import format_final_table
from reid.errors import UserError


def _tracklets(n_ids=10, cams=(1, 2, 3), per_cam=2, single_cam_ids=()):
    out, row = [], 0
    for label in range(n_ids):
        for cam in (cams[:1] if label in single_cam_ids else cams):
            for k in range(per_cam):
                out.append(Tracklet(frames=(f"{label}_{cam}_{k}.jpg",), pid=100 + label, camid=cam,
                                    tracklet_id=k, row=row, label=label))
                row += 1
    return out


def test_holdout_identities_one_query_per_identity_camera_rest_gallery():
    train = _tracklets()
    held = holdout_identities(train, fraction=0.3, seed=1)
    assert len(held.labels) == 3
    kept = [train[i] for i in held.train_index]
    assert not {t.label for t in kept} & set(held.labels)  # no held-out identity trains
    assert len(kept) + len(held.gallery) == len(train)
    pairs = [(t.pid, t.camid) for t in held.query]
    assert len(pairs) == len(set(pairs)) == 3 * 3  # one per (identity, camera)
    assert {t.pid for t in held.gallery} == {lab + 1 for lab in held.labels}  # pid = training label + 1
    assert set(map(id, held.query)) <= set(map(id, held.gallery))  # official: queries in the gallery
    assert all(t.label == -1 for t in held.gallery)
    again = holdout_identities(train, fraction=0.3, seed=1)
    assert again.labels == held.labels and [t.row for t in again.query] == [t.row for t in held.query]


def test_holdout_uses_the_training_label_not_the_dataset_pid():
    # a noisy relabel moves a tracklet to another identity: the held-out split follows the label
    train = _tracklets(n_ids=4)
    train[0] = Tracklet(frames=train[0].frames, pid=train[0].pid, camid=train[0].camid, tracklet_id=0, row=0, label=3)
    held = holdout_identities(train, ids=[3], seed=0)
    assert 0 not in held.train_index and any(t.row == 0 for t in held.gallery)


def test_single_camera_identities_give_no_query_and_errors_name_the_key():
    train = _tracklets(n_ids=4, single_cam_ids={0, 1, 2, 3})
    with pytest.raises(HoldoutError, match="eval.validation") as info:
        holdout_identities(train, ids=[0])
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    with pytest.raises(HoldoutError, match="eval.validation.ids"):
        holdout_identities(_tracklets(n_ids=4), ids=[9])
    with pytest.raises(HoldoutError, match="lower the fraction"):
        holdout_identities(_tracklets(n_ids=4), fraction=0.9, min_train_ids=2)


def test_holdout_fraction_is_class_stratified_and_disjoint():
    labels = np.repeat(np.arange(4), 25)
    train, val = holdout_fraction(labels, 0.2, seed=0)
    assert np.intersect1d(train, val).size == 0 and train.size + val.size == 100
    assert np.bincount(labels[val]).tolist() == [5, 5, 5, 5]
    with pytest.raises(HoldoutError, match="classification.validation.fraction"):
        holdout_fraction(labels, 1.5, seed=0, key="classification.validation.fraction")


def test_validation_config_key():
    assert load_config(None).eval.validation is None  # off by default: the main job is unchanged
    cfg = load_config(None, ["eval.validation={fraction: 0.2, seed: 3}"])
    assert cfg.eval.validation.fraction == 0.2 and cfg.eval.validation.seed == 3
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(None, ["eval.validation={fraction: 0.2, ids: [1]}"])
    with pytest.raises(ConfigError, match="needs eval.validation"):
        load_config(None, ["eval.report=best_by_val"])


def _final(**extra):
    m = {"mAP": 0.5, "rank1": 0.6, "rank5": 0.7, "rank10": 0.8, "rank20": 0.9, "mINP": 0.4, "queries": 3,
         "queries_without_match": 0}
    return {"dataset": {"name": "x"}, "protocol": "official", "metric": "cosine", "reporting": "final",
            "final": m, "final_epoch": 4, "best": m, "best_epoch": 2, **extra}


def test_table_names_the_oracle_only_when_a_validation_choice_exists():
    plain = format_final_table(_final())
    assert "best (epoch 2)" in plain and "oracle" not in plain and "by val" not in plain
    with_val = format_final_table(_final(best_by_val=_final()["final"], best_by_val_epoch=3))
    assert "best by val (epoch 3)" in with_val and "oracle best (epoch 2)" in with_val


@pytest.mark.slow
def test_tiny_run_selects_on_validation_and_keeps_noise_arrays_aligned(tmp_path, tiny_synthetic_mars):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_engine_train_e2e import tiny_config_file

    from reid.engine.trainer import Trainer
    from reid.studies.hooks import study_hooks

    path = tiny_config_file(tmp_path, tiny_synthetic_mars, name="val", train={"epochs": 2},
                            eval={"untrained": False, "every": 1})
    cfg = load_config(path, ["eval.validation={fraction: 0.34, seed: 0}",
                             "noise={items: [{kind: symmetric, rate: 0.25}], seed: 0}"])
    trainer = Trainer(cfg, hooks=study_hooks(cfg))
    n_before = len(trainer.data.train) if trainer.data is not None else None
    final = trainer.fit()
    assert n_before is None and trainer.validation_data is not None
    assert len(trainer.train_keep_index) == len(trainer.data.train)
    assert final["best_by_val"] is not None and "val_mAP" in final["best_by_val"]
    assert final["best_by_val_epoch"] in (1, 2) and final["best_by_test"] == final["best"]
    assert all("val_mAP" in h["metrics"] for h in final["history"])
    z = np.load(Path(cfg.output_dir) / "trajectories.npz")
    assert z["p"].shape == (2, len(trainer.data.train)) and z["noisy_mask"].shape == (len(trainer.data.train),)
    assert final["noise"]["best_by_val"]["mAP"] == final["best_by_val"]["mAP"]
