"""`reid train` / tools/train.py: every user error is one line on stderr, exit status 2, no
traceback, found before the run folder or the data exist (issue 13)."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from reid import cli
from reid.engine.config import load_config, save_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder, so 'no run folder was created' is checkable: runs/ must not appear."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _no_training(monkeypatch):
    """Fail the test if the command got as far as training."""
    import reid.engine

    def refuse(*args, **kwargs):
        raise AssertionError("reached reid.engine.train: the error should have been found before")
    monkeypatch.setattr(reid.engine, "train", refuse)


@pytest.mark.parametrize("override, needles", [
    ("data.root=/nonexistent/MARS", ("data.root", "/nonexistent/MARS", "does not exist", "command-line override")),
    ("model.backbone=resnet7", ("model.backbone", "resnet18")),
    ("loss.id.scheme=imea", ("loss.id.scheme", "Did you mean 'imae'")),
    ("loss.id.params.T=-1", ("loss.id", "T=-1", "command-line override")),   # was accepted, failed after data loading
    ("loss.id.params.tau=3", ("loss.id", "tau", "valid parameters: T")),
    ("loss.metric.params.margin=-1", ("loss.metric", "margin=-1")),
    ("train.epochs=true", ("train.epochs",)),                                 # was silently 1 epoch
    ("data.p=yes", ("data.p", "'yes'")),
    ("train.hooks=[nowhere.module:Hook]", ("train.hooks", "nowhere")),
    ("optim.lrr=0.1", ("optim.lrr", "Did you mean 'optim.lr'")),
])
def test_config_errors_are_one_line_before_any_work(capsys, in_tmp, monkeypatch, override, needles):
    _no_training(monkeypatch)
    code, _, err = run(capsys, "train", override)
    one_line_error(code, err, *needles)
    assert not (in_tmp / "runs").exists()  # no run folder was created


def test_print_config_runs_the_preflight(capsys, in_tmp):
    # --print-config used to print a config whose loss could not be built
    code, out, err = run(capsys, "train", "--print-config", "loss.id.params.T=-1")
    one_line_error(code, err, "loss.id", "T=-1")
    assert out == ""
    # ...but not the machine checks: a placeholder data root can still be printed
    code, out, err = run(capsys, "train", "--config", "mars_resnet50", "--print-config")
    assert code == 0, err
    assert "root: /path/to/MARS" in out and "backbone: resnet50" in out


def test_config_error_in_a_file_names_the_file(capsys, in_tmp):
    bad = in_tmp / "bad.yaml"
    bad.write_text("base: default\nloss:\n  id: {scheme: imae, params: {T: -2}}\n")
    code, _, err = run(capsys, "train", "--config", bad, "--print-config")
    one_line_error(code, err, "base config 'default' not found")
    bad.write_text(f"base: {REPO / 'configs' / 'default.yaml'}\nloss:\n  id: {{scheme: imae, params: {{T: -2}}}}\n")
    code, _, err = run(capsys, "train", "--config", bad, "--print-config")
    one_line_error(code, err, "loss.id", "T=-2", str(bad.resolve()))


def test_non_utf8_config_is_one_line_naming_the_file(capsys, in_tmp):
    bad = in_tmp / "latin1.yaml"
    bad.write_bytes("optim:\n  name: caf\xe9\n".encode("latin-1"))
    code, _, err = run(capsys, "train", "--config", bad)
    one_line_error(code, err, "latin1.yaml", "line 2", "UTF-8")


def test_unknown_config_name_lists_the_shipped_ones(capsys, in_tmp):
    code, _, err = run(capsys, "train", "--config", "schemes/imea")
    one_line_error(code, err, "--config schemes/imea", "schemes/imae", "mars_resnet50")


def test_shipped_configs_by_name_equal_their_files(capsys, in_tmp):
    for name, path in (("mars_resnet50", "configs/mars_resnet50.yaml"), ("schemes/dm", "configs/schemes/dm.yaml")):
        by_name = run(capsys, "train", "--config", name, "--print-config", "output_dir=x")
        by_path = run(capsys, "train", "--config", REPO / path, "--print-config", "output_dir=x")
        assert by_name[0] == 0 and by_name == by_path


def _run_folder(tmp: Path, checkpoint: bytes | None) -> Path:
    folder = tmp / "runs" / "old"
    folder.mkdir(parents=True)
    save_config(load_config(REPO / "configs" / "default.yaml", [f"output_dir={folder}"]), folder / "config.yaml")
    if checkpoint is not None:
        (folder / "last.pt").write_bytes(checkpoint)
    return folder


def test_resume_from_a_truncated_checkpoint(capsys, in_tmp, monkeypatch):
    import torch

    torch.save({"model": {"w": torch.zeros(256)}, "epoch": 1}, in_tmp / "full.pt")
    data = (in_tmp / "full.pt").read_bytes()
    folder = _run_folder(in_tmp, data[: len(data) // 2])
    _no_training(monkeypatch)
    code, _, err = run(capsys, "train", "--resume", folder)
    one_line_error(code, err, "--resume", "last.pt", "truncated")  # was 'EOFError: ' after 30 traceback lines


def test_resume_without_checkpoint_and_missing_folder(capsys, in_tmp, monkeypatch):
    _no_training(monkeypatch)
    folder = _run_folder(in_tmp, None)
    one_line_error(*run(capsys, "train", "--resume", folder)[::2], "--resume", "no checkpoint", "last.pt")
    (folder / "last.pt").write_bytes(b"")
    one_line_error(*run(capsys, "train", "--resume", folder)[::2], "--resume", "empty")
    one_line_error(*run(capsys, "train", "--resume", in_tmp / "nowhere")[::2], "--resume", "does not exist")
    one_line_error(*run(capsys, "train", "--resume")[::2], "--resume", "no run folder")
    one_line_error(*run(capsys, "train", "--resume", folder, "--overwrite")[::2], "--resume", "--overwrite")


def test_overwrite_reaches_the_engine(capsys, in_tmp, monkeypatch):
    import reid.engine

    seen = []
    monkeypatch.setattr(reid.engine, "train", lambda cfg, **kw: seen.append(kw) or {"final": {}})
    assert run(capsys, "train", "--overwrite", "output_dir=out")[0] == 0
    assert run(capsys, "train", "output_dir=out")[0] == 0
    assert [kw["overwrite"] for kw in seen] == [True, False]
    assert seen[0]["resume"] is None


def test_engine_train_accepts_overwrite():
    """Needs the trainer engineer's ``reid.engine.train(..., overwrite=False)``."""
    import inspect

    import reid.engine

    assert "overwrite" in inspect.signature(reid.engine.train).parameters


