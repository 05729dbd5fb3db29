"""Seeds and named baselines: paired verdicts, the three checkpoints of the table, plain CCE vs CCE-DN."""

from __future__ import annotations

import torch

from reid.studies.study_report import cell_rows, fmt, paired_verdicts


def _rec(scheme, seed, test, noisy, val=None):
    m = {"test_acc": test, "noisy_fit": noisy, "clean_fit": 0.9, "epoch": 5}
    return {"id": f"{scheme}-{seed}", "scheme": {"name": scheme}, "noise_kind": "symmetric", "noise_rate": 0.4,
            "seed": seed, "metric_name": "accuracy", "final": m, "best": {**m, "test_acc": test + 0.01},
            "best_by_val": None if val is None else {**m, "test_acc": val}, "onset_epoch": None}


def test_verdict_only_when_every_seed_agrees():
    recs = [_rec("base", s, 0.5, 0.5) for s in range(3)]
    recs += [_rec("up", s, 0.6 + 0.01 * s, 0.4) for s in range(3)]  # better on every seed
    recs += [_rec("mixed", s, 0.5 + (0.1 if s else -0.1), 0.6) for s in range(3)]
    verdicts = {(v["scheme"], v["key"]): v for v in paired_verdicts(cell_rows(recs), "base")}
    assert verdicts[("up", "test_acc")]["verdict"] == "better"
    assert verdicts[("up", "noisy_fit")]["verdict"] == "better"  # lower noisy fit is better
    assert verdicts[("mixed", "test_acc")]["verdict"].startswith("inconclusive")
    assert verdicts[("mixed", "noisy_fit")]["verdict"] == "worse"
    assert len(verdicts[("up", "test_acc")]["diffs"]) == 3


def test_one_seed_is_never_a_verdict():
    recs = [_rec("base", 0, 0.5, 0.5), _rec("up", 0, 0.9, 0.1)]
    assert all(v["verdict"].startswith("inconclusive (1") for v in paired_verdicts(cell_rows(recs), "base"))


def test_rows_carry_final_best_by_val_and_oracle():
    row = cell_rows([_rec("a", 0, 0.5, 0.2, val=0.45)])[0]
    assert row["final_test_acc"] == 0.5 and row["best_by_val_test_acc"] == 0.45
    assert row["best_by_test_test_acc"] == 0.51  # falls back to "best" (older cell.json)
    assert fmt([0.5, 0.7]) == "60.0 ± 10.0" and fmt([None]) == "n/a"


def test_plain_cce_and_cce_dn_are_different_losses():
    from reid.studies.classification_config import ClassificationConfig
    from reid.studies.classification_trainer import engine_config
    from reid.studies.runner import _scheme_dump
    from reid.studies.schemes import SchemeSpec, build_study_loss

    plain = ClassificationConfig(scheme=SchemeSpec(name="cce", normalize="n"))
    assert engine_config(plain).loss.id.normalize == "n"
    assert engine_config(ClassificationConfig()).loss.id.normalize == "sum"
    # a cell of an older study (no normalize) keeps its spec hash
    assert "normalize" not in _scheme_dump(SchemeSpec(name="cce"))
    # plain CCE with Z = N is torch's mean cross entropy; with Z = sum w it is not
    torch.manual_seed(0)
    logits = torch.randn(8, 5, requires_grad=True)
    labels = torch.randint(0, 5, (8,))
    build_study_loss("cce", {}, 5, normalize="n")(logits, labels).backward()
    g_plain = logits.grad.clone()
    logits.grad = None
    torch.nn.functional.cross_entropy(logits, labels).backward()
    assert torch.allclose(g_plain, logits.grad, atol=1e-6)
