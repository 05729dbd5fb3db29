"""End-to-end training on a tiny synthetic MARS dataset: artefacts, hooks, NaN policy,
SIGKILL + resume equality, 2-process DDP. Kept small (64x32 input, resnet18, 2-3 epochs of 1-3
iterations) so the whole file runs in about two minutes on two cores."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from reid.engine.checkpoint import load_checkpoint
from reid.engine.config import load_config
from reid.engine.trainer import NonFiniteLossError, Trainer
from reid.studies.hooks import study_hooks
from reid.studies.predict import predict_train_split

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TINY = {
    "seed": 0,
    "data": {"height": 64, "width": 32, "clip_length": 2, "p": 2, "k": 2, "num_workers": 0},
    "model": {"backbone": "resnet18", "classifier": "cosine", "aggregation": "mean"},
    "loss": {"id": {"scheme": "imae", "params": {"T": 8}}, "metric": {"name": "triplet", "params": {"margin": 0.3}}},
    "optim": {"name": "adam", "lr": 0.001},
    "sched": {"name": "cosine", "warmup_epochs": 1},
    "train": {"epochs": 2, "device": "cpu", "log_every": 1, "progress": False, "grad_clip": 5.0},
    "eval": {"every": 1, "chunk": 8},
}


def tiny_config_file(tmp_path: Path, root: Path, name: str = "tiny", **sections) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["name"] = name
    cfg["data"]["root"] = str(root)
    cfg["output_dir"] = str(tmp_path / name)
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class RecordingHook:
    """Records every hook call and checks the arguments the contract promises."""

    def __init__(self):
        self.calls: list[str] = []
        self.batch_indices: list[int] = []
        self.id_stats_seen = False

    def on_fit_start(self, trainer):
        self.calls.append("fit_start")
        assert trainer.model is not None and trainer.data is not None

    def on_epoch_start(self, trainer, epoch):
        self.calls.append(f"epoch_start{epoch}")

    def on_batch_end(self, trainer, batch, outputs, losses):
        self.calls.append("batch")
        assert batch["index"].shape == batch["label"].shape
        for i, label in zip(batch["index"].tolist(), batch["label"].tolist()):
            assert trainer.data.train[i].label == label
        self.batch_indices.extend(batch["index"].tolist())
        assert {"feat", "bn_feat", "logits"} <= set(outputs)
        stats = losses["id_loss"].last_stats
        self.id_stats_seen = "p" in stats and "w" in stats and stats["p"].shape[0] == batch["label"].shape[0]
        assert math.isfinite(losses["total"])

    def on_epoch_end(self, trainer, epoch):
        self.calls.append(f"epoch_end{epoch}")

    def on_evaluate(self, trainer, epoch, metrics):
        self.calls.append(f"evaluate{epoch}")
        assert 0.0 <= metrics["mAP"] <= 1.0
        return {"hook_metric": 42.0}

    def on_fit_end(self, trainer, final):
        self.calls.append("fit_end")
        final["hook_saw_final"] = True


def test_tiny_run_writes_every_artefact_and_calls_hooks(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars))
    hook = RecordingHook()
    trainer = Trainer(cfg, hooks=[hook])
    final = trainer.fit()
    out = Path(cfg.output_dir)

    for name in ("config.yaml", "train.log", "metrics.jsonl", "last.pt", "best.pt", "final.json"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert load_config(out / "config.yaml", set_output_dir=False) == cfg

    on_disk = json.loads((out / "final.json").read_text())
    assert on_disk["hook_saw_final"] is True
    assert on_disk["protocol"] == "official" and on_disk["reporting"] == "final"
    for row in ("untrained", "final", "best", "headline"):
        assert set(on_disk[row]) >= {"mAP", "rank1", "rank5", "mINP"}, row
    assert on_disk["final"] == final["final"]
    assert on_disk["best_epoch"] in (1, 2) and on_disk["global_step"] == final["global_step"] > 0
    assert "Retrieval on" in (out / "train.log").read_text()

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["type"] == "train"]
    eval_records = [r for r in records if r["type"] == "eval"]
    assert len(train_records) == final["global_step"]
    assert all(math.isfinite(r["loss"]) and r["lr"] > 0 for r in train_records)
    assert [r["epoch"] for r in eval_records] == [0, 1, 2]  # untrained + every epoch
    assert all(r["hook_metric"] == 42.0 for r in eval_records)

    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["num_classes"] == trainer.num_classes
    assert ckpt["config"]["model"]["backbone"] == "resnet18" and ckpt["config"]["data"]["height"] == 64
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == final["global_step"]
    from reid.models import build_model

    rebuilt = build_model(ckpt["config"]["model"], ckpt["num_classes"])
    rebuilt.load_state_dict(ckpt["model"])  # the extractor's path

    assert hook.calls[0] == "fit_start" and hook.calls[-1] == "fit_end"
    assert hook.calls.index("epoch_start0") < hook.calls.index("batch") < hook.calls.index("epoch_end0")
    assert hook.calls.count("batch") == final["global_step"]
    assert hook.id_stats_seen

    logits = predict_train_split(trainer)
    assert logits.shape == (len(trainer.data.train), trainer.num_classes)
    assert np.isfinite(logits).all()


class InjectNaN:
    """Makes the identity loss NaN at global step ``at`` (counting steps attempted)."""

    def __init__(self, at: int):
        self.at = at
        self.attempts = 0

    def on_fit_start(self, trainer):
        real = trainer.id_loss.forward

        def forward(logits, labels):
            value = real(logits, labels)
            self.attempts += 1
            return value * float("nan") if self.attempts == self.at else value

        trainer.id_loss.forward = forward


def test_nan_policy_skip_counts_and_keeps_weights_finite(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="nan_skip",
                                       train={"epochs": 1, "nan_policy": "skip"}, eval={"untrained": False}))
    trainer = Trainer(cfg, hooks=[InjectNaN(at=2)])
    final = trainer.fit()
    assert final["nan_skipped"] == 1
    assert final["global_step"] == trainer.iters_per_epoch - 1  # the poisoned step was not taken
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    events = [json.loads(line) for line in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert any(e["type"] == "event" and "skipped" in e["message"] for e in events)


def test_nan_policy_stop_saves_checkpoint_and_raises(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="nan_stop",
                                       train={"epochs": 1, "nan_policy": "stop"}, eval={"untrained": False}))
    with pytest.raises(NonFiniteLossError, match="nan_stop.pt"):
        Trainer(cfg, hooks=[InjectNaN(at=2)]).fit()
    out = Path(cfg.output_dir)
    ckpt = load_checkpoint(out / "nan_stop.pt")
    assert ckpt["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (out / "final.json").exists()


def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "tools" / "train.py"), *args]


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, tiny_synthetic_mars):
    overrides = ["train.epochs=3", "eval.every=0", "eval.untrained=false"]
    straight_cfg = tiny_config_file(tmp_path, tiny_synthetic_mars, name="straight")
    killed_cfg = tiny_config_file(tmp_path, tiny_synthetic_mars, name="killed")
    straight = subprocess.Popen(_train_cmd("--config", str(straight_cfg), *overrides), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = subprocess.Popen(_train_cmd("--config", str(killed_cfg), *overrides), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_dir = tmp_path / "killed"
    deadline = time.time() + 120
    while not (killed_dir / "last.pt").exists():
        assert killed.poll() is None, killed.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (killed_dir / "final.json").exists(), "the run finished before it could be killed"
    assert load_checkpoint(killed_dir / "last.pt")["epoch"] < 3

    resumed = subprocess.run(_train_cmd("--resume", str(killed_dir)), env=_env(), capture_output=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert straight.wait(timeout=180) == 0, straight.stderr.read().decode()[-2000:]

    a = json.loads((tmp_path / "straight" / "final.json").read_text())
    b = json.loads((killed_dir / "final.json").read_text())
    assert a["global_step"] == b["global_step"] == 3 * a["global_step"] // 3
    assert a["final"] == b["final"]  # exact: same batches, same clips, same RNG, same weights
    wa = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    wb = load_checkpoint(killed_dir / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


HOOK_MODULE = '''
import json
from pathlib import Path


class RecordLabels:
    """Writes, per rank, the training labels each epoch's batches held."""

    def __init__(self):
        self.seen = {}

    def on_batch_end(self, trainer, batch, outputs, losses):
        self.seen.setdefault(trainer.epoch, set()).update(batch["label"].tolist())

    def on_epoch_end(self, trainer, epoch):
        path = Path(trainer.output_dir) / f"labels_rank{trainer.dist.rank}.json"
        path.write_text(json.dumps({str(e): sorted(s) for e, s in self.seen.items()}))
