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


def default_dataset_dir() -> Path:
    """``$REID_DATASETS/synthetic_mars`` if set; else ``<repo root>/datasets/synthetic_mars`` when the
    package runs from a checkout (the folder holding ``pyproject.toml``); else
    ``./datasets/synthetic_mars``."""
    env = os.environ.get("REID_DATASETS")
    if env:
        return Path(env).expanduser() / DEFAULT_DIRNAME
    repo_root = Path(__file__).resolve().parents[3]  # reid/data/synthetic/cache.py
    if (repo_root / "pyproject.toml").is_file() and (repo_root / "reid").is_dir():
        return repo_root / "datasets" / DEFAULT_DIRNAME
    return Path.cwd() / "datasets" / DEFAULT_DIRNAME


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


__all__ = ["DEFAULT_DIRNAME", "default_dataset_dir", "read_stamp", "ensure_synthetic_mars"]
