"""The shipped YAML configs, installed with the package and addressable by name.

``config_path("default")`` -> ``<package>/configs/default.yaml``; ``config_path("schemes/imae")``
-> ``<package>/configs/schemes/imae.yaml``. The files live next to this module (package data, see
``pyproject.toml``), so their relative ``base: ../default.yaml`` references resolve wherever the
package is installed. In a source checkout the top-level ``configs`` folder is a symlink to this
one, so ``configs/default.yaml`` paths keep working from the repository root.
"""

from __future__ import annotations

from pathlib import Path

from reid.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent
SUFFIXES = (".yaml", ".yml")


class ConfigNotFoundError(UserError, FileNotFoundError):
    """``--config`` names neither an existing file nor a shipped config."""


def shipped_configs() -> list[str]:
    """Names of the shipped configs, sorted: paths below the package's ``configs`` folder, in
    POSIX form, without the suffix (``default``, ``mars_resnet50``, ``schemes/imae``, ...)."""
    names = []
    for path in CONFIG_DIR.rglob("*"):
        if path.suffix in SUFFIXES and path.is_file() and not path.name.startswith("."):
            names.append(path.relative_to(CONFIG_DIR).with_suffix("").as_posix())
    return sorted(names)


def _shipped_candidates(name: str) -> list[Path]:
    # "configs/default.yaml" is how the README spells a shipped file from a checkout: outside
    # one it means the same shipped file, so the README's commands work from any directory.
    stem = name.replace("\\", "/")
    if stem.startswith("./"):
        stem = stem[2:]
    if stem.startswith("configs/"):
        stem = stem[len("configs/"):]
    if stem.endswith(SUFFIXES):
        return [CONFIG_DIR / stem]
    return [CONFIG_DIR / f"{stem}{suffix}" for suffix in SUFFIXES]


def _inside_config_dir(path: Path) -> bool:
    # a name like "../../etc/passwd" must not escape the shipped folder
    try:
        path.resolve().relative_to(CONFIG_DIR)
    except ValueError:
        return False
    return True


def config_path(name_or_path: str | Path) -> Path:
    """The YAML file a ``--config`` value means.

    An existing file wins (relative to the current directory, as given); otherwise the value is a
    shipped config name, with or without ``.yaml`` and with or without a leading ``configs/``.
    Raises :class:`ConfigNotFoundError` (a :class:`reid.errors.UserError` and a
    ``FileNotFoundError``) listing the shipped names when it is neither.
    """
    given = Path(name_or_path).expanduser()
    if given.is_file():
        return given
    text = str(name_or_path).strip()
    if text:
        for candidate in _shipped_candidates(text):
            if candidate.is_file() and _inside_config_dir(candidate):
                return candidate
    what = "is a directory, not a YAML file" if given.is_dir() else "is not a file"
    raise ConfigNotFoundError(
        f"config {str(name_or_path)!r} {what} and names no shipped config; pass the path of a YAML "
        f"file or one of the shipped names: {', '.join(shipped_configs())}"
    )


__all__ = ["CONFIG_DIR", "ConfigNotFoundError", "config_path", "shipped_configs"]
