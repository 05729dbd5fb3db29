"""Retrieval evaluation of a model under a run's settings, during training and afterwards from a
checkpoint. Both paths build the test data with :func:`reid.engine.builders.build_data` from the
run's **whole** ``data`` section (reader, protocol, synthetic parameters, corrupt-frame policy),
so a checkpoint is re-evaluated on exactly the data it was trained and evaluated on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid.engine import builders
from reid.engine.checkpoint import CheckpointError, CheckpointKeyError, load_checkpoint
from reid.engine.config import DataConfig, EvalConfig


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the given path."""


@torch.no_grad()
def evaluate_retrieval(model: nn.Module, data, data_cfg: DataConfig, eval_cfg: EvalConfig,
                       device: torch.device | str, amp: bool = False, num_workers: int = 0,
                       progress: bool = True) -> dict:
    """``reid.eval.evaluate`` of ``model`` on ``data.query`` / ``data.gallery`` under
    ``data.protocol`` and ``eval.metric`` (features from ``eval.max_frames`` frames per
    tracklet, ``eval.chunk`` frames per forward). Returns the report's ``to_dict()``. Each
    distinct test tracklet is extracted once; the model's train/eval mode is restored."""
    from reid.eval import evaluate, query_gallery_index
    from reid.eval.extract import extract_query_gallery

    was_training = model.training
    query_feats, gallery_feats = extract_query_gallery(
        model, data, builders.build_test_transform(data_cfg), device=device, chunk=eval_cfg.chunk,
        num_workers=num_workers, progress=progress, max_frames=eval_cfg.max_frames, amp=amp,
        corrupt=data.corrupt,
    )
    report = evaluate(
        query_feats, gallery_feats,
        np.array([t.pid for t in data.query]), np.array([t.camid for t in data.query]),
        np.array([t.pid for t in data.gallery]), np.array([t.camid for t in data.gallery]),
        protocol=data.protocol, metric=eval_cfg.metric,
        # which gallery entry is each query itself (single_camera's only junk)
        query_gallery_index=query_gallery_index(data.query, data.gallery),
    )
    model.train(was_training)
    return report.to_dict()


def _require(mapping: Any, key: str, where: str, path: Path) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        have = sorted(mapping) if isinstance(mapping, dict) else type(mapping).__name__
        raise CheckpointKeyError(f"{path}: checkpoint lacks {where}{key!r} (has {have}); was it written by reid's trainer?")
    return mapping[key]


def load_model_from_checkpoint(checkpoint: str | Path) -> tuple[nn.Module, dict]:
    """``(model in eval mode, checkpoint dict)`` from an engine checkpoint file.

    The backbone's ``pretrained`` setting is ignored (set to None): every weight comes from the
    checkpoint, so rebuilding never downloads or needs the original ImageNet file."""
    from reid.models import build_model
    from reid.models.pretrained import strip_wrapper_prefixes

    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: checkpoint not found")
    ckpt = load_checkpoint(path)  # CheckpointError naming the file when it cannot be read
    state = _require(ckpt, "model", "", path)
    config = _require(ckpt, "config", "", path)
    model_cfg = dict(_require(config, "model", "config.", path))
    num_classes = int(_require(ckpt, "num_classes", "", path))
    model_cfg["pretrained"] = None
    model_cfg["init_from"] = None  # every weight comes from this checkpoint, not from the run's init
    model = build_model(model_cfg, num_classes, strict=False)
    try:
        model.load_state_dict(strip_wrapper_prefixes(state), strict=True)
    except RuntimeError as err:  # torch lists missing/unexpected keys and shape mismatches
        raise CheckpointError(
            f"{path}: the saved weights do not match the model built from config.model {model_cfg}: {err}"
        ) from err
    return model.eval(), ckpt


def _known(section: type, values: dict | None) -> dict:
    """The keys of ``values`` that ``section`` defines (a checkpoint from a newer version may
    carry more; the rebuilt run uses the settings this version knows)."""
    return {k: v for k, v in (values or {}).items() if k in section.model_fields}


def run_settings_of(ckpt: dict, data_root: str | Path | None = None,
                    protocol: str | None = None) -> tuple[DataConfig, EvalConfig]:
    """The run's ``data`` and ``eval`` sections from a checkpoint, with the data root and/or the
    protocol replaced when given. A new root is read with format ``auto`` and no synthetic
    parameters (it is another dataset)."""
    data = _known(DataConfig, ckpt["config"].get("data"))
    if data_root is not None:
        data.update(root=str(data_root), format="auto", synthetic=None)
    if protocol is not None:
        data["protocol"] = protocol
    return (DataConfig.model_validate(data),
            EvalConfig.model_validate(_known(EvalConfig, ckpt["config"].get("eval"))))


def features_from_checkpoint(
    checkpoint: str | Path,
    data_root: str | Path | None = None,
    protocol: str | None = None,
    device: str | torch.device | None = None,
    chunk: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
    max_frames: int | None = None,
) -> dict[str, Any]:
    """Query and gallery features of a trained model, ready for ``reid.eval.evaluate``.

    The model is rebuilt from ``ckpt["config"]["model"]`` and ``ckpt["num_classes"]`` and loaded
    from ``ckpt["model"]``; the data from the run's whole ``data`` section (``data_root`` /
    ``protocol`` replace the run's when given); frames use the run's test transform. ``chunk``
    and ``max_frames`` default to the run's ``eval.chunk`` / ``eval.max_frames``, so by default
    the features are the ones the run's own final evaluation scored.

    Returns ``query_feats``, ``gallery_feats`` (float32 ``[N, D]``), ``query_pids``,
    ``query_camids``, ``gallery_pids``, ``gallery_camids`` (int64), ``query_paths``,
    ``gallery_paths`` (lists of frame paths) and ``protocol``.
    """
    from reid.eval.extract import extract_query_gallery

    model, ckpt = load_model_from_checkpoint(checkpoint)
    data_cfg, eval_cfg = run_settings_of(ckpt, data_root, protocol)
    data = builders.build_data(data_cfg, progress=progress)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    query_feats, gallery_feats = extract_query_gallery(
        model, data, builders.build_test_transform(data_cfg), device=device,
        chunk=chunk or eval_cfg.chunk, num_workers=num_workers, progress=progress,
        max_frames=max_frames if max_frames is not None else eval_cfg.max_frames, corrupt=data.corrupt)
    return {
        "query_feats": query_feats,
        "gallery_feats": gallery_feats,
        "query_pids": np.array([t.pid for t in data.query], dtype=np.int64),
        "query_camids": np.array([t.camid for t in data.query], dtype=np.int64),
        "gallery_pids": np.array([t.pid for t in data.gallery], dtype=np.int64),
        "gallery_camids": np.array([t.camid for t in data.gallery], dtype=np.int64),
        "query_paths": [list(t.frames) for t in data.query],
        "gallery_paths": [list(t.frames) for t in data.gallery],
        "protocol": data.protocol,
        "metric": eval_cfg.metric,
        "dataset": data.name,
    }


__all__ = ["evaluate_retrieval", "load_model_from_checkpoint", "features_from_checkpoint", "run_settings_of"]
