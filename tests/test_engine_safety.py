"""Nothing lost: protected run folders, atomic writes that survive kills and full disks, frames
checked before training, the checkpoint before the evaluation, and a non-finite policy that
watches gradients, batch-norm statistics and parameters."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import reid.atomic
from reid.atomic import AtomicWriteError, temp_path
from reid.engine.checkpoint import atomic_save, load_checkpoint
from reid.engine.config import load_config
from reid.engine.loop import NoTrainingStepError, NonFiniteLossError, NonFiniteParametersError
from reid.engine.metrics_log import MetricsWriter
from reid.engine.run_folder import LOCK_NAME, RunFolder, RunFolderError, new_run_dir
from reid.engine.trainer import Trainer
from reid.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_train_e2e import InjectNaN, tiny_config_file  # noqa: E402


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


# --------------------------------------------------------------------------- atomic writes
def test_temp_file_of_a_killed_write_is_removed_at_the_next_save(tmp_path):
    path = tmp_path / "last.pt"
    leftover = temp_path(path, _dead_pid())
    leftover.write_bytes(b"half a checkpoint")
    live = temp_path(path, 1)  # pid 1 is alive: a write in progress is left alone
    live.write_bytes(b"in progress")
    atomic_save({"epoch": 1}, path)
    assert not leftover.exists() and live.exists()
    assert load_checkpoint(path)["epoch"] == 1


class _FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes, like a full file system."""

    def __init__(self, real, room):
        self.real, self.room = real, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_disk_full_during_a_checkpoint_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1, "w": torch.arange(3)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(reid.atomic, "open", lambda p, mode: _FullDisk(open(p, mode), 200), raising=False)
    with pytest.raises(AtomicWriteError) as info:  # was: RuntimeError "enforce fail at inline_container.cc"
        atomic_save({"epoch": 2, "w": torch.zeros(10_000)}, path)
    monkeypatch.undo()
    err = info.value
    assert isinstance(err, UserError) and isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert str(path) in str(err) and "disk is full" in str(err) and "intact" in str(err)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


# --------------------------------------------------------------------------- run folders
def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "best.pt").write_bytes(b"the old best")
    (folder / "final.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match=r"already holds a run \(final\.json\).*--resume DIR or --overwrite"):
        RunFolder(folder).claim()
    assert not (folder / LOCK_NAME).exists()  # a refusal leaves no lock
    RunFolder(folder).claim(resume=True).release()
    RunFolder(folder).claim(overwrite=True).release()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_the_lock_keeps_a_second_writer_out_and_a_dead_owner_is_taken_over(tmp_path, caplog):
    first = RunFolder(tmp_path / "run").claim()
    with pytest.raises(RunFolderError, match="in use by another run"):
        RunFolder(tmp_path / "run").claim(resume=True)
    first.release()
    import socket

    (tmp_path / "run" / LOCK_NAME).write_text(f"{_dead_pid()} {socket.gethostname()}\n")
    with caplog.at_level("WARNING", logger="reid.train"):
        RunFolder(tmp_path / "run").claim(resume=True).release()
    assert "stale lock" in caplog.text and not (tmp_path / "run" / LOCK_NAME).exists()


def test_default_run_folders_never_collide(tmp_path):
    made = {new_run_dir(tmp_path, "default") for _ in range(5)}  # same second
    assert len(made) == 5 and all(p.is_dir() for p in made)


def test_trainer_refuses_an_old_run_before_any_work(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="old"))
    out = Path(cfg.output_dir)
    out.mkdir()
    (out / "last.pt").write_bytes(b"old")
    with pytest.raises(RunFolderError, match=str(out)):
        Trainer(cfg).fit()
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]


def test_p_larger_than_the_identities_fails_before_the_model_and_leaves_no_folder(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="bigp", data={"p": 50}))
    trainer = Trainer(cfg)
    with pytest.raises(UserError, match=r"data\.p=50 .* 6 training identities"):
        trainer.fit()
    assert trainer.model is None and not Path(cfg.output_dir).exists()


# --------------------------------------------------------------------------- metrics.jsonl
def test_metrics_writer_truncates_back_to_a_checkpoint_and_works_without_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    writer = MetricsWriter(tmp_path, True)
    writer.write("train", 1, loss=1.0)
    mark = writer.tell()
    writer.write("train", 2, loss=2.0)
    assert writer.truncate(mark) > 0
    writer.write("train", 2, loss=3.0)
    writer.close()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in lines] == [(1, 1.0), (2, 3.0)]
    assert not (tmp_path / "tensorboard").exists()


# --------------------------------------------------------------------------- frames before training
def _copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".reid-verified-frames.npz"))
    return dst


@pytest.mark.slow
def test_a_bad_test_frame_stops_the_run_before_training(tmp_path, tiny_synthetic_mars):
    root = _copy_dataset(tiny_synthetic_mars, tmp_path / "mars")
    victim = sorted((root / "bbox_test").rglob("*.jpg"))[-1]
    victim.write_bytes(b"")  # before: trained every epoch, then crashed in the final evaluation
    cfg = load_config(tiny_config_file(tmp_path, root, name="badframe", eval={"untrained": False}))
    trainer = Trainer(cfg)
    with pytest.raises(UserError, match=rf"{victim.name}: file is empty"):
        trainer.fit()
    assert trainer.global_step == 0 and trainer.model is None


