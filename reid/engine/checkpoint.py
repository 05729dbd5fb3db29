"""Checkpoints: atomic writes, ``weights_only`` loads, and RNG states as plain data.

A checkpoint is a dict of tensors and plain Python values only, so it loads with
``torch.load(path, weights_only=True)`` (no arbitrary unpickling). Keys written by the trainer:

``model``, ``optimizer``, ``scheduler``, ``scaler`` (state dicts), ``rng`` (see
:func:`capture_rng_state`), ``sampler`` (PK sampler state), ``epoch`` (epochs completed),
``global_step``, ``best`` (best metric so far and its epoch), ``untrained`` (metrics of the network
before training), ``nan_skipped``, ``config`` (the resolved config as a plain dict),
``num_classes`` and ``metrics_bytes`` (the size of ``metrics.jsonl`` at that state: a resumed run
truncates the file back to it, so records are never repeated). The feature extractor relies on ``model``, ``config["model"]``, ``config["data"]``
and ``num_classes``.

Atomicity: the bytes go to a temporary file in the destination folder, which is flushed and
``fsync``-ed, then ``os.replace``-d over the destination (atomic on POSIX and Windows within one
file system), and the folder entry is ``fsync``-ed. A crash or a failing write at any point leaves
either the old checkpoint or the new one, never a truncated file; a full disk is an
:class:`reid.atomic.AtomicWriteError` naming the file, and a killed write's temporary file is
removed by the next save (and when a resumed run claims its folder).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid.atomic import atomic_write
from reid.errors import UserError


class CheckpointError(UserError, RuntimeError):
    """A checkpoint could not be read or lacks a key; the message names the file and the key."""


class CheckpointKeyError(CheckpointError, KeyError):
    """A checkpoint lacks a key (a file not written by reid's trainer, or by an older version)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :mod:`reid.atomic`)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with ``weights_only=True``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def require_keys(ckpt: dict, keys: tuple[str, ...], path: str | Path) -> None:
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks key(s) {missing} (has {sorted(ckpt)})")


# ---------------------------------------------------------------------------------------------
# RNG state as plain data (weights_only-safe)
# ---------------------------------------------------------------------------------------------


def capture_rng_state() -> dict:
    """States of python ``random``, numpy's global generator, torch CPU and every CUDA device,
    converted to tensors / lists / ints so that ``weights_only=True`` can load them."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = {
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


__all__ = [
    "CheckpointError",
    "atomic_save",
    "load_checkpoint",
    "require_keys",
    "capture_rng_state",
    "restore_rng_state",
]
