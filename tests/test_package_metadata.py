"""Package metadata: the version, the dependency list, the typing marker."""

from __future__ import annotations

import tomllib
from pathlib import Path

import reid

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_version_matches_pyproject():
    version = PYPROJECT["project"]["version"]
    assert reid.__version__ == version
    assert reid._SOURCE_VERSION == version  # the fallback for an uninstalled source tree


def test_py_typed_marker_ships():
    assert (REPO / "reid" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["reid"]


def test_console_script_points_at_the_cli():
    assert PYPROJECT["project"]["scripts"] == {"reid": "reid.cli:main"}


def _names(requirements: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_hard_dependencies_are_all_imported_and_faiss_builds_do_not_collide():
    hard = _names(PYPROJECT["project"]["dependencies"])
    assert "scikit-learn" not in hard and "tensorboard" not in hard
    # one faiss build only: faiss-cpu and faiss-gpu write the same module, so no extra adds the other
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not any(n.startswith("faiss") for reqs in extras.values() for n in _names(reqs))
    assert "scikit-learn" in _names(extras["dev"]) and "tensorboard" in _names(extras["tensorboard"])
    module_of = {"faiss-cpu": "faiss", "pytorch-metric-learning": "pytorch_metric_learning",
                 "opencv-python-headless": "cv2", "pyyaml": "yaml"}
    sources = "\n".join(p.read_text() for d in ("reid", "tools") for p in (REPO / d).rglob("*.py"))
    for dist in hard:
        module = module_of.get(dist, dist)
        assert f"import {module}" in sources or f"from {module}" in sources, f"{dist} is never imported"
