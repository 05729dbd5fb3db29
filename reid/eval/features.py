"""The base of ``reid.eval``: input checks, the distance-metric registry and feature preparation.

It imports no other module of the package, and the package's imports run one way (``a <- b``:
``b`` imports ``a``; nothing imports back up, not even lazily):

    features <- report <- scoring <- metrics (``evaluate``, the front door)
    exact_ranks (no reid.eval import) <- scoring
    features <- knn <- rerank <- metrics;  knn <- visualize
    features <- self_index <- metrics, visualize

Scores are "higher is better" everywhere: the cosine similarity of L2-normalised features
(``cosine``) or, for ``euclidean``, ``q.g - ||g||^2 / 2``, which orders the gallery exactly as the
squared (and hence the plain) distance ``||q - g||^2 = ||q||^2 - 2 (q.g - ||g||^2/2)`` does,
without the per-query constant ``||q||^2``.

**Any finite input scores correctly.** The scorers work in float32, whose squares overflow above
~1.8e19 and underflow below ~1e-19, so features are brought into a safe range first, using the
invariances of the rankings: cosine ranks are unchanged by a positive scale of each row, Euclidean
ranks by one positive scale common to queries and gallery. Rows (cosine) or the query + gallery
pair (euclidean) already inside the range are left exactly as they are, so ordinary features
give bit-identical scores; the others are divided by their largest magnitude in float64.
"""

from __future__ import annotations

import sys

import numpy as np

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
    # torch is not imported just to test for a tensor: a torch.Tensor exists only once torch is imported,
    # so scoring numpy features never pays torch's start-up here
    torch = sys.modules.get("torch")
    return np.asarray(x.detach().cpu().numpy() if torch is not None and isinstance(x, torch.Tensor) else x)


def check_finite(name: str, arr: np.ndarray) -> None:
    """:class:`EvaluationInputError` naming ``name`` and the first row holding a NaN or inf."""
    finite = np.isfinite(arr)  # (faster than a NaN-propagating min + max on float32)
    if finite.all():
        return
    bad_row = int(np.nonzero(~finite.all(axis=1))[0][0])
    raise EvaluationInputError(f"{name} contains NaN or inf values (first at row {bad_row}); check the extractor")


def _checked_features(name: str, x) -> np.ndarray:
    """``x`` as a numpy ``[N, D]`` array of real, finite numbers, in its own dtype."""
    arr = _to_numpy(x)
    if arr.ndim != 2:
        raise EvaluationInputError(f"{name} must be a 2-D array [N, D], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise EvaluationInputError(f"{name} is empty (0 rows): nothing to evaluate")
    if arr.shape[1] == 0:
        raise EvaluationInputError(f"{name} has feature dimension 0")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise EvaluationInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)  # integer features: magnitudes checked like any wide float
    check_finite(name, arr)  # in the input's own precision: a finite float64 1e39 is no "inf"
    return arr


# Where a cast to float32 loses information: entries above 2^100 (float32 ends at ~2^128, and the
# scorers square entries) or a largest entry below 2^-103 (float32's normal range ends at 2^-126:
# fewer than 23 bits would be left). Such inputs are divided by their largest magnitude in float64
# before the cast.
_CAST_MAX_MAGNITUDE = 2.0**100
_CAST_MIN_MAGNITUDE = 2.0**-103


def _row_magnitudes(arr: np.ndarray) -> np.ndarray:
    """``max_j |arr[i, j]|`` per row, without an ``abs`` temporary."""
    return np.maximum(-arr.min(axis=1), arr.max(axis=1))


def _max_magnitude(arr: np.ndarray) -> float:
    """``max |entry|`` of an array (two reductions, no ``abs`` temporary)."""
    return float(max(-arr.min(), arr.max()))


def _lost_in_cast(magnitudes: np.ndarray) -> np.ndarray:
    return (magnitudes > _CAST_MAX_MAGNITUDE) | ((magnitudes > 0) & (magnitudes < _CAST_MIN_MAGNITUDE))


