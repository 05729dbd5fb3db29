"""The `reid` console command: dispatch, --version, help texts, tools/*.py as thin wrappers, and
one-line errors in the smaller commands (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import reid
from reid import cli

REPO = Path(__file__).resolve().parents[1]
WRAPPERS = {"train.py": "train", "eval.py": "eval", "inspect_dataset.py": "inspect", "study.py": "study",
            "make_synthetic_mars.py": "make_synthetic", "benchmark.py": "benchmark"}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"reid {reid.__version__}"


def test_python_dash_m_reid_cli_version():
    res = subprocess.run([sys.executable, "-m", "reid.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"reid {reid.__version__}", res.stderr


def test_help_lists_every_command_and_teaches(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in cli.COMMANDS:
        assert f"  {name} " in out
    assert "examples:" in out and "reid train --config mars_resnet50" in out


def test_unknown_command_suggests(capsys):
    one_line_error(*run(capsys, "trian")[::2], "unknown command 'trian'", "Did you mean 'train'")
    one_line_error(*run(capsys, "benchmark", "los")[::2], "unknown benchmark area", "Did you mean 'losses'")


@pytest.mark.parametrize("command", ["train", "eval", "inspect", "study", "make-synthetic"])
def test_every_command_help_has_examples_and_exit_status(capsys, command):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert out.startswith(f"usage: reid {command}")
    assert "examples:" in out and "exit status" in out and "--debug" in out
    assert f"  reid {command} " in out  # examples spelled with the console command


def test_tools_are_thin_wrappers_that_keep_their_names(capsys):
    for tool, module in WRAPPERS.items():
        text = (REPO / "tools" / tool).read_text()
        assert len(text.splitlines()) <= 10, tool
        assert f"from reid.cli.{module} import main" in text and f'prog="tools/{tool}"' in text
    # the README's spelling in the help text of a wrapper
    from reid.cli.train import build_parser

    assert "python tools/train.py --config mars_resnet50" in build_parser("tools/train.py").format_help()


def test_inspect_missing_root_is_one_line(capsys, tmp_path):
    one_line_error(*run(capsys, "inspect", "--root", tmp_path / "nowhere")[::2], "nowhere", "does not exist")


def test_study_errors_are_one_line(capsys, tmp_path):
    one_line_error(*run(capsys, "study", "--config", "study_smok")[::2], "--config study_smok", "study_smoke")
    bad = tmp_path / "s.yaml"
    bad.write_text("name: s\ntask: classification\nschemes: [{name: cce}]\nnoise: [{kind: symmetric, rates: [0.4]}]\nseeds: [0]\nepochz: 3\n")
    one_line_error(*run(capsys, "study", "--config", bad, "--out", tmp_path / "out")[::2], "s.yaml", "epochz")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, needles", [
    (("--cameras", "1"), ("cameras",)),
    (("--adverse-scale", "-1"), ("--adverse-scale",)),
    (("--no-data",), ("--no-data", "--preview")),
    (("--workers", "0"), ("--workers 0",)),
])
def test_make_synthetic_errors_are_one_line_before_drawing(capsys, tmp_path, argv, needles):
    one_line_error(*run(capsys, "make-synthetic", "--out", tmp_path / "syn", *argv)[::2], *needles)
    assert not (tmp_path / "syn").exists()


def test_interrupt_is_one_line_and_130(capsys, monkeypatch, tmp_path):
    import reid.engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reid.engine, "train", interrupted)
    code, _, err = run(capsys, "train", "output_dir=out")
    assert code == 130 and err.strip() == "interrupted"
