"""A validation split carved from the training data, for model selection without the test set.

A real user of a noisy dataset has only its (noisy) training labels, so the validation split
keeps them: selecting the checkpoint on it is what a user could do; selecting on the test set
is an oracle (reported as such). Two carvings:

* classification (:func:`holdout_fraction`): a class-stratified random fraction of the training
  images, stratified by the *training* (noisy) label;
* ReID (:func:`holdout_identities`): a random set of training identities (by training label)
  removed from training and turned into query / gallery tracklets the way the synthetic
  generator builds a test split: one query per (identity, camera) pair, picked uniformly among
  that pair's tracklets, only for identities seen by another camera (so every query has a
  cross-camera match); every other held-out tracklet goes to the gallery, and the gallery also
  holds the queries (``official`` protocol: same pid and camera is junk at scoring time).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from reid.data.tracklet import Tracklet
from reid.errors import UserError


class HoldoutError(UserError, ValueError):
    """The validation setting cannot be met by the training data (names the key and what to do)."""


def holdout_fraction(labels, fraction: float, seed: int, key: str = "validation.fraction") -> tuple[np.ndarray, np.ndarray]:
    """``(train_index, val_index)``: per class ``round(fraction * n_c)`` random examples (at least
    one per class with two or more examples) go to validation; both sorted. ``labels`` are the
    training labels (noisy ones included)."""
    labels = np.asarray(labels).reshape(-1)
    if not 0.0 < fraction < 1.0:
        raise HoldoutError(f"{key}={fraction}: must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(fraction * members.size))
        k = min(max(k, 1 if members.size >= 2 else 0), members.size - 1)
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    if val_idx.size == 0:
        raise HoldoutError(f"{key}={fraction}: leaves no validation example; raise it")
    train_idx = np.setdiff1d(np.arange(labels.size), val_idx)
    return train_idx, val_idx


@dataclass
class ReIDHoldout:
    """The result of :func:`holdout_identities`: ``train_index`` (kept training tracklets, indices
    into the list given), ``query`` / ``gallery`` (held-out tracklets with ``pid`` = their training
    label + 1, i.e. the label a user would have; ``label`` -1 as for test tracklets), ``labels`` (the held-out training labels)."""

    train_index: np.ndarray
    query: list[Tracklet]
    gallery: list[Tracklet]
    labels: list[int]
    protocol: str = "official"


def _pick_labels(by_label: dict[int, list[int]], fraction: float | None, ids: list[int] | None,
                 seed: int) -> list[int]:
    known = sorted(by_label)
    if ids is not None:
        missing = [i for i in ids if i not in by_label]
        if missing:
            raise HoldoutError(f"eval.validation.ids: {missing} are not training labels (0..{known[-1]}); "
                               "give training labels (contiguous, as data.train's 'label')")
        return sorted(set(int(i) for i in ids))
    if fraction is None or not 0.0 < fraction < 1.0:
        raise HoldoutError(f"eval.validation.fraction={fraction}: must lie strictly between 0 and 1 (or give ids)")
    k = int(round(fraction * len(known)))
    if k < 1:
        raise HoldoutError(f"eval.validation.fraction={fraction} of {len(known)} training identities is none; raise it")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.permutation(known)[:k])


def holdout_identities(train: list[Tracklet], fraction: float | None = None, ids: list[int] | None = None,
                       seed: int = 0, min_train_ids: int = 2) -> ReIDHoldout:
    """Hold out training identities (by ``label``, the possibly noisy training label) as a
    validation query/gallery split; see the module docstring for the rule."""
    by_label: dict[int, list[int]] = {}
    for i, t in enumerate(train):
        by_label.setdefault(int(t.label), []).append(i)
    chosen = _pick_labels(by_label, fraction, ids, seed)
    if len(by_label) - len(chosen) < min_train_ids:
        raise HoldoutError(f"eval.validation holds out {len(chosen)} of {len(by_label)} training identities, "
                           f"leaving fewer than {min_train_ids} to train on; lower the fraction")
    rng = np.random.default_rng(seed + 1)  # the query draw, independent of the identity draw
    query, gallery = [], []
    for label in chosen:
        members = [train[i] for i in by_label[label]]
        cams: dict[int, list[Tracklet]] = {}
        for t in members:
            cams.setdefault(int(t.camid), []).append(t)
        # pid = label + 1: pid 0 is a distractor and -1 junk under the protocols
        as_val = [replace(t, pid=label + 1, label=-1) for t in members]
        picked = set()
        if len(cams) >= 2:  # a query needs a cross-camera match
            for cam in sorted(cams):
                j = int(rng.integers(len(cams[cam])))
                picked.add(id(cams[cam][j]))
        for t, v in zip(members, as_val):
            if id(t) in picked:
                query.append(v)
        gallery.extend(as_val)
    if not query:
        raise HoldoutError("eval.validation: no held-out identity is seen by two cameras, so there is no "
                           "validation query; raise the fraction or list ids seen by several cameras")
    held = {i for label in chosen for i in by_label[label]}
    train_index = np.asarray([i for i in range(len(train)) if i not in held], dtype=np.int64)
    return ReIDHoldout(train_index=train_index, query=query, gallery=gallery, labels=chosen)


__all__ = ["HoldoutError", "holdout_fraction", "ReIDHoldout", "holdout_identities"]