'''


def test_ddp_two_processes_on_cpu(tmp_path, tiny_synthetic_mars):
    (tmp_path / "ddp_hooks.py").write_text(textwrap.dedent(HOOK_MODULE))
    cfg = tiny_config_file(tmp_path, tiny_synthetic_mars, name="ddp")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO_ROOT / "tools" / "train.py"), "--config", str(cfg),
           "train.hooks=[ddp_hooks:RecordLabels]", "eval.every=0"]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    out = tmp_path / "ddp"
    final = json.loads((out / "final.json").read_text())
    assert final["world_size"] == 2
    assert 0.0 <= final["final"]["mAP"] <= 1.0
    seen = [json.loads((out / f"labels_rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in seen[0]:
        assert seen[0][epoch] and seen[1][epoch]
        assert not set(seen[0][epoch]) & set(seen[1][epoch]), f"ranks shared identities in epoch {epoch}"


def test_noise_section_adds_the_noise_hook(tmp_path, tiny_synthetic_mars):
    path = tiny_config_file(tmp_path, tiny_synthetic_mars, name="noisy", train={"epochs": 1},
                            eval={"untrained": False})
    cfg = load_config(path, ["noise={items: [{kind: symmetric, rate: 0.25}], seed: 0}"])
    assert not any(type(h).__name__ == "NoiseHook" for h in Trainer(cfg).hooks)  # the engine adds no study hook
    trainer = Trainer(cfg, hooks=study_hooks(cfg))  # the front door (tools/train.py) does
    assert any(type(h).__name__ == "NoiseHook" for h in trainer.hooks)
    final = trainer.fit()
    out = Path(cfg.output_dir)
    assert (out / "noise_manifest.json").is_file()
    # the hook replaced the training labels before the sampler was built: int(0.25 N) relabelled
    train = trainer.data.train
    relabelled = sum(trainer.data.label_to_pid[t.label] != t.pid for t in train)
    assert relabelled == int(0.25 * len(train)) > 0
    sampler_labels = {trainer.train_dataset.tracklets[i].label for i in range(len(train))}
    assert sampler_labels == {t.label for t in train}
    assert "noise" in final and final["noise"]["final"]["mAP"] == final["final"]["mAP"]


def test_osm_caa_trains_as_the_metric_loss(tmp_path, tiny_synthetic_mars):
    """``loss.metric.name: osm_caa`` needs the identity logits: the loop passes them to a ranking
    loss that declares ``needs_logits`` (no special case for the name)."""
    path = tiny_config_file(tmp_path, tiny_synthetic_mars, name="osm", train={"epochs": 1},
                            eval={"untrained": False})
    cfg = load_config(path, ["loss.metric.name=osm_caa", "loss.metric.params={}", "train.iters_per_epoch=2"])
    seen = []

    class RecordMetricLoss:
        def on_batch_end(self, trainer, batch, outputs, losses):
            seen.append(losses["metric"])

    final = Trainer(cfg, hooks=[RecordMetricLoss()]).fit()
    assert final["global_step"] == 2 and len(seen) == 2
    assert all(v is not None and math.isfinite(v) for v in seen)