@pytest.mark.parametrize("raised, needles", [
    (OSError(errno.ENOSPC, "No space left on device", "runs/x/last.pt"), ("no space left", "runs/x/last.pt")),
    (PermissionError(errno.EACCES, "Permission denied", "/runs"), ("Permission denied", "/runs")),
])
def test_disk_full_and_permissions_are_one_line(capsys, in_tmp, monkeypatch, raised, needles):
    import reid.engine

    def fail(*args, **kwargs):
        raise raised
    monkeypatch.setattr(reid.engine, "train", fail)
    one_line_error(*run(capsys, "train", "output_dir=out")[::2], *needles)


def test_user_errors_raised_while_training_are_one_line(capsys, in_tmp, monkeypatch):
    """E.g. the trainer's 'data.p is larger than the identities' (any reid.errors.UserError)."""
    import reid.engine
    from reid.data.tracklet import DatasetError

    def fail(*args, **kwargs):
        raise DatasetError("data.p=80 identities per batch, but the training split has 60; lower data.p")
    monkeypatch.setattr(reid.engine, "train", fail)
    one_line_error(*run(capsys, "train", "output_dir=out")[::2], "data.p=80")
    with pytest.raises(DatasetError):  # --debug: the traceback
        cli.main(["train", "output_dir=out", "--debug"])


def test_bugs_keep_their_traceback_and_non_finite_stop_exits_3(capsys, in_tmp, monkeypatch):
    import reid.engine
    from reid.engine.loop import NonFiniteLossError

    def bug(*args, **kwargs):
        raise KeyError("an internal bug")
    monkeypatch.setattr(reid.engine, "train", bug)
    with pytest.raises(KeyError):
        cli.main(["train", "output_dir=out"])

    def stop(*args, **kwargs):
        raise NonFiniteLossError("non-finite loss at step 3; state saved to nan_stop.pt")
    monkeypatch.setattr(reid.engine, "train", stop)
    code, _, err = run(capsys, "train", "output_dir=out")
    assert code == 3 and "nan_stop.pt" in err


def test_tools_train_py_subprocess_one_line_and_no_run_folder(tmp_path):
    """The real boundary: a fresh interpreter, the README's command, exit status 2, one line."""
    res = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "loss.id.params.T=-1"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "loss.id" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()
