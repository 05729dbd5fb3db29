"""The front door of retrieval evaluation: :func:`evaluate`, exact mAP / CMC / mINP of a query set
against a gallery under a named protocol, optionally after k-reciprocal re-ranking.

The parts, each in its own module (imports run one way, top to bottom):

* :mod:`reid.eval.features` -- input checks, the ``METRICS`` registry, feature preparation;
* :mod:`reid.eval.exact_ranks` -- the rank kernel (each positive's exact rank, no row sorted);
* :mod:`reid.eval.report` -- :class:`RetrievalReport` and :func:`format_report`;
* :mod:`reid.eval.scoring` -- junk / positives per protocol, AP / CMC / mINP (the formulas);
* :mod:`reid.eval.rerank` -- k-reciprocal re-ranking (on :mod:`reid.eval.knn`);
* this module -- validation once, then plain scores or re-ranked scores into the scorer.

Protocols are :class:`reid.protocols.Protocol` objects (``official``: the MARS MATLAB code;
``torchreid``); metrics are ``cosine`` (L2-normalised features) and ``euclidean`` (ranked via the
squared distance: same order). Ties are broken by ascending gallery index on every path.
"""

from __future__ import annotations

from typing import Sequence

from reid.eval.exact_ranks import positive_ranks_chunk
from reid.eval.features import (
    METRICS,
    EvaluationInputError,
    prepare_features,
    validate_inputs,
)
from reid.eval.report import RetrievalReport, format_report
from reid.eval.self_index import checked_retrieval_inputs, query_gallery_index
from reid.eval.scoring import (
    DEFAULT_RANKS,
    ap_from_ranks,
    auto_chunk_size,
    evaluate_scores,
    make_score_fn,
)
from reid.protocols import PROTOCOLS, Protocol


#: from this many gallery items on, :func:`evaluate` hands over to the tiled large-gallery scorer
#: (issue 14: at G = 1,000,000 it took 46 s against ~1009 s and 1.30x against 2.13x the features'
#: memory; the classic path's normalised gallery copy alone is 1x the gallery)
LARGE_GALLERY_MIN_ITEMS = 200_000


def _num_items(x) -> int:
    """Rows of an array-like, 0 for what has none (the argument checks then name the problem)."""
    try:
        return len(x)
    except TypeError:
        return 0


def evaluate(
    query_feats,
    gallery_feats,
    query_pids,
    query_camids,
    gallery_pids,
    gallery_camids,
    protocol: str | Protocol = "official",
    metric: str = "cosine",
    rerank: bool = False,
    chunk_size: int | None = None,
    ranks: Sequence[int] = DEFAULT_RANKS,
    progress: bool = False,
    rerank_params: dict | None = None,
    query_gallery_index=None,
    large_gallery: bool | None = None,
) -> RetrievalReport:
    """Exact mAP / CMC / mINP of a query set against a gallery under a named protocol.

    Args:
        query_feats, gallery_feats: ``[Q, D]`` and ``[G, D]`` features (numpy or torch).
        query_pids, query_camids, gallery_pids, gallery_camids: 1-D integer ids.
        protocol: a name in ``reid.protocols.PROTOCOLS`` or a :class:`~reid.protocols.Protocol`:
            ``"official"`` (MARS MATLAB: pid -1 is junk, trapezoidal AP; pass a gallery that
            contains the queries) or ``"torchreid"`` (junk = same pid & camera, non-interpolated
            AP; pass a gallery without the queries). See :mod:`reid.eval.scoring`.
        metric: ``"cosine"`` (L2-normalised features) or ``"euclidean"`` (``METRICS``).
        rerank: apply k-reciprocal re-ranking (Zhong et al., CVPR 2017) before scoring;
            parameters in ``rerank_params`` (``k1=20, k2=6, lambda_value=0.3``).
        chunk_size: queries per chunk (peak memory ~ 16 bytes * chunk_size * G); default picks
            ~256 MB.
        ranks: CMC ranks to report.
        progress: show a tqdm bar over query chunks.
        query_gallery_index: ``[Q]`` gallery index of each query's own tracklet (-1: not in the
            gallery); that entry is junk. Needed by ``single_camera`` (queries in the gallery, no
            camera rule); without it the entry is found by bit-identical features
            (:mod:`reid.eval.self_index`). Other protocols already treat it as junk.
        large_gallery: score with :func:`reid.eval.large_gallery.evaluate_large_gallery` (tiles
            over the gallery, memory ~1.3x the features instead of a normalised gallery copy plus
            ``Q x G`` chunks; the same report bit for bit). ``None`` (default): when the gallery
            has at least :data:`LARGE_GALLERY_MIN_ITEMS` items and there is no re-ranking.

    Returns:
        A :class:`RetrievalReport` (``protocol`` = the protocol's name); ``to_dict()`` for the
        summary, per-query arrays for analysis.

    Raises:
        EvaluationInputError: inconsistent inputs or an unknown protocol / metric (the message
            names the array or lists the choices).
    """
    if large_gallery is None:
        large_gallery = not rerank and _num_items(gallery_feats) >= LARGE_GALLERY_MIN_ITEMS
    if large_gallery:
        if rerank:
            raise EvaluationInputError("large_gallery=True cannot re-rank (k-reciprocal re-ranking needs the "
                                       "whole Q x G matrix); pass rerank=False or large_gallery=False")
        from reid.eval.large_gallery import evaluate_large_gallery  # the tiled scorer: only this path needs it

        return evaluate_large_gallery(query_feats, gallery_feats, query_pids, query_camids, gallery_pids,
                                      gallery_camids, protocol=protocol, metric=metric, chunk_size=chunk_size,
                                      ranks=ranks, progress=progress, query_gallery_index=query_gallery_index)
    protocol, ranks, qf, gf, qp, qc, gp, gc, self_index = checked_retrieval_inputs(
        protocol, metric, ranks, query_feats, gallery_feats, query_pids, query_camids, gallery_pids,
        gallery_camids, query_gallery_index)
    if chunk_size is None:
        chunk_size = auto_chunk_size(len(gf))
    if chunk_size < 1:
        raise EvaluationInputError(f"chunk_size must be >= 1, got {chunk_size}")
    if rerank:
        from reid.eval.rerank import KReciprocalReranker  # scipy.sparse: only this path needs it

        reranker = KReciprocalReranker(qf, gf, metric=metric, progress=progress, **(rerank_params or {}))
        score_fn = reranker.score_chunk
    else:
        q, g, offset = prepare_features(qf, gf, metric)
        score_fn = make_score_fn(q, g, offset)
    return evaluate_scores(
        score_fn, len(qf), qp, qc, gp, gc, protocol, metric, chunk_size, ranks, reranked=rerank, progress=progress,
        self_index=self_index,
    )


# The names this module exported before it was split keep working from here.
__all__ = [
    "LARGE_GALLERY_MIN_ITEMS",
    "PROTOCOLS",
    "METRICS",
    "RetrievalReport",
    "EvaluationInputError",
    "evaluate",
    "evaluate_scores",
    "format_report",
    "validate_inputs",
    "prepare_features",
    "positive_ranks_chunk",
    "ap_from_ranks",
    "query_gallery_index",
]
