"""Generators of the standard benchmarks' release layouts, tiny, for the reader tests
(``tests/test_data_{ilids_vid,prid2011,duke_video,market1501,msmt17}.py``). Nothing is
downloaded: images are 4x2 PNG/JPEG files written with OpenCV, or empty files where a test
only needs the index (``images=False``: the readers list and check files, they decode only on
``verify_frames``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, images: bool = True, value: int = 0) -> Path:
    """A 4x2 image at ``path`` (format from the suffix), or an empty file with ``images=False``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if images:
        img = np.full((4, 2, 3), value % 256, dtype=np.uint8)
        assert cv2.imwrite(str(path), img), path
    else:
        path.touch()
    return path


def random_splits(persons: list[str], num_test: int, num_splits: int = 10, seed: int = 0) -> list[dict]:
    """``num_splits`` random train/test splits of ``persons`` in torchreid's JSON form."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num_splits):
        order = rng.permutation(len(persons))
        test = sorted(persons[i] for i in order[:num_test])
        out.append({"train": sorted(persons[i] for i in order[num_test:]), "test": test})
    return out


def make_ilids_vid(root: Path, persons: list[int], frames: int = 2, images: bool = True,
                   splits: list[dict] | None = None, mat_rows: np.ndarray | None = None) -> Path:
    """``root/i-LIDS-VID/sequences/cam{1,2}/personNNN/camK_personNNN_000FF.png`` for each person;
    ``splits`` -> ``root/splits.json``; ``mat_rows`` (10 x 300, 1-based) -> the release's
    ``train-test people splits/train_test_splits_ilidsvid.mat``."""
    for cam in (1, 2):
        for p in persons:
            for f in range(frames):
                name = f"cam{cam}_person{p:03d}_{f + 1:05d}.png"
                write_image(root / "i-LIDS-VID" / "sequences" / f"cam{cam}" / f"person{p:03d}" / name, images, p)
    if splits is not None:
        (root / "splits.json").write_text(json.dumps(splits))
    if mat_rows is not None:
        from scipy.io import savemat

        folder = root / "train-test people splits"
        folder.mkdir(parents=True, exist_ok=True)
        savemat(str(folder / "train_test_splits_ilidsvid.mat"), {"ls_set": np.asarray(mat_rows, dtype=np.float64)})
    return root


def make_prid2011(root: Path, persons_a: list[int], persons_b: list[int], frames: int = 2, images: bool = True,
                  splits: list[dict] | None = None) -> Path:
    """``root/prid_2011/multi_shot/cam_{a,b}/person_NNNN/000F.png``; ``splits`` ->
    ``root/splits_prid2011.json``."""
    for cam, persons in (("cam_a", persons_a), ("cam_b", persons_b)):
        for p in persons:
            for f in range(frames):
                write_image(root / "prid_2011" / "multi_shot" / cam / f"person_{p:04d}" / f"{f + 1:04d}.png", images, p)
    if splits is not None:
        (root / "splits_prid2011.json").write_text(json.dumps(splits))
    return root


def make_duke_video(root: Path, tracklets: dict[str, list[tuple[int, int, int, int]]], images: bool = True) -> Path:
    """``root/<part>/<pid4>/<tid4>/<pid4>_C<cam>_F<frame4>_X<n>.jpg`` for each
    ``(pid, tid, cam, frames)`` of each part (train, query, gallery); frames are written in
    reverse order of their F number so the reader must sort them."""
    for part in ("train", "query", "gallery"):
        (root / part).mkdir(parents=True, exist_ok=True)
        for pid, tid, cam, n in tracklets.get(part, []):
            for f in reversed(range(n)):
                name = f"{pid:04d}_C{cam}_F{f + 1:04d}_X{tid * 100 + f:05d}.jpg"
                write_image(root / part / f"{pid:04d}" / f"{tid:04d}" / name, images, pid)
    return root


def market_name(pid: int, cam: int, frame: int) -> str:
    """A Market-1501 file name (``-1`` junk, ``0000`` distractor)."""
    code = "-1" if pid == -1 else f"{pid:04d}"
    return f"{code}_c{cam}s1_{frame:06d}_01.jpg"


def duke_reid_name(pid: int, cam: int, frame: int) -> str:
    """A DukeMTMC-reID file name."""
    code = "-1" if pid == -1 else f"{pid:04d}"
    return f"{code}_c{cam}_f{frame:07d}.jpg"


def make_image_layout(root: Path, files: dict[str, list[str]], images: bool = True) -> Path:
    """``root/{bounding_box_train,query,bounding_box_test}/<name>`` for the given names."""
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(files.get(folder, [])):
            write_image(root / folder / name, images, k)
    return root


def msmt_name(label: int, cam: int, k: int) -> str:
    """An MSMT17 list path ``<label4>/<label4>_<k3>_<cam2>_0303morning_<k4>_0.jpg``."""
    return f"{label:04d}/{label:04d}_{k:03d}_{cam:02d}_0303morning_{k:04d}_0.jpg"


def make_msmt17(root: Path, lists: dict[str, list[tuple[str, int]]], images: bool = True,
                version: int = 1) -> Path:
    """``list_{train,val,query,gallery}.txt`` of ``(path, label)`` lines and their images under
    ``train/`` + ``test/`` (V1) or ``mask_train_v2/`` + ``mask_test_v2/`` (V2)."""
    train_dir, test_dir = ("train", "test") if version == 1 else ("mask_train_v2", "mask_test_v2")
    for split in ("train", "val", "query", "gallery"):
        folder = root / (train_dir if split in ("train", "val") else test_dir)
        folder.mkdir(parents=True, exist_ok=True)
        lines = lists.get(split, [])
        (root / f"list_{split}.txt").write_text("".join(f"{p} {label}\n" for p, label in lines))
        for k, (p, _) in enumerate(lines):
            write_image(folder / p, images, k)
    return root
