"""The cached embedded dataset: :func:`ensure_synthetic_mars` generates a dataset once, atomically,
and reuses it while its ``SYNTHETIC.json`` stamp matches the generator version and parameters."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from reid.data.synthetic.params import GENERATOR_VERSION, SyntheticMarsParams
from reid.data.synthetic.writer import STAMP_NAME, make_synthetic_mars

DEFAULT_DIRNAME = "synthetic_mars"
HOME_ENV = "REID_HOME"
DATASETS_ENV = "REID_DATASETS"


def reid_home() -> Path:
    """The user's cache folder for generated data: ``$REID_HOME``, else ``$XDG_CACHE_HOME/reid``,
    else ``~/.cache/reid``. Never inside the installed package."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "reid"


def source_checkout_root() -> Path | None:
    """The repository root when ``reid`` is imported from a source checkout (editable install or
    ``PYTHONPATH``): the folder above the package holding ``pyproject.toml``; None for an install
    into site-packages."""
    root = Path(__file__).resolve().parents[3]  # reid/data/synthetic/cache.py
    if any(part in ("site-packages", "dist-packages") for part in root.parts):
        return None
    if (root / "pyproject.toml").is_file() and (root / "reid" / "__init__.py").is_file():
        return root
    return None


def default_dataset_dir() -> Path:
    """Where the embedded synthetic dataset is generated when no folder is given, first match:

    1. ``$REID_DATASETS/synthetic_mars``;
    2. ``$REID_HOME/datasets/synthetic_mars``;
    3. ``<repo root>/datasets/synthetic_mars`` when the package runs from a source checkout;
    4. ``~/.cache/reid/datasets/synthetic_mars`` (``$XDG_CACHE_HOME/reid/...`` if set).

    Independent of the current directory, and never inside site-packages (docs/install.md).
    """
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env).expanduser() / DEFAULT_DIRNAME
    if os.environ.get(HOME_ENV):
        return reid_home() / "datasets" / DEFAULT_DIRNAME
    root = source_checkout_root()
    if root is not None:
        return root / "datasets" / DEFAULT_DIRNAME
    return reid_home() / "datasets" / DEFAULT_DIRNAME


def read_stamp(root: str | os.PathLike) -> dict | None:
    """The ``SYNTHETIC.json`` stamp of a generated dataset, or None when absent or unreadable."""
    try:
        return json.loads((Path(root) / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def _stamp_matches(root: Path, params: SyntheticMarsParams) -> bool:
    stamp = read_stamp(root)
    return bool(stamp) and stamp.get("version") == GENERATOR_VERSION and stamp.get("params") == params.to_json()


def ensure_synthetic_mars(out: str | os.PathLike | None = None, force: bool = False, **params: Any) -> Path:
    """Return a generated synthetic MARS folder, generating it only when needed.

    Reuses ``out`` (default :func:`default_dataset_dir`) when its ``SYNTHETIC.json`` stamp matches
    the generator version and ``params``; otherwise generates into a temporary sibling folder and
    moves it into place with ``os.replace``, so an interrupted run never leaves a folder that looks
    complete. A stale or unstamped folder is moved aside first and deleted after the swap.
    Parameters are those of :func:`make_synthetic_mars`.
    """
    workers = params.pop("workers", None)
    progress = params.pop("progress", True)
    spec = SyntheticMarsParams.create(**params)
    out = Path(out) if out is not None else default_dataset_dir()
    if not force and _stamp_matches(out, spec):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    print(f"[reid] generating synthetic MARS dataset into {out} (seed={spec.seed}, "
          f"{spec.ids_train}+{spec.ids_test} ids, {spec.cameras} cameras)", flush=True)
    try:
        fields = {k: v for k, v in spec.to_json().items()}
        fields["adverse_rates"] = spec.adverse_rates
        make_synthetic_mars(tmp / "data", workers=workers, progress=progress, **fields)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        try:
            os.replace(tmp / "data", out)
        except OSError:
            # someone else put a dataset in place meanwhile: keep theirs if it matches
            if not _stamp_matches(out, spec):
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


__all__ = ["DEFAULT_DIRNAME", "HOME_ENV", "DATASETS_ENV", "reid_home", "source_checkout_root", "default_dataset_dir", "read_stamp", "ensure_synthetic_mars"]
