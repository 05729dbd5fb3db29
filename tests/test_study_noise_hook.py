"""The noise study's trainer hook on a fake trainer: it touches only the training split and
reports the three numbers (moved from the data tests: the hook is study code)."""

from __future__ import annotations

from reid.data.tracklet import Tracklet, VideoReIDData
from test_data_noise import NUM_IDS, make_train  # the same synthetic training split as the data tests


class _FakeTrainer:
    def __init__(self, data, out):
        from types import SimpleNamespace

        from reid.weighting import get_scheme

        self.data = data
        self.num_classes = data.num_train_ids
        self.output_dir = out
        self.cfg = SimpleNamespace(loss=SimpleNamespace(id=SimpleNamespace(
            name="weighted_ce", scheme="imae", params={"T": 8.0})))
        self.id_loss = SimpleNamespace(weight_scheme=get_scheme("imae", T=8.0))
        self.logits = None


def test_noise_hook_touches_only_training_data_and_reports(tmp_path, monkeypatch):
    import torch

    from reid.studies import noise_hook
    from reid.studies.noise_hook import NoiseHook

    # the train-split predictions come from the fake trainer (no model to run)
    monkeypatch.setattr(noise_hook, "predict_train_split", lambda trainer: trainer.logits)

    train = make_train()
    query = [Tracklet(frames=("/q/a.jpg",), pid=7, camid=1, tracklet_id=0, row=0)]
    gallery = [Tracklet(frames=("/g/a.jpg", "/g/b.jpg"), pid=7, camid=2, tracklet_id=1, row=1)]
    data = VideoReIDData("t", tmp_path, "official", list(train), list(query), list(gallery), NUM_IDS)
    trainer = _FakeTrainer(data, tmp_path / "run")
    hook = NoiseHook({"items": [{"kind": "symmetric", "rate": 0.5}, {"kind": "outlier_frames", "rate": 0.1}], "seed": 0})
    hook.on_fit_start(trainer)
    assert data.query == query and data.gallery == gallery  # evaluation data untouched
    assert data.train != train and (tmp_path / "run" / "noise_manifest.json").is_file()
    mask = hook.noisy_mask
    assert mask.sum() == int(0.5 * len(train))

    hook.on_epoch_start(trainer, 0)
    idx = torch.arange(len(train))
    labels = torch.as_tensor([t.label for t in data.train])
    logits = torch.zeros(len(train), NUM_IDS)
    logits[torch.arange(len(train)), labels] = 5.0  # fits every training label
    hook.on_batch_end(trainer, {"index": idx, "label": labels}, {"logits": logits}, {"id_loss": None})
    hook.on_epoch_end(trainer, 0)
    rec = hook.records[0]
    assert sum(rec["p_hist_noisy"]) == mask.sum() and sum(rec["p_hist_clean"]) == (~mask).sum()

    trainer.logits = logits.numpy()  # memorised everything: noisy fit 1, clean fit 1, no correction
    out = hook.on_evaluate(trainer, 0, {"mAP": 0.5})
    assert {k: out[k] for k in ("noisy_fit", "clean_fit", "correction_rate", "train_acc")} == {
        "noisy_fit": 1.0, "clean_fit": 1.0, "correction_rate": 0.0, "train_acc": 1.0}
    assert set(out) == {"noisy_fit", "clean_fit", "correction_rate", "train_acc", "auc_p", "auc_w"}
    final = {"best": {"mAP": 0.5, **out}, "final": {"mAP": 0.5, **out}}
    hook.on_fit_end(trainer, final)
    assert final["noise"]["best"]["noisy_fit"] == 1.0 and "best" in final["noise"]["reporting"]
    assert (tmp_path / "run" / "pw_distributions.png").stat().st_size > 1000
