"""Which tracklets form a batch (:class:`PKSampler`) and which frames form a clip
(:class:`ClipSampler` for training, modes in :data:`CLIP_MODES`; :class:`TestClipSampler` /
:func:`evenly` at test time, modes in :data:`TEST_CLIP_MODES`).

Identity-balanced ``P x K`` batches are the standard recipe for metric learning in person ReID
(Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person Re-Identification", 2017):
every batch holds ``P`` identities with ``K`` samples each, so each anchor has ``K - 1`` positives
and ``(P - 1) K`` negatives in the batch. Here the samples are *tracklets*; the clip sampler then
picks ``T`` frames from each tracklet.

Clip sampling follows the common video ReID recipes: restricted random sampling (split the
tracklet into ``T`` equal segments, one random frame per segment; Li et al., "Diversity
Regularized Spatiotemporal Attention for Video-based Person Re-identification", CVPR 2018),
random consecutive chunks (McLaughlin et al. 2016 / torchreid's ``random``), evenly spaced frames.

Everything random takes an explicit seed or ``np.random.Generator``: a run is reproducible from
its config, and a resumed run continues mid-epoch with exactly the batches it would have seen.

Adding a training clip mode is one function ``(num_frames, length, stride, pad, rng) ->
(indices, mask)`` plus one ``@CLIP_MODES.register("name")`` line.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterator, Sequence

import numpy as np

from reid.errors import UserError
from reid.registry import Registry

PAD_MODES = ("repeat_last", "loop")

# (num_frames, length, stride, pad, rng) -> (indices int64[length], mask bool[length])
ClipDraw = Callable[[int, int, int, str, np.random.Generator], tuple[np.ndarray, np.ndarray]]
CLIP_MODES: Registry[ClipDraw] = Registry("training clip mode")
# (num_frames, length, pad) -> (indices, mask); deterministic
TEST_CLIP_MODES: Registry[Callable[[int, int | None, str], tuple[np.ndarray, np.ndarray]]] = Registry(
    "test clip mode"
)


# --------------------------------------------------------------------------------------------
# P x K identity-balanced batches
# --------------------------------------------------------------------------------------------
class SamplerError(UserError, ValueError):
    """The sampler cannot serve these labels and settings (e.g. ``p`` > identities)."""


class PKSampler:
    """Batch sampler yielding ``P`` identities x ``K`` tracklets per batch (lists of dataset indices).

    Use as ``DataLoader(dataset, batch_sampler=PKSampler(labels, p, k, seed))``.

    Epoch definition. An epoch visits every identity **at most once** and all but
    ``num_ids mod (P * world_size)`` of them exactly once: the identities are shuffled with a
    generator seeded by ``(seed, epoch)`` and cut into consecutive groups of ``P``; the leftover
    identities (fewer than one global step's worth) are skipped for this epoch only (the next
    epoch's shuffle is different). Hence per rank::

        batches_per_epoch = floor(num_ids / (P * world_size))

    Tracklets of an identity. For each identity in a batch, ``K`` of its tracklets are drawn
    without replacement when it has at least ``K``; otherwise all of its tracklets are taken once
    (in random order) and the remaining ``K - n`` slots are filled by draws with replacement, so a
    short identity repeats as little as possible. A repeated tracklet still gives a different clip
    and augmentation because :class:`reid.data.datasets.TrainClipDataset` keys its per-item random
    generator on the occurrence number within the batch as well.

    Distributed training. All ranks build the same global plan from ``(seed, epoch)`` (the rank is
    not part of the seed) and rank ``r`` takes global batches ``r, r + W, r + 2W, ...``
    (``W = world_size``). At any step the ``W`` batches processed in parallel therefore come
    from ``W * P`` distinct identities (disjoint across ranks), each rank's batch is a full
    ``P x K`` batch (good for in-batch mining), and every rank has the same number of batches per
    epoch, so collective ops never deadlock. ``p`` is the number of identities *per rank*.

    Resume. ``state_dict()`` stores the epoch and how many batches of it were consumed;
    after ``load_state_dict`` the next iteration yields exactly the remaining batches of that
    epoch. With ``DataLoader(num_workers > 0)`` the loader pulls batches from the sampler ahead of
    training (``prefetch_factor * num_workers`` of them), so the sampler's own count runs ahead
    of what the model saw: pass the trainer's step-in-epoch as ``state_dict(batches_done=...)``.

    Args:
        labels: training label of each dataset item (``Tracklet.label``), ints ``>= 0``.
        p: identities per batch (per rank).
        k: tracklets per identity.
        seed: base seed; the batches of epoch ``e`` depend only on ``(seed, e)``.
        rank: this process's rank in ``[0, world_size)``.
        world_size: number of data-parallel processes.
    """

    def __init__(
        self,
        labels: Sequence[int],
        p: int,
        k: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"PKSampler: p and k must be >= 1, got p={p}, k={k}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"PKSampler: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        labels_arr = np.asarray(list(labels))
        if labels_arr.ndim != 1 or labels_arr.size == 0:
            raise ValueError("PKSampler: labels must be a non-empty 1-D sequence of ints")
        if not np.issubdtype(labels_arr.dtype, np.integer):
            raise ValueError(f"PKSampler: labels must be ints, got dtype {labels_arr.dtype}")
        bad = np.flatnonzero(labels_arr < 0)
        if bad.size:
            raise ValueError(
                f"PKSampler: label {int(labels_arr[bad[0]])} at index {int(bad[0])} is negative; "
                "training tracklets need labels from assign_train_labels (query/gallery have -1)"
            )
        by_label: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels_arr.tolist()):
            by_label[label].append(index)
        self.identities = np.array(sorted(by_label), dtype=np.int64)
        self._members = {lab: np.array(idx, dtype=np.int64) for lab, idx in by_label.items()}
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.num_ids = len(self.identities)
        self.batches_per_epoch = self.num_ids // (self.p * self.world_size)
        if self.batches_per_epoch == 0:
            raise SamplerError(
                f"PKSampler: {self.num_ids} identities cannot fill one step of p={p} identities x "
                f"world_size={world_size} ranks; lower p (data.p in a training config) or use more identities"
            )
        self.epoch = 0
        self._start = 0  # batches of `epoch` to skip on the next iteration (resume)
        self._yielded = 0  # batches of `epoch` handed out so far (start included)

    # -- epoch plan --------------------------------------------------------------------------
    def _rng(self, epoch: int) -> np.random.Generator:
        # SeedSequence over (seed, epoch): independent streams per epoch, identical on all ranks.
        return np.random.default_rng([self.seed, epoch])

    def global_plan(self, epoch: int) -> list[list[int]]:
        """All global batches of ``epoch`` (before the split over ranks), as index lists."""
        rng = self._rng(epoch)
        order = rng.permutation(self.identities)
        n_global = self.batches_per_epoch * self.world_size
        plan: list[list[int]] = []
        for b in range(n_global):
            batch: list[int] = []
            for label in order[b * self.p : (b + 1) * self.p]:
                members = self._members[int(label)]
                if len(members) >= self.k:
                    chosen = rng.choice(members, size=self.k, replace=False)
                else:
                    extra = rng.choice(members, size=self.k - len(members), replace=True)
                    chosen = np.concatenate([rng.permutation(members), extra])
                batch.extend(int(i) for i in chosen)
            plan.append(batch)
        return plan

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, in order."""
        return self.global_plan(epoch)[self.rank :: self.world_size]

    # -- iteration / resume --------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields.

        Setting the epoch that is already current keeps a pending resume offset, so the usual
        loop ``for e in range(start_epoch, E): sampler.set_epoch(e)`` works after
        ``load_state_dict``.
        """
        epoch = int(epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self._start = 0
            self._yielded = 0

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.batches(self.epoch)
        start = self._start
        self._yielded = start
        for batch in plan[start:]:
            self._yielded += 1
            yield batch
        # a completed epoch leaves no offset: iterating it again yields the whole epoch
        self._start = 0

    def __len__(self) -> int:
        """Batches in a full epoch on this rank (a resumed epoch yields ``len - batches_done``)."""
        return self.batches_per_epoch

    def state_dict(self, batches_done: int | None = None) -> dict:
        """Resumable state: ``epoch`` and ``batches_done`` (batches of that epoch consumed).

        Args:
            batches_done: batches the trainer actually consumed in the current epoch. Defaults to
                the number the sampler handed out, which over-counts when DataLoader workers
                prefetch.
        """
        done = self._yielded if batches_done is None else int(batches_done)
        if not 0 <= done <= self.batches_per_epoch:
            raise ValueError(f"PKSampler.state_dict: batches_done={done} outside [0, {self.batches_per_epoch}]")
        return {
            "epoch": self.epoch,
            "batches_done": done,
            "seed": self.seed,
            "p": self.p,
            "k": self.k,
            "world_size": self.world_size,
            "num_ids": self.num_ids,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; the next iteration yields the remaining batches of its epoch.

        Raises ValueError naming the key when the state comes from a sampler with different
        settings (seed, p, k, world_size, number of identities): the plan would not match.
        """
        for key in ("epoch", "batches_done"):
            if key not in state:
                raise ValueError(f"PKSampler.load_state_dict: missing key {key!r}")
        for key in ("seed", "p", "k", "world_size", "num_ids"):
            if key in state and int(state[key]) != int(getattr(self, key)):
                raise ValueError(
                    f"PKSampler.load_state_dict: key {key!r} is {state[key]} in the checkpoint but "
                    f"{getattr(self, key)} in this sampler; resuming would give different batches"
                )
        done = int(state["batches_done"])
        if not 0 <= done <= self.batches_per_epoch:
            raise ValueError(
                f"PKSampler.load_state_dict: key 'batches_done'={done} outside [0, {self.batches_per_epoch}]"
            )
        self.epoch = int(state["epoch"])
        self._start = done
        self._yielded = done


# --------------------------------------------------------------------------------------------
# Frames of a clip
# --------------------------------------------------------------------------------------------
def _pad(real: np.ndarray, length: int, pad: str) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``real`` frame indices to ``length``; mask is True on real entries only."""
    n = len(real)
    mask = np.zeros(length, dtype=bool)
    mask[:n] = True
    if n >= length:
        return real[:length].astype(np.int64), np.ones(length, dtype=bool)
    if pad == "repeat_last":
        filler = np.full(length - n, real[-1])
    elif pad == "loop":
        filler = real[np.arange(length - n) % n]
    else:  # pragma: no cover - validated by callers
        raise ValueError(f"pad={pad!r}: expected one of {PAD_MODES}")
    return np.concatenate([real, filler]).astype(np.int64), mask


def _check_num_frames(num_frames: int) -> int:
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"clip sampling: a tracklet needs at least one frame, got {num_frames}")
    return num_frames


def evenly(num_frames: int, length: int, pad: str = "repeat_last") -> tuple[np.ndarray, np.ndarray]:
    """``length`` frame indices evenly spaced over a tracklet of ``num_frames`` frames.

    Index ``i`` is the centre of the ``i``-th of ``length`` equal segments,
    ``floor((i + 1/2) * n / length)``, so the indices are strictly increasing when
    ``n >= length``. Shorter tracklets give all their frames, padded to ``length`` (mask False on
    padding).

    Returns:
        ``(indices int64[length], mask bool[length])``.
    """
    n = _check_num_frames(num_frames)
    if n < length:
        return _pad(np.arange(n), length, pad)
    idx = np.floor((np.arange(length) + 0.5) * n / length).astype(np.int64)
    return idx, np.ones(length, dtype=bool)


@CLIP_MODES.register("random_chunk")
def _random_chunk(n: int, length: int, stride: int, pad: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``length`` frames ``start + stride * [0..length-1]``, ``start`` uniform over the starts
    that fit; as many as fit (padded) when the span is longer than the tracklet."""
    fit = min(length, (n - 1) // stride + 1)  # stride-s frames that fit in n
    span = (fit - 1) * stride + 1
    start = int(rng.integers(0, n - span + 1))
    return _pad(start + stride * np.arange(fit), length, pad)


@CLIP_MODES.register("evenly")
def _evenly_clip(n: int, length: int, stride: int, pad: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The segment centres of :func:`evenly` (deterministic; ``stride`` and ``rng`` unused)."""
    return evenly(n, length, pad)


@CLIP_MODES.register("restricted_random")
def _restricted_random(n: int, length: int, stride: int, pad: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One uniform frame from each of ``length`` equal segments (Li et al. 2018); all frames,
    padded, when the tracklet is shorter than the clip (``stride`` unused)."""
    if n < length:
        return _pad(np.arange(n), length, pad)
    bounds = (np.arange(length + 1) * n) // length
    idx = rng.integers(bounds[:-1], bounds[1:])  # one uniform draw per segment, high exclusive
    return idx.astype(np.int64), np.ones(length, dtype=bool)


@TEST_CLIP_MODES.register("all")
def _all_frames(n: int, length: int | None, pad: str) -> tuple[np.ndarray, np.ndarray]:
    """Every frame (``T = n``); the feature extractor chunks long tracklets itself."""
    return np.arange(n, dtype=np.int64), np.ones(n, dtype=bool)


@TEST_CLIP_MODES.register("evenly")
def _evenly_test(n: int, length: int | None, pad: str) -> tuple[np.ndarray, np.ndarray]:
    return evenly(n, int(length), pad)


class ClipSampler:
    """Training clip sampler: which ``length`` frames of a tracklet form one clip.

    Modes (:data:`CLIP_MODES`; ``n`` = frames in the tracklet, ``T`` = ``length``, ``s`` = ``stride``):

    * ``random_chunk``: ``T`` consecutive frames ``start + s * [0..T-1]``, ``start`` uniform in
      ``[0, n - (T-1)s - 1]``. If the span does not fit, as many stride-``s`` frames as fit are
      taken from a random start and the clip is padded.
    * ``evenly``: deterministic, the segment centres of :func:`evenly` (``stride`` unused).
    * ``restricted_random``: split ``[0, n)`` into ``T`` segments
      ``[floor(i n / T), floor((i+1) n / T))`` and draw one frame uniformly from each (Li et al.
      2018) -- the whole tracklet is covered, order is kept, and every epoch sees new frames.

    Tracklets shorter than the clip give all their (stride-spaced) frames once, in order, padded
    to ``T`` with ``pad="repeat_last"`` (default; indices stay non-decreasing) or ``"loop"``
    (cycle from the start). The mask is True exactly on real frames, so mask-aware aggregation
    ignores the padding; padding by repetition (rather than zeros) keeps mask-unaware models sane.

    ``sample(num_frames, rng)`` returns ``(indices int64[T], mask bool[T])``; all randomness comes
    from ``rng``.
    """

    def __init__(self, mode: str = "restricted_random", length: int = 8, stride: int = 1, pad: str = "repeat_last"):
        if mode not in CLIP_MODES:
            hint = " (test-time modes are in TestClipSampler)" if mode in TEST_CLIP_MODES else ""
            raise ValueError(
                f"ClipSampler: mode={mode!r} is not a training mode ({', '.join(CLIP_MODES.names())}){hint}"
            )
        if length < 1 or stride < 1:
            raise ValueError(f"ClipSampler: length and stride must be >= 1, got length={length}, stride={stride}")
        if pad not in PAD_MODES:
            raise ValueError(f"ClipSampler: pad={pad!r}, expected one of {PAD_MODES}")
        self.mode, self.length, self.stride, self.pad = mode, int(length), int(stride), pad
        self._draw = CLIP_MODES[mode]

    def __repr__(self) -> str:
        return f"ClipSampler(mode={self.mode!r}, length={self.length}, stride={self.stride}, pad={self.pad!r})"

    def sample(self, num_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self._draw(_check_num_frames(num_frames), self.length, self.stride, self.pad, rng)

    __call__ = sample


class TestClipSampler:
    """Test-time frame selection, deterministic (modes in :data:`TEST_CLIP_MODES`).

    * ``all``: every frame (``indices = arange(n)``, mask all True, ``T = n``); the feature
      extractor pushes long tracklets through the backbone in chunks.
    * ``evenly``: ``length`` evenly spaced frames (:func:`evenly`), padded for short tracklets.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, mode: str = "all", length: int | None = None, pad: str = "repeat_last"):
        TEST_CLIP_MODES.check(mode, key="TestClipSampler mode")
        if mode == "evenly" and (length is None or length < 1):
            raise ValueError(f"TestClipSampler: mode='evenly' needs length >= 1, got {length}")
        if pad not in PAD_MODES:
            raise ValueError(f"TestClipSampler: pad={pad!r}, expected one of {PAD_MODES}")
        self.mode, self.length, self.pad = mode, length, pad
        self._select = TEST_CLIP_MODES[mode]

    def __repr__(self) -> str:
        return f"TestClipSampler(mode={self.mode!r}, length={self.length})"

    def sample(self, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        return self._select(_check_num_frames(num_frames), self.length, self.pad)

    __call__ = sample


__all__ = [
    "CLIP_MODES",
    "PAD_MODES",
    "TEST_CLIP_MODES",
    "ClipSampler",
    "PKSampler",
    "SamplerError",
    "TestClipSampler",
    "evenly",
]
