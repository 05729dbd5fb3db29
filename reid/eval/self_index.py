"""Which gallery item is each query itself, for protocols that keep the queries in the gallery
and have no camera rule that makes that item junk (``single_camera``: ``Protocol.needs_self_index``).

``query_gallery_index[i]`` is the gallery index of query ``i``'s own tracklet, or -1 when the
query is not in the gallery. It comes, in order of preference, from

1. the caller (``evaluate(..., query_gallery_index=...)``, the npz key of the same name, which
   ``reid eval --save-features`` and ``reid extract`` write), computed from the tracklets' frame
   lists by :func:`query_gallery_index`;
2. the features: the first gallery item with the query's pid and camera whose feature vector is
   bit-identical to the query's (:func:`self_index_from_features`). The extractor computes each
   distinct tracklet once and hands the same row to query and gallery, so this finds exactly the
   query's own entry; if two items tie bit for bit, marking either as junk gives the same ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reid.eval.features import EvaluationInputError, _to_numpy, check_metric, resolve_protocol, validate_inputs
from reid.protocols import Protocol


def _frames_key(item) -> tuple[str, ...]:
    frames = getattr(item, "frames", item)  # a Tracklet or a plain list of frame paths
    return tuple(str(f) for f in frames)


def query_gallery_index(query_tracklets: Sequence, gallery_tracklets: Sequence) -> np.ndarray:
    """Gallery index of each query (same frame list; the first such gallery item), -1 if none.
    Items are :class:`reid.data.tracklet.Tracklet` objects or lists of frame paths."""
    first: dict[tuple[str, ...], int] = {}
    for j, g in enumerate(gallery_tracklets):
        first.setdefault(_frames_key(g), j)
    return np.array([first.get(_frames_key(q), -1) for q in query_tracklets], dtype=np.int64)


def self_index_from_features(qf: np.ndarray, gf: np.ndarray, qp: np.ndarray, qc: np.ndarray,
                             gp: np.ndarray, gc: np.ndarray) -> np.ndarray:
    """For each query, the first gallery index with the same pid, the same camera and a
    bit-identical feature row; -1 where there is none."""
    def rows(a: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(a)
        return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).reshape(-1)

    first: dict[tuple[int, int, bytes], int] = {}
    for j, (pid, cam, row) in enumerate(zip(gp.tolist(), gc.tolist(), rows(gf))):
        first.setdefault((pid, cam, row.tobytes()), j)
    return np.array([first.get((pid, cam, row.tobytes()), -1) for pid, cam, row in zip(qp.tolist(), qc.tolist(), rows(qf))],
                    dtype=np.int64)


def check_query_gallery_index(index, qp: np.ndarray, qc: np.ndarray, gp: np.ndarray, gc: np.ndarray) -> np.ndarray:
    """``index`` as int64 ``[Q]``, checked: -1 or a gallery index holding the query's pid and
    camera. Errors (:class:`EvaluationInputError`) name the array and the first bad query."""
    arr = _to_numpy(index)
    if arr.ndim != 1 or len(arr) != len(qp):
        raise EvaluationInputError(f"query_gallery_index must be 1-D with one entry per query ({len(qp)}), "
                                   f"got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise EvaluationInputError(f"query_gallery_index must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    out_of_range = np.nonzero((arr < -1) | (arr >= len(gp)))[0]
    if len(out_of_range):
        i = int(out_of_range[0])
        raise EvaluationInputError(f"query_gallery_index[{i}] = {int(arr[i])}: must be -1 (not in the gallery) "
                                   f"or a gallery index in [0, {len(gp)})")
    present = arr >= 0
    safe = np.where(present, arr, 0)
    wrong = np.nonzero(present & ((gp[safe] != qp) | (gc[safe] != qc)))[0]
    if len(wrong):
        i = int(wrong[0])
        raise EvaluationInputError(
            f"query_gallery_index[{i}] = {int(arr[i])}: gallery item {int(arr[i])} has pid {int(gp[arr[i]])} "
            f"camera {int(gc[arr[i]])}, query {i} has pid {int(qp[i])} camera {int(qc[i])}; it must point at the "
            "query's own tracklet")
    return arr


def resolve_self_index(protocol: Protocol, given, qf, gf, qp, qc, gp, gc) -> np.ndarray | None:
    """The checked ``given`` index; else, when the protocol needs one, the index found from the
    features; else None (the protocol's junk rules already cover the query's own entry)."""
    if given is not None:
        return check_query_gallery_index(given, qp, qc, gp, gc)
    if protocol.needs_self_index:
        return self_index_from_features(qf, gf, qp, qc, gp, gc)
    return None


def checked_retrieval_inputs(protocol, metric: str, ranks, query_feats, gallery_feats, query_pids, query_camids,
                             gallery_pids, gallery_camids, query_gallery_index):
    """The argument checks every retrieval scorer runs before any work (``evaluate``,
    ``evaluate_large_gallery``): the protocol and metric resolved, ``ranks`` as positive ints, the
    arrays validated (:func:`reid.eval.features.validate_inputs`) and the query's own gallery entry
    resolved. Returns ``(protocol, ranks, qf, gf, qp, qc, gp, gc, self_index)``."""
    protocol = resolve_protocol(protocol)
    check_metric(metric)
    ranks = tuple(int(k) for k in ranks)
    if not ranks or min(ranks) < 1:
        raise EvaluationInputError(f"ranks must be positive integers, got {ranks}")
    qf, gf, qp, qc, gp, gc = validate_inputs(
        query_feats, gallery_feats, query_pids, query_camids, gallery_pids, gallery_camids, metric
    )
    self_index = resolve_self_index(protocol, query_gallery_index, qf, gf, qp, qc, gp, gc)
    return protocol, ranks, qf, gf, qp, qc, gp, gc, self_index


__all__ = ["checked_retrieval_inputs", "query_gallery_index", "self_index_from_features", "check_query_gallery_index", "resolve_self_index"]