def _fit_for_float32_cast(qf: np.ndarray, gf: np.ndarray, metric: str | None):
    """Wide (float64) features float32 cannot hold, rescaled in float64: for cosine each such
    row by its largest magnitude (cosine ignores a row's scale), otherwise queries and gallery
    together by their largest magnitude (Euclidean ranks ignore one common scale, and so do
    cosine's). Anything float32 can hold is returned unchanged."""
    if metric == "cosine":
        out = []
        for arr in (qf, gf):
            magnitudes = _row_magnitudes(arr)
            lost = _lost_in_cast(magnitudes)
            if lost.any():
                arr = arr.astype(np.float64)  # a copy: the caller's array is left alone
                arr[lost] /= magnitudes[lost, None]
            out.append(arr)
        return out[0], out[1]
    common = max(_max_magnitude(qf), _max_magnitude(gf))
    if not _lost_in_cast(np.array([common]))[0]:
        return qf, gf
    return qf.astype(np.float64) / common, gf.astype(np.float64) / common


def feature_pair(query_feats, gallery_feats, metric: str | None = None,
                 names: tuple[str, str] = ("query_feats", "gallery_feats")) -> tuple[np.ndarray, np.ndarray]:
    """Checked query and gallery features (2-D, non-empty, real, finite, equal dimension; errors
    name the array by ``names``) as C-contiguous float32 arrays. Inputs wider than float32 that
    float32 cannot hold are rescaled first (``_fit_for_float32_cast``); the rest is cast as is."""
    qf, gf = _checked_features(names[0], query_feats), _checked_features(names[1], gallery_feats)
    if qf.shape[1] != gf.shape[1]:
        raise EvaluationInputError(
            f"feature dimension mismatch: {names[0]} has D={qf.shape[1]}, {names[1]} has D={gf.shape[1]}"
        )
    if qf.dtype.itemsize > 4 or gf.dtype.itemsize > 4:
        qf, gf = _fit_for_float32_cast(qf, gf, metric)
    return np.ascontiguousarray(qf, dtype=np.float32), np.ascontiguousarray(gf, dtype=np.float32)


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


def validate_inputs(query_feats, gallery_feats, query_pids, query_camids, gallery_pids, gallery_camids,
                    metric: str | None = None):
    """Check shapes, lengths, dtypes and finiteness; return numpy copies (float32 / int64).

    ``metric`` only matters for wide (float64) features float32 cannot hold: see
    :func:`feature_pair`."""
    qf, gf = feature_pair(query_feats, gallery_feats, metric)
    qp = _as_ids("query_pids", query_pids, len(qf), "query_feats")
    qc = _as_ids("query_camids", query_camids, len(qf), "query_feats")
    gp = _as_ids("gallery_pids", gallery_pids, len(gf), "gallery_feats")
    gc = _as_ids("gallery_camids", gallery_camids, len(gf), "gallery_feats")
    return qf, gf, qp, qc, gp, gc


# --------------------------------------------------------------------------------------------
# features as the scorers use them (float32 arithmetic that cannot overflow)

# A row whose float32 norm is finite and >= 2^-50 had a sum of squares that neither overflowed
# nor lost more than ~D 2^-50 of itself to subnormal squares: it is normalised as it is.
_COSINE_MIN_NORM = 2.0**-50
# Euclidean: with S = the largest squared norm of a query or gallery row, every value the
# scorers form (q.g, ||g||^2, ||q - g||^2 <= 4 S: GEMM, FAISS, re-ranking) stays below float32's
# 2^128 when 4 S <= 2^120; with S >= 2^-80 the largest entries (>= 2^-40 / sqrt(D)) have normal
# products for any D below 2^20.
_EUCLIDEAN_MAX_SCORE = 2.0**120
_EUCLIDEAN_MIN_SQUARED_NORM = 2.0**-80

