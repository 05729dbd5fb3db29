"""Where the generated synthetic dataset goes: a documented cache folder (``REID_HOME``), never the
current directory of an installed package, never site-packages (docs/install.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid.data.synthetic import cache
from reid.data.synthetic.cache import default_dataset_dir, ensure_synthetic_mars, read_stamp, reid_home

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("REID_HOME", "REID_DATASETS", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_reid_home_moves_the_default_dataset_folder(clean_env, tmp_path):
    clean_env.setenv("REID_HOME", str(tmp_path / "cache"))
    assert reid_home() == tmp_path / "cache"
    assert default_dataset_dir() == tmp_path / "cache" / "datasets" / "synthetic_mars"


def test_reid_home_moves_the_generated_dataset(clean_env, tmp_path):
    clean_env.setenv("REID_HOME", str(tmp_path / "cache"))
    out = ensure_synthetic_mars(ids_train=3, ids_test=3, cameras=2, seed=0, tiny=True, progress=False)
    assert out == tmp_path / "cache" / "datasets" / "synthetic_mars"
    assert read_stamp(out) is not None and (out / "bbox_train").is_dir()
    assert not (tmp_path / "datasets").exists()  # nothing written into the current directory


def test_reid_datasets_keeps_precedence(clean_env, tmp_path):
    clean_env.setenv("REID_HOME", str(tmp_path / "cache"))
    clean_env.setenv("REID_DATASETS", str(tmp_path / "data"))
    assert default_dataset_dir() == tmp_path / "data" / "synthetic_mars"


def test_source_checkout_keeps_its_datasets_folder(clean_env):
    assert cache.source_checkout_root() == REPO  # these tests run from the checkout
    assert default_dataset_dir() == REPO / "datasets" / "synthetic_mars"


def test_installed_package_uses_the_user_cache_not_the_current_directory(clean_env, tmp_path):
    clean_env.setattr(cache, "source_checkout_root", lambda: None)  # as from site-packages
    expected = tmp_path / "home" / ".cache" / "reid" / "datasets" / "synthetic_mars"
    assert default_dataset_dir() == expected
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_dataset_dir() == tmp_path / "xdg" / "reid" / "datasets" / "synthetic_mars"


def test_site_packages_is_never_taken_for_a_checkout(tmp_path, monkeypatch):
    fake = tmp_path / "lib" / "site-packages"
    module = fake / "reid" / "data" / "synthetic" / "cache.py"
    module.parent.mkdir(parents=True)
    (fake / "reid" / "__init__.py").write_text("")
    (fake / "pyproject.toml").write_text("")  # even with a stray pyproject.toml next to the package
    monkeypatch.setattr(cache, "__file__", str(module))
    assert cache.source_checkout_root() is None
