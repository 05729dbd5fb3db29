"""The three-number report on a hand-made case, and the classification study on the engine's
training loop (schedule, parts, records, determinism, non-finite policy)."""

import json
import math

import numpy as np
import pytest
import torch

from reid.studies.classification import ClassificationConfig, SchemeSpec, run_classification
from reid.studies.classification_trainer import ClassificationTrainer, engine_config, per_example_pw
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


# ----------------------------------------------------------------------------- classification study
def _tiny_cfg(tmp_path, **kw) -> ClassificationConfig:
    from reid.studies.runner import make_synthetic_idx

    root = make_synthetic_idx(tmp_path / "idx", n_train=96, n_test=40, num_classes=4)
    base = dict(data_root=str(root), train_subset=None, epochs=2, batch_size=32, widths=(4, 4, 4), num_threads=1,
                noise=[{"kind": "symmetric", "rate": 0.25}])
    return ClassificationConfig.model_validate({**base, **kw})


def _lrs(cfg: ClassificationConfig, iters_per_epoch: int) -> list[float]:
    from reid.engine.optim import build_optimizer, build_scheduler

    engine = engine_config(cfg)
    opt = build_optimizer(engine.optim, [torch.nn.Parameter(torch.zeros(2, 2))])
    sched = build_scheduler(engine.sched, opt, cfg.epochs, iters_per_epoch)
    out = []
    for _ in range(cfg.epochs * iters_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_engine_cosine_equals_the_former_study_schedule(tmp_path):
    """warmup_epochs 0: lr at step s of S = 0.5 lr (1 + cos(pi s / S)), the study's former _lr_at
    (equal up to float rounding, < 1e-12 relative: the engine evaluates it as lr * f(s/ipe/E))."""
    cfg = ClassificationConfig(scheme=SchemeSpec(name="cce"), epochs=7, lr=0.05, lr_schedule="cosine")
    S = 7 * 13
    expected = [0.5 * 0.05 * (1 + math.cos(math.pi * s / S)) for s in range(S)]
    torch.testing.assert_close(torch.tensor(_lrs(cfg, 13), dtype=torch.float64),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-15)
    step = ClassificationConfig(scheme=SchemeSpec(name="cce"), epochs=3, lr=0.1, lr_schedule="step")
    assert _lrs(step, 4) == pytest.approx([0.1] * 4 + [0.01] * 4 + [0.001] * 4, rel=1e-12)  # x0.1 at 1/3, 2/3


def test_engine_config_and_parts_of_the_trainer(tmp_path):
    from reid.engine.loop import TrainLoop
    from reid.models.heads import CosineClassifier

    cfg = _tiny_cfg(tmp_path, scheme={"name": "proselflc", "params": {"B": 12.0}}, momentum=0.8, weight_decay=1e-3)
    engine = engine_config(cfg)
    assert (engine.loss.id.name, engine.loss.id.scheme, engine.loss.id.params) == ("proselflc", "cce", {"B": 12.0})
    assert engine.loss.metric.name == "none" and engine.train.grad_clip is None
    assert engine.optim.name == "sgd" and engine.optim.nesterov and engine.optim.momentum == 0.8
    # one training loop: the step is the engine's, not the study's
    assert issubclass(ClassificationTrainer, TrainLoop)
    assert "run_step" not in vars(ClassificationTrainer) and "compute_losses" not in vars(ClassificationTrainer)
    trainer = ClassificationTrainer(cfg)
    trainer.setup()
    assert type(trainer.id_loss).__name__ == "ProSelfLCLoss" and trainer.id_loss.B == 12.0
    assert isinstance(trainer.model.head, CosineClassifier)
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert trainer.iters_per_epoch == 3 and trainer.total_steps == 6
    linear = ClassificationTrainer(_tiny_cfg(tmp_path, head="linear"))
    linear.setup()
    assert isinstance(linear.model.head, torch.nn.Linear) and linear.model.head.bias is not None


def test_run_classification_records_and_is_deterministic(tmp_path):
    cfg = _tiny_cfg(tmp_path, scheme={"name": "imae", "params": {"T": 8}})
    lines = []
    res = run_classification(cfg, out_dir=tmp_path / "out", progress=False, log=lines.append)
    assert {"scheme", "config", "num_train", "num_noisy", "num_test", "history", "best", "final", "seconds"} <= set(res)
    assert res["num_train"] == 96 and res["num_noisy"] == 24 and res["num_test"] == 40
    assert [h["epoch"] for h in res["history"]] == [1, 2] and res["final"]["epoch"] == 2
    h = res["history"][0]
    for k in ("lr", "loss", "test_acc", "noisy_fit", "clean_fit", "correction_rate", "train_acc", "p_edges",
              "w_hist_noisy", "mean_p_clean", "seconds"):
        assert k in h
    assert sum(h["p_hist_noisy"]) == 24 and sum(h["w_hist_clean"]) == 72  # every example once per epoch
    assert len(lines) == 2 and lines[0].startswith("    imae epoch 1/2: loss ")
    saved = json.loads((tmp_path / "out" / "history.json").read_text())
    assert saved["final"] == res["final"]
    again = run_classification(cfg, progress=False)

    def strip(r):
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in r["history"]]

    assert strip(again) == strip(res)


def test_non_finite_loss_raises_naming_the_scheme(tmp_path):
    trainer = ClassificationTrainer(_tiny_cfg(tmp_path, scheme={"name": "gce", "label": "gce-0.7"}))
    trainer.setup()

    class NaNLoss(torch.nn.Module):
        weight_scheme = trainer.id_loss.weight_scheme

        def forward(self, logits, labels):
            return logits.sum() * float("nan")

    trainer.id_loss = NaNLoss()
    batch = next(trainer.train_loader(0))
    with pytest.raises(FloatingPointError, match=r"scheme gce-0.7: non-finite loss at epoch 0 step 0"):
        trainer.run_step(batch, 0, 0)


def test_per_example_pw_falls_back_to_the_loss_weight_scheme():
    from reid.weighting import get_scheme

    class Silent(torch.nn.Module):  # publishes no per-example tensors
        weight_scheme = get_scheme("imae", T=8.0)
        last_stats = {"loss": 1.0}

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    p, w = per_example_pw(Silent(), logits, labels)
    expected_p = torch.softmax(logits.double(), 1)[:, 0]
    np.testing.assert_allclose(p, expected_p.float().numpy())
    np.testing.assert_allclose(w, get_scheme("imae", T=8.0).w(expected_p).float().numpy())


def test_weight_curves_use_the_losses_own_weight_scheme():
    from reid.studies.schemes import weight_scheme_of
    from reid.weighting import get_scheme

    p = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(weight_scheme_of("proselflc", {"B": 12.0}).w(p), get_scheme("cce").w(p))
    torch.testing.assert_close(weight_scheme_of("dm", {"lam": 0.5, "beta": 8}).w(p), get_scheme("dm", lam=0.5, beta=8).w(p))
