"""The wheel built from the project holds the shipped configs, ``py.typed`` and the ``reid`` console
script, and declares no faiss GPU build (built once per session from a copy of the tree, so the
shared checkout gets no ``build/`` folder)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from reid.configs import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", "build", "dist", "runs", "datasets", "__pycache__", "*.egg-info",
                              ".pytest_cache", ".git", "out", "*.npz")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src") / "reid-src"
    shutil.copytree(REPO, src, ignore=SKIP, symlinks=True)  # the top-level configs symlink stays a link
    dist = tmp_path_factory.mktemp("dist")
    # --no-build-isolation: use this environment's setuptools, no download
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(dist), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    (path,) = dist.glob("reid-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_wheel_ships_every_config_and_the_typing_marker(wheel):
    names = set(wheel.namelist())
    shipped = {f"reid/configs/{p.relative_to(CONFIG_DIR).as_posix()}" for p in CONFIG_DIR.rglob("*.yaml")}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert "reid/configs/__init__.py" in names and "reid/py.typed" in names
    assert not any(n.startswith(("tests/", "tools/", "configs/")) for n in names)


def test_wheel_installs_the_reid_console_script(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[console_scripts]" in text and "reid = reid.cli:main" in text


def test_wheel_metadata_declares_one_faiss_build_and_optional_extras(wheel):
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(wheel.read(meta).decode()).get_all("Requires-Dist")
    hard = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("faiss-cpu") for r in hard)
    assert not any(r.startswith("faiss-gpu") for r in requires)
    assert not any(r.startswith(("scikit-learn", "tensorboard")) for r in hard)
