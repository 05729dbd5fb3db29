"""The shipped configs are package data addressable by name (reid.configs), and their ``base:``
chains resolve from the package folder, whatever the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import reid.configs as configs
from reid.configs import CONFIG_DIR, ConfigNotFoundError, config_path, shipped_configs
from reid.engine.config import load_config
from reid.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_configs_live_in_the_package_and_the_checkout_path_is_a_relative_symlink():
    assert CONFIG_DIR == (REPO / "reid" / "configs").resolve()
    link = REPO / "configs"
    assert link.is_symlink() and Path(link.readlink()) == Path("reid/configs")  # relative: survives a move
    assert (link / "default.yaml").resolve() == CONFIG_DIR / "default.yaml"


def test_shipped_names_cover_every_yaml_file():
    on_disk = sorted(p.relative_to(CONFIG_DIR).with_suffix("").as_posix() for p in CONFIG_DIR.rglob("*.yaml"))
    assert shipped_configs() == on_disk
    assert {"default", "mars_resnet50", "schemes/imae", "study_smoke"} <= set(shipped_configs())


@pytest.mark.parametrize("name", ["default", "default.yaml", "configs/default.yaml", "./configs/default.yaml"])
def test_spellings_of_a_shipped_name_resolve_from_any_directory(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the shipped file must be found by name
    assert config_path(name) == CONFIG_DIR / "default.yaml"


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.yaml").write_text("train: {epochs: 3}\n")
    assert config_path("default.yaml") == Path("default.yaml")
    assert config_path(tmp_path / "default.yaml") == tmp_path / "default.yaml"
    assert config_path("default") == CONFIG_DIR / "default.yaml"  # no such file: the shipped one


def test_unknown_name_is_a_user_error_listing_the_shipped_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigNotFoundError) as info:
        config_path("schemes/imea")
    err = info.value
    assert isinstance(err, UserError) and isinstance(err, FileNotFoundError)
    assert "'schemes/imea'" in str(err) and "schemes/imae" in str(err) and "mars_resnet50" in str(err)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigNotFoundError, match="is a directory"):
        config_path("folder")
    with pytest.raises(ConfigNotFoundError):
        config_path("")


def test_a_name_cannot_escape_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path / "pkg" / "configs")
    configs.CONFIG_DIR.mkdir(parents=True)
    (tmp_path / "pkg" / "secret.yaml").write_text("x: 1\n")
    (configs.CONFIG_DIR / "ok.yaml").write_text("x: 1\n")
    monkeypatch.chdir(tmp_path)  # "../secret" is no file from here, so only the name lookup could find it
    assert configs.config_path("ok") == configs.CONFIG_DIR / "ok.yaml"
    with pytest.raises(ConfigNotFoundError):
        configs.config_path("../secret")


@pytest.mark.parametrize("name", [n for n in shipped_configs() if not n.startswith("study_")])
def test_every_training_config_loads_by_name_outside_the_checkout(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(config_path(name), set_output_dir=False)
    assert cfg.name


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("name", ["mars_resnet50", "schemes/imae", "schemes/proselflc"])
def test_base_chains_resolve_from_the_package_folder(name, tmp_path, monkeypatch):
    """Every key the child file leaves unset carries the value written in default.yaml."""
    monkeypatch.chdir(tmp_path)
    child_yaml = yaml.safe_load(config_path(name).read_text())
    assert child_yaml["base"] in ("default.yaml", "../default.yaml")
    default_keys = _flat(yaml.safe_load(config_path("default").read_text()))
    child_keys = _flat({k: v for k, v in child_yaml.items() if k != "base"})
    loaded = _flat(load_config(config_path(name), set_output_dir=False).to_plain())
    inherited = {k: v for k, v in default_keys.items() if not any(k == c or k.startswith(c + ".") or c.startswith(k + ".") for c in child_keys)}
    assert inherited, "the child should inherit something from default.yaml"
    for key, value in inherited.items():
        assert loaded[key] == value, key
