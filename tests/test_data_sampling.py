"""PK batch sampler (balance, determinism, resume, distributed split) and clip frame samplers."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from reid.data.sampling import ClipSampler, PKSampler, TestClipSampler, evenly


def make_labels(counts: list[int]) -> list[int]:
    """labels with counts[i] tracklets of identity i, interleaved so indices are not grouped."""
    labels = [lab for lab, c in enumerate(counts) for _ in range(c)]
    rng = np.random.default_rng(123)
    return [int(x) for x in rng.permutation(labels)]


# identity sizes chosen to include identities with fewer than K=4 tracklets
COUNTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 2, 6, 5]


def test_pk_batches_have_p_distinct_ids_times_k():
    labels = make_labels(COUNTS)
    s = PKSampler(labels, p=3, k=4, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == len(COUNTS) // 3
    for batch in batches:
        assert len(batch) == 12
        per_label = Counter(labels[i] for i in batch)
        assert len(per_label) == 3 and set(per_label.values()) == {4}
        # identities with >= K tracklets never repeat one; short ones use all theirs
        for lab in per_label:
            picked = [i for i in batch if labels[i] == lab]
            available = COUNTS[lab]
            assert len(set(picked)) == min(available, 4)
    ids_this_epoch = [lab for b in batches for lab in {labels[i] for i in b}]
    assert len(ids_this_epoch) == len(set(ids_this_epoch)), "an identity appeared twice in one epoch"


def test_pk_deterministic_and_epoch_dependent():
    labels = make_labels(COUNTS)
    a = list(PKSampler(labels, 2, 4, seed=7))
    b = list(PKSampler(labels, 2, 4, seed=7))
    c = list(PKSampler(labels, 2, 4, seed=8))
    assert a == b
    assert a != c
    s = PKSampler(labels, 2, 4, seed=7)
    s.set_epoch(1)
    assert list(s) != a
    s.set_epoch(0)
    assert list(s) == a


def test_pk_resume_mid_epoch_gives_exactly_the_remaining_batches():
    labels = make_labels(COUNTS)
    ref = PKSampler(labels, 2, 3, seed=3)
    ref.set_epoch(2)
    full = list(ref)

    s = PKSampler(labels, 2, 3, seed=3)
    s.set_epoch(2)
    it = iter(s)
    first = [next(it) for _ in range(3)]
    state = s.state_dict()
    assert state["epoch"] == 2 and state["batches_done"] == 3

    resumed = PKSampler(labels, 2, 3, seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the trainer's loop calls this again: the offset must survive
    assert len(s) == len(resumed) == len(full)
    rest = list(resumed)
    assert first + rest == full
    # the epoch after a resumed one is complete again
    assert len(list(resumed)) == len(full)
    resumed.set_epoch(3)
    assert len(list(resumed)) == len(full)


def test_pk_state_dict_with_explicit_consumed_count_and_mismatch_error():
    labels = make_labels(COUNTS)
    s = PKSampler(labels, 2, 2, seed=1)
    full = list(s)
    state = s.state_dict(batches_done=2)
    r = PKSampler(labels, 2, 2, seed=1)
    r.load_state_dict(state)
    assert list(r) == full[2:]
    other = PKSampler(labels, 2, 2, seed=2)
    with pytest.raises(ValueError, match="'seed'"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="batches_done"):
        s.state_dict(batches_done=len(full) + 1)


def test_pk_two_ranks_disjoint_and_same_length():
    labels = make_labels(COUNTS + [4, 4, 4, 4])
    ranks = [PKSampler(labels, p=2, k=4, seed=5, rank=r, world_size=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(4)
    b0, b1 = list(ranks[0]), list(ranks[1])
    assert len(b0) == len(b1) == len(ranks[0]) == (len(COUNTS) + 4) // 4
    for x, y in zip(b0, b1):  # batches processed in the same step
        assert {labels[i] for i in x}.isdisjoint({labels[i] for i in y})
        assert len(x) == len(y) == 8
    ids0 = {labels[i] for b in b0 for i in b}
    ids1 = {labels[i] for b in b1 for i in b}
    assert ids0.isdisjoint(ids1), "an identity was given to both ranks in one epoch"
    # both ranks together are the single-process global plan
    glob = ranks[0].global_plan(4)
    assert sorted(map(tuple, b0 + b1)) == sorted(map(tuple, glob))


def test_pk_rejects_bad_input():
    with pytest.raises(ValueError, match="index 2"):
        PKSampler([0, 1, -1, 2], 1, 1)
    with pytest.raises(ValueError, match="cannot fill"):
        PKSampler([0, 1, 2], p=4, k=2)
    with pytest.raises(ValueError, match="rank"):
        PKSampler([0, 1], 1, 1, rank=2, world_size=2)


def test_p_larger_than_the_identities_is_a_user_error_naming_data_p():
    from reid.data.sampling import SamplerError
    from reid.errors import UserError

    with pytest.raises(SamplerError, match=r"data\.p") as info:
        PKSampler([0, 1, 2], p=4, k=2)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["random_chunk", "evenly", "restricted_random"])
@pytest.mark.parametrize("stride", [1, 3])
def test_clip_modes_valid_ordered_masked(mode, stride):
    T = 6
    cs = ClipSampler(mode, length=T, stride=stride)
    rng = np.random.default_rng(0)
    for n in [1, 2, 5, 6, 7, 16, 40, 101]:
        for _ in range(20):
            idx, mask = cs.sample(n, rng)
            assert idx.shape == mask.shape == (T,)
            assert idx.dtype == np.int64 and mask.dtype == np.bool_
            assert idx.min() >= 0 and idx.max() < n
            assert np.all(np.diff(idx) >= 0), "indices must be in temporal order"
            real = idx[mask]
            assert mask[: mask.sum()].all() and not mask[mask.sum():].any(), "real frames first"
            assert np.all(np.diff(real) > 0), "real frames must be distinct"
            assert np.all(idx[~mask] == real[-1]), "padding repeats the last real frame"
            if mode == "random_chunk":
                assert np.all(np.diff(real) == stride)
                assert mask.sum() == min(T, (n - 1) // stride + 1)
            else:
                assert mask.sum() == min(T, n)


def test_restricted_random_one_frame_per_segment_and_covers_all():
    cs = ClipSampler("restricted_random", length=4)
    rng = np.random.default_rng(1)
    n = 20  # segments [0,5) [5,10) [10,15) [15,20)
    hits = np.zeros(n, dtype=int)
    for _ in range(400):
        idx, mask = cs.sample(n, rng)
        assert mask.all()
        assert np.all(idx // 5 == np.arange(4))
        hits[idx] += 1
    assert (hits > 0).all(), "every frame should be reachable"


def test_random_chunk_start_uniform_and_reproducible():
    cs = ClipSampler("random_chunk", length=4, stride=2)
    starts = [cs.sample(20, np.random.default_rng(s))[0][0] for s in range(300)]
    assert set(starts) == set(range(0, 20 - 7 + 1))
    a = cs.sample(20, np.random.default_rng(9))[0]
    b = cs.sample(20, np.random.default_rng(9))[0]
    assert np.array_equal(a, b)


def test_loop_padding_and_evenly_positions():
    cs = ClipSampler("evenly", length=7, pad="loop")
    idx, mask = cs.sample(3, np.random.default_rng(0))
    assert idx.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert mask.tolist() == [True] * 3 + [False] * 4
    idx, mask = evenly(10, 4)
    assert idx.tolist() == [1, 3, 6, 8] and mask.all()  # floor((i + .5) * 10 / 4)


def test_test_samplers():
    idx, mask = TestClipSampler("all").sample(11)
    assert idx.tolist() == list(range(11)) and mask.all()
    idx, mask = TestClipSampler("evenly", length=4).sample(2)
    assert idx.tolist() == [0, 1, 1, 1] and mask.tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="not a training mode"):
        ClipSampler("all")
    with pytest.raises(ValueError, match="length"):
        TestClipSampler("evenly")
