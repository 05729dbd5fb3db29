"""The base of ``reid.eval``: input checks, the distance-metric registry and feature preparation.

It imports no other module of the package, and the package's imports run one way (``a <- b``:
``b`` imports ``a``; nothing imports back up, not even lazily):

    features <- report <- scoring <- metrics (``evaluate``, the front door)
    exact_ranks (no reid.eval import) <- scoring
    features <- knn <- rerank <- metrics;  knn <- visualize

Scores are "higher is better" everywhere: the cosine similarity of L2-normalised features
(``cosine``) or, for ``euclidean``, ``q.g - ||g||^2 / 2``, which orders the gallery exactly as the
squared (and hence the plain) distance ``||q - g||^2 = ||q||^2 - 2 (q.g - ||g||^2/2)`` does,
without the per-query constant ``||q||^2``.
"""

from __future__ import annotations

import numpy as np
import torch

from reid.protocols import Protocol, get_protocol
from reid.registry import Registry, UnknownChoiceError
from reid.errors import UserError

# name -> the description reports and ``--help`` print. Configs validate names with
# ``METRICS.check(name, key="eval.metric")``.
METRICS: Registry[str] = Registry("distance metric")
METRICS.register("cosine", "cosine similarity of L2-normalised features")
METRICS.register("euclidean", "Euclidean distance (ranked via squared distance; same order)")


class EvaluationInputError(UserError, ValueError):
    """Inputs to :func:`reid.eval.evaluate` are inconsistent; the message names the offending array."""


class UnknownEvaluationChoice(EvaluationInputError, UnknownChoiceError):
    """An unknown protocol or metric name: both an input error of the evaluator and a registry
    miss, so callers catching either see it (the message lists the choices)."""


def check_metric(metric: str, key: str = "metric") -> str:
    """``metric`` if it names a registered distance metric, else :class:`UnknownEvaluationChoice`."""
    try:
        return METRICS.check(metric, key=key)
    except UnknownChoiceError as err:
        raise UnknownEvaluationChoice(str(err)) from None


def resolve_protocol(protocol: str | Protocol, key: str = "protocol") -> Protocol:
    """The :class:`~reid.protocols.Protocol` for a name (a Protocol passes through), else
    :class:`UnknownEvaluationChoice`."""
    try:
        return get_protocol(protocol, key=key)
    except UnknownChoiceError as err:
        raise UnknownEvaluationChoice(str(err)) from None


# --------------------------------------------------------------------------------------------
# input validation


def _to_numpy(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)


def _as_features(name: str, x) -> np.ndarray:
    arr = _to_numpy(x)
    if arr.ndim != 2:
        raise EvaluationInputError(f"{name} must be a 2-D array [N, D], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise EvaluationInputError(f"{name} is empty (0 rows): nothing to evaluate")
    if arr.shape[1] == 0:
        raise EvaluationInputError(f"{name} has feature dimension 0")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise EvaluationInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        bad_row = int(np.nonzero(~finite.all(axis=1))[0][0])
        raise EvaluationInputError(
            f"{name} contains NaN or inf values (first at row {bad_row}); check the extractor"
        )
    return arr


def _as_ids(name: str, x, expected: int, features_name: str) -> np.ndarray:
    arr = _to_numpy(x)
    if arr.ndim == 2 and 1 in arr.shape:  # a [N, 1] or [1, N] column / row vector
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise EvaluationInputError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if len(arr) != expected:
        raise EvaluationInputError(
            f"length mismatch: {name} has {len(arr)} entries but {features_name} has {expected} rows"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        # integral floats (e.g. from a .mat file) are accepted
        integral = np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
        if not integral:
            raise EvaluationInputError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def validate_inputs(query_feats, gallery_feats, query_pids, query_camids, gallery_pids, gallery_camids):
    """Check shapes, lengths, dtypes and finiteness; return numpy copies (float32 / int64)."""
    qf = _as_features("query_feats", query_feats)
    gf = _as_features("gallery_feats", gallery_feats)
    if qf.shape[1] != gf.shape[1]:
        raise EvaluationInputError(
            f"feature dimension mismatch: query_feats has D={qf.shape[1]}, gallery_feats has D={gf.shape[1]}"
        )
    qp = _as_ids("query_pids", query_pids, len(qf), "query_feats")
    qc = _as_ids("query_camids", query_camids, len(qf), "query_feats")
    gp = _as_ids("gallery_pids", gallery_pids, len(gf), "gallery_feats")
    gc = _as_ids("gallery_camids", gallery_camids, len(gf), "gallery_feats")
    return qf, gf, qp, qc, gp, gc


# --------------------------------------------------------------------------------------------
# features as the scorers use them


def l2_normalize(x: np.ndarray, name: str) -> np.ndarray:
    """Rows divided by their L2 norm; an all-zero row is an error naming ``name`` and the row."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        row = int(np.nonzero(norms[:, 0] == 0)[0][0])
        raise EvaluationInputError(f"{name} row {row} is all zeros: cosine similarity is undefined")
    return (x / norms).astype(np.float32, copy=False)  # float32 already for float32 input


def prepare_features(qf: np.ndarray, gf: np.ndarray, metric: str):
    """Features as the scorer uses them (normalised for cosine) and the per-gallery score offset
    (``-||g||^2/2`` for Euclidean, None for cosine); see the module docstring."""
    if check_metric(metric) == "cosine":
        return l2_normalize(qf, "query_feats"), l2_normalize(gf, "gallery_feats"), None
    offset = -0.5 * np.einsum("ij,ij->i", gf.astype(np.float64), gf.astype(np.float64))
    return qf, gf, offset.astype(np.float32)


__all__ = [
    "METRICS",
    "EvaluationInputError",
    "UnknownEvaluationChoice",
    "check_metric",
    "resolve_protocol",
    "validate_inputs",
    "l2_normalize",
    "prepare_features",
]
