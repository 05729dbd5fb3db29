"""Clip datasets: item contract, determinism, DataLoader with workers, corrupt frames, collates."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from reid.data.datasets import (
    TestTrackletDataset,
    TrainClipDataset,
    collate_clips,
    collate_test,
    worker_init,
)
from reid.data.frames import FrameReadError
from reid.data.sampling import ClipSampler, PKSampler
from reid.data.tracklet import DatasetError, Tracklet
from reid.data.transforms import build_clip_transform
from reid.data.uint8_frames import normalize_frames

H, W, T = 32, 16, 4


def write_tracklets(root: Path, lengths_per_id: list[list[int]], seed: int = 0) -> list[Tracklet]:
    """Tiny JPEG tracklets: identity i has tracklets of the given lengths; labels = i."""
    rng = np.random.default_rng(seed)
    tracklets = []
    row = 0
    for label, lengths in enumerate(lengths_per_id):
        for tid, n in enumerate(lengths):
            paths = []
            for f in range(n):
                img = rng.integers(0, 256, (H + 8, W + 4, 3), dtype=np.uint8)
                path = root / f"{label:04d}C1T{tid:04d}F{f:03d}.jpg"
                assert cv2.imwrite(str(path), img)
                paths.append(str(path))
            tracklets.append(Tracklet(tuple(paths), pid=100 + label, camid=1 + tid % 3, tracklet_id=tid, row=row, label=label))
            row += 1
    return tracklets


@pytest.fixture(scope="module")
def tracklets(tmp_path_factory) -> list[Tracklet]:
    root = tmp_path_factory.mktemp("frames")
    return write_tracklets(root, [[5, 2], [7], [3, 9, 4], [1, 6], [8, 8]])


def make_train_set(tracklets, seed=0, **kw) -> TrainClipDataset:
    return TrainClipDataset(
        tracklets,
        ClipSampler("restricted_random", length=T),
        build_clip_transform(True, height=H, width=W, pad=2),
        seed=seed,
        **kw,
    )


def test_train_item_contract(tracklets):
    ds = make_train_set(tracklets)
    assert len(ds) == len(tracklets)
    item = ds[4]  # a 9-frame tracklet
    assert set(item) == {"frames", "mask", "label", "pid", "camid", "index", "row"}
    assert item["frames"].shape == (T, 3, H, W) and item["frames"].dtype == torch.uint8  # normalised on the device
    assert item["mask"].shape == (T,) and item["mask"].dtype == torch.bool
    assert item["label"] == tracklets[4].label and item["pid"] == tracklets[4].pid
    assert item["camid"] == tracklets[4].camid and item["index"] == 4 and item["row"] == tracklets[4].row
    short = ds[6]  # a 1-frame tracklet: one real frame, padding repeats it
    assert short["mask"].tolist() == [True, False, False, False]
    assert all(torch.equal(short["frames"][t], short["frames"][0]) for t in range(T))


def test_train_items_deterministic_per_seed_epoch_and_occurrence(tracklets):
    a, b = make_train_set(tracklets, seed=1), make_train_set(tracklets, seed=1)
    assert torch.equal(a[3]["frames"], b[3]["frames"])
    assert not torch.equal(a[3]["frames"], make_train_set(tracklets, seed=2)[3]["frames"])
    b.set_epoch(1)
    assert b.epoch == 1
    assert not torch.equal(a[3]["frames"], b[3]["frames"])
    # a tracklet repeated inside one batch gets a different clip for each copy
    items = a.__getitems__([1, 1, 3])
    assert not torch.equal(items[0]["frames"], items[1]["frames"])
    assert torch.equal(items[0]["frames"], a[1]["frames"])


def test_dataloader_two_workers_matches_single_process(tracklets):
    labels = [t.label for t in tracklets]

    def run(workers: int, persistent: bool = False) -> list[dict]:
        ds = make_train_set(tracklets, seed=3)
        sampler = PKSampler(labels, p=2, k=3, seed=3)
        loader = DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=collate_clips,
            num_workers=workers,
            worker_init_fn=worker_init if workers else None,
            persistent_workers=persistent,
        )
        batches = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            ds.set_epoch(epoch)
            batches += list(loader)
        return batches

    ref = run(0)
    got = run(2, persistent=True)  # persistent workers must still see set_epoch
    assert len(ref) == len(got) == 2 * (len({*labels}) // 2)
    for r, g in zip(ref, got):
        assert g["frames"].shape == (6, T, 3, H, W)
        assert g["mask"].shape == (6, T) and g["label"].dtype == torch.int64
        assert len(set(g["label"].tolist())) == 2
        assert torch.equal(r["index"], g["index"])
        assert torch.equal(r["frames"], g["frames"]), "workers changed the augmentation"
    assert not torch.equal(ref[0]["frames"], ref[len(ref) // 2]["frames"])


@pytest.fixture()
def with_corrupt(tmp_path) -> list[Tracklet]:
    ts = write_tracklets(tmp_path, [[3], [2]], seed=5)
    bad = Path(ts[0].frames[1])
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return ts


def test_corrupt_error_names_path_in_process_and_through_worker(with_corrupt):
    ds = TrainClipDataset(with_corrupt, ClipSampler("evenly", length=3), build_clip_transform(True, height=H, width=W), seed=0)
    bad = with_corrupt[0].frames[1]
    with pytest.raises(FrameReadError, match="row 0") as err:
        ds[0]
    assert err.value.path == bad
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate_clips)
    with pytest.raises(Exception) as err:
        list(loader)
    assert bad in str(err.value), "the DataLoader error must still name the corrupt file"


def test_corrupt_skip_substitutes_and_counts_across_workers(with_corrupt):
    ds = TrainClipDataset(
        with_corrupt,
        ClipSampler("evenly", length=3),
        build_clip_transform(False, height=H, width=W),
        seed=0,
        corrupt="skip",
    )
    with pytest.warns(UserWarning, match="corrupt='skip'"):
        item = ds[0]
    assert ds.skipped_frames == 1
    good_neighbour = cv2.cvtColor(cv2.imread(with_corrupt[0].frames[0]), cv2.COLOR_BGR2RGB)
    expected = build_clip_transform(False, height=H, width=W)([good_neighbour])[0]
    assert torch.equal(normalize_frames(item["frames"][1]), expected), "frame 1 should be replaced by its nearest neighbour (0)"
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert batch["frames"].shape == (2, 3, 3, H, W)
    assert ds.skipped_frames == 2, "the count made in a worker must reach the main process"


def test_train_dataset_rejects_unlabelled_and_empty(tracklets):
    bad = [tracklets[0], tracklets[1].with_label(-1)]
    with pytest.raises(DatasetError, match="position 1"):
        make_train_set(bad)
    with pytest.raises(ValueError, match="corrupt"):
        make_train_set(tracklets, corrupt="ignore")


def test_test_dataset_all_and_evenly_and_collates(tracklets):
    tf = build_clip_transform(False, height=H, width=W)
    full = TestTrackletDataset(tracklets, tf, mode="all")
    item = full[3]
    assert set(item) == {"frames", "mask", "index", "pid", "camid"}
    assert item["frames"].shape == (len(tracklets[3]), 3, H, W) and item["mask"].all()
    even = TestTrackletDataset(tracklets, tf, mode="evenly", length=4)
    assert even[6]["frames"].shape == (4, 3, H, W)
    assert even[6]["mask"].tolist() == [True, False, False, False]

    batch = [full[i] for i in (0, 6, 4)]  # lengths 5, 1, 9
    listed = collate_test(batch)
    assert [f.shape[0] for f in listed["frames"]] == [5, 1, 9]
    assert listed["lengths"].tolist() == [5, 1, 9] and listed["indices"].tolist() == [0, 6, 4]
    padded = collate_test(batch, pad=True)
    assert padded["frames"].shape == (3, 9, 3, H, W)
    assert padded["mask"].sum(1).tolist() == [5, 1, 9]
    assert torch.equal(padded["frames"][1, 0], full[6]["frames"][0])
    assert padded["frames"][1, 1:].abs().sum() == 0

    loader = DataLoader(full, batch_size=4, collate_fn=functools.partial(collate_test, pad=True))
    seen = [i for b in loader for i in b["indices"].tolist()]
    assert seen == list(range(len(tracklets)))


def test_collate_clips_rejects_mixed_shapes(tracklets):
    ds = make_train_set(tracklets)
    a = ds[0]
    b = dict(a, frames=a["frames"][:2])
    with pytest.raises(ValueError, match="different shapes"):
        collate_clips([a, b])


def test_loader_benchmark_smoke(tiny_synthetic_mars, capsys):
    """The benchmark runs end to end on the tiny synthetic MARS and reports sane ratios."""
    import json

    from reid.benchmarks.loader import main

    rc = main(["--root", str(tiny_synthetic_mars), "--workers", "0", "--batches", "1", "--p", "2", "--k", "2",
               "--length", "3", "--size", "32x16", "--repeats", "2", "--skip-strategies", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    raw, loader = report["results"]
    assert raw["setting"] == "raw" and loader["setting"] == "loader" and loader["workers"] == 0
    assert raw["frames"] == loader["frames"] > 0, "both settings must process the same clips"
    assert raw["fps"] > 0 and 0 < loader["ratio"] < 100
    assert len(raw["rounds"]) == len(loader["rounds"]) == 2 and round(raw["fps"], 1) == max(raw["rounds"])
