"""Noisy-identity injection: exact counts, kinds, combination rules, manifest round-trip."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from reid.data.noise import (
    NoiseConfig,
    NoiseManifest,
    apply_manifest,
    apply_noise,
    inject_label_noise,
    pairflip_partners,
)
from reid.data.tracklet import DatasetError, Tracklet, assign_train_labels

NUM_IDS = 10


def make_train(num_ids: int = NUM_IDS, per_id: int = 8, seed: int = 0) -> list[Tracklet]:
    rng = np.random.default_rng(seed)
    out, row = [], 0
    for pid in range(1, num_ids + 1):
        for k in range(per_id):
            n = int(rng.integers(3, 12))
            frames = tuple(f"/data/bbox_train/{pid:04d}/{pid:04d}C1T{k:04d}F{f:03d}.jpg" for f in range(n))
            out.append(Tracklet(frames=frames, pid=pid * 7, camid=1 + k % 3, tracklet_id=k, row=row))
            row += 1
    return assign_train_labels(out)[0]


def cfg(*items, seed=0, **kw) -> NoiseConfig:
    return NoiseConfig(items=[dict(it) for it in items], seed=seed, **kw)


def test_symmetric_exact_count_and_true_label_never_kept():
    train = make_train()
    n = len(train)
    noisy, man = apply_noise(train, cfg({"kind": "symmetric", "rate": 0.37}), NUM_IDS)
    changed = [i for i, (a, b) in enumerate(zip(train, noisy)) if a.label != b.label]
    assert len(changed) == int(0.37 * n) == len(man.label_changes)
    assert all(c.noisy_label != c.true_label for c in man.label_changes)
    # pid is kept as the true pid (audit), only the training label moves
    assert all(a.pid == b.pid and a.frames == b.frames for a, b in zip(train, noisy))
    assert all(0 <= t.label < NUM_IDS for t in noisy)
    # noisy_pid is the pid of the noisy label
    label_to_pid = {t.label: t.pid for t in train}
    assert all(c.noisy_pid == label_to_pid[c.noisy_label] for c in man.label_changes)


def test_symmetric_is_uniform_over_the_other_classes():
    true = np.repeat(np.arange(5), 4000)
    res = inject_label_noise(true, 5, [{"kind": "symmetric", "rate": 1.0}], seed=3)
    assert res.noisy_mask.all() and np.all(res.noisy_labels != true)
    # for class 0 the new labels spread evenly over 1..4
    counts = np.bincount(res.noisy_labels[true == 0], minlength=5)
    assert counts[0] == 0
    assert np.all(np.abs(counts[1:] / 4000 - 0.25) < 0.03)


def test_noise_is_seeded():
    true = np.arange(200) % 10
    items = [{"kind": "symmetric", "rate": 0.4}]
    a = inject_label_noise(true, 10, items, seed=1).noisy_labels
    b = inject_label_noise(true, 10, items, seed=1).noisy_labels
    c = inject_label_noise(true, 10, items, seed=2).noisy_labels
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_pairflip_partner_is_fixed_and_never_itself():
    train = make_train()
    noisy, man = apply_noise(train, cfg({"kind": "pairflip", "rate": 0.5}), NUM_IDS)
    assert len(man.label_changes) == int(0.5 * len(train))
    partner = man.pairflip_partner
    assert sorted(partner) == list(range(NUM_IDS))
    assert all(partner[a] != a for a in partner)
    assert sorted(partner.values()) == list(range(NUM_IDS))  # a permutation cycle
    for c in man.label_changes:
        assert c.kind == "pairflip" and c.noisy_label == partner[c.true_label]
    rng = np.random.default_rng(0)
    part = pairflip_partners(7, rng)
    # a single cycle: following partners from 0 visits all classes
    seen, a = [], 0
    for _ in range(7):
        seen.append(a)
        a = int(part[a])
    assert sorted(seen) == list(range(7)) and a == 0


def test_tracklet_swap_exchanges_labels_in_pairs_of_different_identities():
    train = make_train()
    rate = 0.31
    noisy, man = apply_noise(train, cfg({"kind": "tracklet_swap", "rate": rate}), NUM_IDS)
    expected = int(rate * len(train))
    expected -= expected % 2
    assert len(man.label_changes) == expected
    by_index = {c.index: c for c in man.label_changes}
    for c in man.label_changes:
        other = by_index[c.swapped_with]
        assert other.swapped_with == c.index
        assert c.true_label != other.true_label
        assert c.noisy_label == other.true_label and other.noisy_label == c.true_label
    # label multiset is preserved by swaps
    assert Counter(t.label for t in train) == Counter(t.label for t in noisy)


def test_outlier_frames_exact_fraction_only_in_clean_tracklets():
    train = make_train()
    rate = 0.2
    noisy, man = apply_noise(
        train, cfg({"kind": "symmetric", "rate": 0.25}, {"kind": "outlier_frames", "rate": rate}), NUM_IDS
    )
    relabelled = {c.index for c in man.label_changes}
    clean_frames = sum(len(t) for i, t in enumerate(train) if i not in relabelled)
    assert len(man.frame_changes) == int(rate * clean_frames)
    assert len({(c.index, c.position) for c in man.frame_changes}) == len(man.frame_changes)
    for c in man.frame_changes:
        assert c.index not in relabelled
        assert noisy[c.index].label == train[c.index].label  # frames change, label does not
        assert noisy[c.index].frames[c.position] == c.replacement
        assert c.donor_pid != train[c.index].pid
        assert c.replacement in train[c.donor_index].frames
    changed = sum(a != b for t0, t1 in zip(train, noisy) for a, b in zip(t0.frames, t1.frames))
    assert changed == len(man.frame_changes)


def test_outlier_background_crops_written_under_output_dir(tmp_path):
    train = make_train(num_ids=4, per_id=3)
    noisy, man = apply_noise(
        train, cfg({"kind": "outlier_frames", "rate": 0.3, "source": "background"}), 4, background_dir=tmp_path / "bg"
    )
    assert man.frame_changes and all(c.source == "background" for c in man.frame_changes)
    for c in man.frame_changes:
        assert c.replacement.startswith(str((tmp_path / "bg").resolve()))
        assert (tmp_path / "bg" / c.replacement.rsplit("/", 1)[-1]).is_file()
    with pytest.raises(ValueError, match="background_dir"):
        apply_noise(train, cfg({"kind": "outlier_frames", "rate": 0.3, "source": "background"}), 4)


def test_combined_kinds_relabel_each_tracklet_at_most_once():
    train = make_train(per_id=20)
    n = len(train)
    items = ({"kind": "symmetric", "rate": 0.3}, {"kind": "pairflip", "rate": 0.2}, {"kind": "tracklet_swap", "rate": 0.2})
    noisy, man = apply_noise(train, cfg(*items), NUM_IDS)
    per_kind = Counter(c.kind for c in man.label_changes)
    assert per_kind == {"symmetric": int(0.3 * n), "pairflip": int(0.2 * n), "tracklet_swap": int(0.2 * n) // 2 * 2}
    indices = [c.index for c in man.label_changes]
    assert len(indices) == len(set(indices))
    # appending an item does not change what the earlier ones drew
    _, man2 = apply_noise(train, cfg(*items[:1]), NUM_IDS)
    sym = sorted((c.index, c.noisy_label) for c in man.label_changes if c.kind == "symmetric")
    assert sym == sorted((c.index, c.noisy_label) for c in man2.label_changes)


def test_config_validation_errors():
    with pytest.raises(ValidationError, match="more than once"):
        cfg({"kind": "symmetric", "rate": 0.1}, {"kind": "symmetric", "rate": 0.2})
    with pytest.raises(ValidationError, match="sum to"):
        cfg({"kind": "symmetric", "rate": 0.6}, {"kind": "pairflip", "rate": 0.6})
    with pytest.raises(ValidationError):
        NoiseConfig(items=[{"kind": "symmetric", "rate": 0.2, "colour": 1}])
    with pytest.raises(ValidationError):
        NoiseConfig(items=[{"kind": "gaussian", "rate": 0.2}])
    with pytest.raises(ValidationError, match="source"):
        NoiseConfig(items=[{"kind": "symmetric", "rate": 0.2, "source": "background"}])


def test_unlabelled_split_is_rejected():
    train = [t.with_label(-1) for t in make_train(num_ids=2, per_id=2)]
    with pytest.raises(DatasetError, match="row 0"):
        apply_noise(train, cfg({"kind": "symmetric", "rate": 0.5}), 2)


def test_manifest_round_trip_reapplies_identically(tmp_path):
    train = make_train()
    c = cfg({"kind": "symmetric", "rate": 0.2}, {"kind": "tracklet_swap", "rate": 0.1},
            {"kind": "outlier_frames", "rate": 0.1}, seed=5)
    noisy, man = apply_noise(train, c, NUM_IDS)
    path = man.save(tmp_path / "noise_manifest.json")
    data = json.loads(path.read_text())
    assert data["summary"]["relabelled"] == len(man.label_changes)
    loaded = NoiseManifest.load(path)
    assert apply_manifest(train, loaded) == noisy
    # through the config's manifest key, as the trainer would
    again, man3 = apply_noise(train, NoiseConfig(manifest=path), NUM_IDS)
    assert again == noisy and len(man3.frame_changes) == len(man.frame_changes)
    # a different split is refused, naming the manifest file
    other = make_train(seed=1)
    with pytest.raises(DatasetError, match="noise_manifest.json"):
        apply_noise(other, NoiseConfig(manifest=path), NUM_IDS)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json"):
        NoiseManifest.load(bad)