@pytest.mark.slow
def test_skip_policy_summary_reaches_train_log_and_final_json(tmp_path, tiny_synthetic_mars):
    root = _copy_dataset(tiny_synthetic_mars, tmp_path / "mars")
    sorted((root / "bbox_train").rglob("*.jpg"))[0].write_bytes(b"")
    cfg = load_config(tiny_config_file(tmp_path, root, name="skip", data={"corrupt": "skip"},
                                       train={"epochs": 1}, eval={"untrained": False}))
    final = Trainer(cfg).fit()
    assert final["frame_issues"]["corrupt_frames"] == 1 and final["frame_check"] is None
    assert "1 corrupt" in (Path(cfg.output_dir) / "train.log").read_text()


# --------------------------------------------------------------------------- non-finite policy
HUGE_LR = {"model": {"classifier": "linear"}, "optim": {"lr": 1e9}, "eval": {"untrained": False, "every": 0}}


def _finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.slow
def test_huge_lr_stop_saves_the_last_finite_state(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="lr_stop", **HUGE_LR,
                                       train={"epochs": 3, "grad_clip": None, "nan_policy": "stop"}))
    with pytest.raises(NonFiniteLossError, match="nan_stop.pt"):
        Trainer(cfg).fit()
    ckpt = load_checkpoint(Path(cfg.output_dir) / "nan_stop.pt")
    assert _finite(ckpt["model"])  # before: batch-norm statistics of the failed forward were inf/NaN


@pytest.mark.slow
def test_huge_lr_skip_fails_loudly_once_no_step_succeeds(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="lr_skip", **HUGE_LR,
                                       train={"epochs": 3, "grad_clip": None, "nan_policy": "skip"}))
    trainer = Trainer(cfg)
    with pytest.raises(NoTrainingStepError, match="no optimiser step succeeded"):
        trainer.fit()  # before: the run died in evaluation (NaN features), or printed a table
    assert _finite(trainer.model.state_dict()) and trainer.nan_skipped > 0
    assert not (Path(cfg.output_dir) / "final.json").exists()


class NaNAlways(InjectNaN):
    def on_fit_start(self, trainer):
        real = trainer.id_loss.forward
        trainer.id_loss.forward = lambda logits, labels: real(logits, labels) * float("nan")


@pytest.mark.slow
def test_a_run_without_one_successful_step_has_no_results(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="allnan",
                                       train={"epochs": 1, "nan_policy": "skip"}))
    with pytest.raises(NoTrainingStepError):
        Trainer(cfg, hooks=[NaNAlways(0)]).fit()
    assert not (Path(cfg.output_dir) / "final.json").exists()


class PoisonAfterStep:
    """Makes a parameter NaN inside the optimiser step of the second step."""

    def on_train_start(self, trainer):  # after the schedule wrapped optimizer.step
        real, calls = trainer.optimizer.step, []

        def step(*args, **kwargs):
            out = real(*args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                next(trainer.model.parameters()).data.fill_(float("nan"))
            return out

        trainer.optimizer.step = step


@pytest.mark.slow
def test_non_finite_parameters_after_a_step_stop_the_run(tmp_path, tiny_synthetic_mars):
    cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="poison",
                                       train={"epochs": 1, "nan_policy": "skip"}, eval={"untrained": False}))
    with pytest.raises(NonFiniteParametersError, match="global step 2"):
        Trainer(cfg, hooks=[PoisonAfterStep()]).fit()


# --------------------------------------------------------------------------- checkpoint before evaluation
class Crash:
    """Raises in the evaluation of epoch ``eval_epoch`` or at global step ``step``."""

    def __init__(self, eval_epoch=None, step=None):
        self.eval_epoch, self.step = eval_epoch, step

    def on_evaluate(self, trainer, epoch, metrics):
        if epoch + 1 == self.eval_epoch:
            raise RuntimeError("simulated crash in evaluation")

    def on_batch_end(self, trainer, batch, outputs, losses):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash in training")


@pytest.mark.slow
def test_crash_in_evaluation_loses_no_epoch_and_resume_stays_exact(tmp_path, tiny_synthetic_mars):
    sections = {"train": {"epochs": 2}, "eval": {"untrained": False, "every": 1}}
    straight_cfg = load_config(tiny_config_file(tmp_path, tiny_synthetic_mars, name="straight", **sections))
    straight = Trainer(straight_cfg).fit()
    path = tiny_config_file(tmp_path, tiny_synthetic_mars, name="crashy", **sections)
    with pytest.raises(RuntimeError, match="in evaluation"):
        Trainer(load_config(path), hooks=[Crash(eval_epoch=1)]).fit()
    out = tmp_path / "crashy"
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # before: no last.pt, epoch 1 lost
    steps_per_epoch = straight["global_step"] // 2
    with pytest.raises(RuntimeError, match="in training"):  # epoch 1 evaluated first, then dies in epoch 2
        Trainer(load_config(path), hooks=[Crash(step=steps_per_epoch + 1)], resume=out).fit()
    final = Trainer(load_config(path), resume=out).fit()
    assert final["final"] == straight["final"] and final["history"] == straight["history"]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["type"] == "train"]
    assert train_steps == list(range(1, straight["global_step"] + 1))  # no record repeated after a resume
    assert [r["epoch"] for r in records if r["type"] == "eval"] == [1, 2]
    wa = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    wb = load_checkpoint(out / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
