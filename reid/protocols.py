"""Evaluation protocols: the one definition of how a test split becomes query / gallery and how a
ranked list is scored.

Evaluation codebases disagree on MARS and the numbers move with it, so a protocol is a named
object used everywhere a protocol matters: building the splits (``reid.data``), scoring
(``reid.eval.metrics``), drawing ranked lists (``reid.eval.visualize``), validating configs and
CLI arguments. Every report names its protocol.

``official`` -- the MARS-evaluation MATLAB code (Zheng et al., ECCV 2016). The gallery is every
    test tracklet, the queries included. Junk for a query: gallery items with pid -1, and items
    with the query's pid seen by the query's camera (so the query itself). Distractors (pid 0) are
    negatives. AP is the trapezoidal rule of ``compute_AP.m`` (precision starting at 1).

``torchreid`` -- torchreid / most PyTorch codebases: the gallery is the test split minus the
    queries minus pid -1; junk = same pid and same camera as the query. AP is non-interpolated
    (mean precision at each hit).

``single_camera`` -- data without camera ids (every camid equal): the gallery is the whole test
    split, queries included; the only junk is the query's own gallery entry, every other
    tracklet of its pid is a positive. AP is non-interpolated. The scorer is told which gallery
    item is the query itself by ``query_gallery_index`` (the gallery index of each query, -1 when
    absent; ``reid.eval.query_gallery_index`` computes it from the tracklets' frames); without
    it, the query's own entry is the same-pid same-camera gallery item whose feature vector is
    bit-identical to the query's, which is how the extractor produces it (one extraction per
    distinct tracklet).

Under every protocol the query's own gallery entry is junk (under ``official`` and ``torchreid``
it already is: it has the query's pid and camera).

Adding a protocol is one :class:`Protocol` value plus one ``PROTOCOLS.register`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from reid.registry import Registry, UnknownChoiceError


@dataclass(frozen=True)
class Protocol:
    """A query/gallery protocol.

    Attributes:
        name: the name reports print.
        queries_in_gallery: the gallery keeps the query tracklets (official) or drops them.
        gallery_excludes_pids: pids removed from the gallery when it is built (torchreid: -1).
        junk_pids: gallery pids that are junk for every query at scoring time (official: -1).
        ap: ``"trapezoid"`` (MARS ``compute_AP.m``) or ``"non_interpolated"`` (mean of k / r_k).
        description: one line for ``--help`` and docs.
        junk_same_camera: same pid and same camera as the query is junk (official, torchreid);
            False: only the query's own entry is (``single_camera``).
    """

    name: str
    queries_in_gallery: bool
    gallery_excludes_pids: tuple[int, ...]
    junk_pids: tuple[int, ...]
    ap: Literal["trapezoid", "non_interpolated"]
    description: str
    junk_same_camera: bool = True

    @property
    def needs_self_index(self) -> bool:
        """The scorer must be told which gallery item is the query itself: the queries are in
        the gallery and no camera rule makes that item junk already."""
        return self.queries_in_gallery and not self.junk_same_camera

    # ------------------------------------------------------------------ building the splits
    def gallery_mask(self, test_pids: np.ndarray, is_query: np.ndarray) -> np.ndarray:
        """Boolean mask over the test tracklets: which ones form the gallery."""
        test_pids = np.asarray(test_pids)
        keep = np.ones(len(test_pids), dtype=bool)
        if not self.queries_in_gallery:
            keep &= ~np.asarray(is_query, dtype=bool)
        for pid in self.gallery_excludes_pids:
            keep &= test_pids != pid
        return keep

    # ------------------------------------------------------------------ scoring
    def global_junk(self, gallery_pids: np.ndarray) -> np.ndarray:
        """Gallery indices that are junk for every query (ascending)."""
        gallery_pids = np.asarray(gallery_pids)
        if not self.junk_pids:
            return np.zeros(0, np.int64)
        return np.nonzero(np.isin(gallery_pids, self.junk_pids))[0]

    def junk_mask(self, query_pid: int, query_camid: int, gallery_pids: np.ndarray,
                  gallery_camids: np.ndarray, is_self: np.ndarray | None = None) -> np.ndarray:
        """Which gallery items are ignored (neither positive nor negative) for a query. The query's
        pid / camera may be arrays that broadcast against the gallery arrays (``[c, 1]`` against
        ``[c, L]``: many queries at once). ``is_self`` (same shape as the gallery arrays) marks the
        query's own gallery entry, junk under every protocol."""
        gallery_pids = np.asarray(gallery_pids)
        if self.junk_same_camera:
            junk = (gallery_pids == query_pid) & (np.asarray(gallery_camids) == query_camid)
        else:
            junk = np.zeros(np.broadcast_shapes(gallery_pids.shape, np.shape(query_pid)), dtype=bool)
        if is_self is not None:
            junk = junk | np.asarray(is_self, dtype=bool)
        if self.junk_pids:
            junk |= np.isin(gallery_pids, self.junk_pids)
        return junk

    def positive_mask(self, query_pid: int, query_camid: int, gallery_pids: np.ndarray,
                      gallery_camids: np.ndarray, is_self: np.ndarray | None = None) -> np.ndarray:
        """Which gallery items are correct matches for one query (same pid, not junk); scalar
        query pid / camera only."""
        gallery_pids = np.asarray(gallery_pids)
        if query_pid in self.junk_pids:
            return np.zeros(len(gallery_pids), dtype=bool)
        junk = self.junk_mask(query_pid, query_camid, gallery_pids, gallery_camids, is_self)
        return (gallery_pids == query_pid) & ~junk

    def __str__(self) -> str:
        return self.name


PROTOCOLS: Registry[Protocol] = Registry("protocol")

PROTOCOLS.register("official", Protocol(
    name="official",
    queries_in_gallery=True,
    gallery_excludes_pids=(),
    junk_pids=(-1,),
    ap="trapezoid",
    description="MARS-evaluation MATLAB code: queries stay in the gallery, pid -1 and same pid+camera are junk, "
                "trapezoidal AP",
))
PROTOCOLS.register("torchreid", Protocol(
    name="torchreid",
    queries_in_gallery=False,
    gallery_excludes_pids=(-1,),
    junk_pids=(),
    ap="non_interpolated",
    description="torchreid: queries and pid -1 removed from the gallery, same pid+camera is junk, "
                "non-interpolated AP",
))
PROTOCOLS.register("single_camera", Protocol(
    name="single_camera",
    queries_in_gallery=True,
    gallery_excludes_pids=(),
    junk_pids=(),
    ap="non_interpolated",
    description="data without camera ids: queries stay in the gallery, only the query itself is junk, every "
                "other same-pid tracklet is a positive, non-interpolated AP",
    junk_same_camera=False,
))


def get_protocol(protocol: str | Protocol, key: str = "protocol") -> Protocol:
    """The :class:`Protocol` named ``protocol`` (a Protocol passes through). Unknown names raise
    :class:`~reid.registry.UnknownChoiceError` (a ``ValueError``) naming ``key`` and the choices."""
    if isinstance(protocol, Protocol):
        return protocol
    return PROTOCOLS.get(protocol, key=key)


__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "UnknownChoiceError"]