def l2_normalize(x: np.ndarray, name: str) -> np.ndarray:
    """Rows divided by their L2 norm (float32); an all-zero row is an error naming ``name`` and the row.

    Rows whose float32 norm overflows or underflows (entries beyond ~1e19 or below ~1e-19) are
    first divided by their largest magnitude in float64 (cosine ignores a row's scale); every
    other row is computed exactly as ``x / ||x||`` in float32."""
    # rows that overflow, underflow or are zero are recomputed or rejected below
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        out = (x / norms).astype(np.float32, copy=False)  # float32 already for float32 input
    unsafe = np.nonzero(~(np.isfinite(norms[:, 0]) & (norms[:, 0] >= _COSINE_MIN_NORM)))[0]
    if len(unsafe):
        rows = x[unsafe].astype(np.float64)
        magnitudes = _row_magnitudes(rows)
        if np.any(magnitudes == 0):
            row = int(unsafe[np.nonzero(magnitudes == 0)[0][0]])
            raise EvaluationInputError(f"{name} row {row} is all zeros: cosine similarity is undefined")
        fitted = (rows / magnitudes[:, None]).astype(np.float32)  # largest entry exactly +-1
        out[unsafe] = fitted / np.linalg.norm(fitted, axis=1, keepdims=True)
    return out


def euclidean_fit(qf: np.ndarray, gf: np.ndarray, gallery_sq_norms: np.ndarray | None = None):
    """``(qf / s, gf / s, s)``: query and gallery features divided by one common factor ``s`` so
    that float32 Euclidean scoring can neither overflow nor underflow (Euclidean ranks ignore a
    common positive scale). ``s = 1`` (the arrays returned as they are) when they are already in
    range; otherwise ``s`` = their largest magnitude, divided out in float64.

    The range test bounds the squared norms: ``D max|q|^2`` for the queries and, for the
    gallery, ``gallery_sq_norms.max()`` when the caller has them (``prepare_features`` does),
    else ``D max|g|^2``."""
    dim = qf.shape[1]
    gallery_bound = float(gallery_sq_norms.max()) if gallery_sq_norms is not None else dim * _max_magnitude(gf) ** 2
    largest = max(dim * _max_magnitude(qf) ** 2, gallery_bound)
    if largest == 0 or _EUCLIDEAN_MIN_SQUARED_NORM <= largest <= _EUCLIDEAN_MAX_SCORE / 4:
        return qf, gf, 1.0
    magnitude = max(_max_magnitude(qf), _max_magnitude(gf))
    return (qf.astype(np.float64) / magnitude).astype(np.float32), (gf.astype(np.float64) / magnitude).astype(np.float32), magnitude


def prepare_features(qf: np.ndarray, gf: np.ndarray, metric: str):
    """Features as the scorer uses them (normalised for cosine, jointly rescaled into float32's
    safe range for Euclidean: :func:`euclidean_fit`) and the per-gallery score offset
    (``-||g||^2/2`` for Euclidean, None for cosine); see the module docstring."""
    if check_metric(metric) == "cosine":
        return l2_normalize(qf, "query_feats"), l2_normalize(gf, "gallery_feats"), None
    sq_norms = np.einsum("ij,ij->i", gf.astype(np.float64), gf.astype(np.float64))
    qf, gf, scale = euclidean_fit(qf, gf, sq_norms)
    if scale != 1.0:
        sq_norms = np.einsum("ij,ij->i", gf.astype(np.float64), gf.astype(np.float64))
    return qf, gf, (-0.5 * sq_norms).astype(np.float32)


__all__ = [
    "METRICS",
    "EvaluationInputError",
    "UnknownEvaluationChoice",
    "check_metric",
    "resolve_protocol",
    "check_finite",
    "feature_pair",
    "validate_inputs",
    "l2_normalize",
    "euclidean_fit",
    "prepare_features",
]
