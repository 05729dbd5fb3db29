"""Atomic checkpoints and weights_only-safe RNG states."""

from __future__ import annotations

import argparse
import random

import numpy as np
import pytest
import torch

from reid.engine import checkpoint as ckpt_mod
from reid.engine.checkpoint import (
    CheckpointError,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)


def test_atomic_save_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1, "w": torch.arange(3)}, path)
    before = path.read_bytes()

    real_save = torch.save

    def failing_save(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)  # bytes hit the temp file ...
        raise OSError("disk full")  # ... then the write fails before the rename

    monkeypatch.setattr(ckpt_mod.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"epoch": 2, "w": torch.arange(5)}, path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_atomic_save_replaces_on_success(tmp_path):
    path = tmp_path / "sub" / "ck.pt"
    atomic_save({"epoch": 1}, path)
    atomic_save({"epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 2


def test_rng_state_round_trip_through_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    state = capture_rng_state()
    expected = (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist())
    atomic_save({"rng": state}, tmp_path / "rng.pt")
    # scramble, then restore from the weights_only-loaded file
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.randn(3).tolist(), torch.rand(3).tolist()) == expected


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(bad)


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"x": argparse.Namespace(a=1)}, path)  # any non-allowlisted class
    with pytest.raises(CheckpointError, match="obj.pt"):
        load_checkpoint(path)
