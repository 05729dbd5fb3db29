"""Reader for MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018): 4,101 ids, 15 cameras; ``list_train.txt`` 30,248 images and
``list_val.txt`` 2,373 (together the 32,621 training images of 1,041 ids), ``list_query.txt``
11,659, ``list_gallery.txt`` 82,161. Each image is a one-frame tracklet.

Layout (``root`` is the release folder, or torchreid's ``msmt17/`` holding it)::

    ROOT/list_train.txt  list_val.txt  list_query.txt  list_gallery.txt
    ROOT/train/0000/0000_000_01_0303morning_0015_0.jpg ...     (V2: mask_train_v2/)
    ROOT/test/...                                              (V2: mask_test_v2/)

Each list line is ``<path> <label>``, the path relative to the train (train, val lists) or
test (query, gallery lists) folder; the camera is the third ``_`` field of the file name
(``..._01_...`` -> 1). MSMT17's labels start at 0, which this package reserves for
distractors, so ``pid = label + 1`` (every split alike; training labels are renumbered anyway).
``data.format_options.use_val: true`` adds ``list_val.txt`` to training (torchreid's
``combineall``); by default it is left out, the conventional setting torchreid recommends.
Errors name the list file and its 1-based line.
"""

from __future__ import annotations

import os
from pathlib import Path

from reid.data.reader_common import LoadSettings, RawTracklet, assemble, check_options, resolve_release
from reid.data.tracklet import DatasetError, VideoReIDData
from reid.data.validation import ErrorCollector

LISTS = {"train": "list_train.txt", "val": "list_val.txt", "query": "list_query.txt", "gallery": "list_gallery.txt"}
# (train images, test images) folder per release version
IMAGE_DIRS = (("train", "test"), ("mask_train_v2", "mask_test_v2"))
RELEASE_NAMES = ("MSMT17_V1", "MSMT17_V2", "MSMT17")
NUM_CAMERAS = 15
OPTIONS = {"use_val": "also train on list_val.txt (true/false, default false)"}


def _image_dirs(p: Path) -> tuple[Path, Path] | None:
    for train, test in IMAGE_DIRS:
        if (p / train).is_dir() and (p / test).is_dir():
            return p / train, p / test
    return None


def _is_release(p: Path) -> bool:
    return all((p / name).is_file() for k, name in LISTS.items() if k != "val") and _image_dirs(p) is not None


def is_msmt17(root: str | os.PathLike) -> bool:
    """``root`` (or its ``MSMT17_V1/`` / ``MSMT17_V2/``) holds the list files and image folders."""
    return resolve_release(root, _is_release, RELEASE_NAMES) is not None


def read_list(list_path: Path, image_dir: Path, split: str, errors: ErrorCollector,
              validate: bool) -> list[RawTracklet]:
    """One list file's images, each naming ``<list> line N`` as its source."""
    out = []
    with open(list_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{list_path} line {line_no}"
            fields = line.split()
            if len(fields) != 2:
                errors.add(f"{where}: {len(fields)} fields; expected '<image path> <label>', e.g. "
                           f"'0000/0000_000_01_0303morning_0015_0.jpg 0'")
                continue
            rel, label = fields
            try:
                pid = int(label) + 1
            except ValueError:
                errors.add(f"{where}: label {label!r} is not an integer")
                continue
            parts = Path(rel).name.split("_")
            camid = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
            if camid is None:
                errors.add(f"{where}: image name {Path(rel).name!r} has no camera field; expected "
                           f"<pid>_<n>_<camera>_..., e.g. 0000_000_01_0303morning_0015_0.jpg")
                continue
            if validate and (pid < 1 or not 1 <= camid <= NUM_CAMERAS):
                errors.add(f"{where}: label {label} / camera {camid}: expected a label >= 0 and a camera "
                           f"in 1..{NUM_CAMERAS}")
                continue
            path = str((image_dir / rel).absolute())
            out.append(RawTracklet([path], pid, camid, Path(rel).stem, where, is_query=split == "query"))
    return out


def load_msmt17(
    root: str | os.PathLike,
    protocol="official",
    validate: bool = True,
    check_files: bool = True,
    verify_frames: bool = False,
    corrupt: str = "error",
    progress: bool = True,
    workers: int = 4,
    **options,
) -> VideoReIDData:
    """MSMT17 as one-frame tracklets (module docstring): train = ``list_train`` (+ ``list_val``
    with ``use_val``), query = ``list_query``, test = query + ``list_gallery`` split under
    ``protocol``. ``check_files`` checks every listed image exists (one listing per folder)."""
    check_options("msmt17", options, OPTIONS)
    use_val = options.get("use_val", False)
    if not isinstance(use_val, bool):
        raise DatasetError(f"data.format_options.use_val: {use_val!r}; expected true or false")
    settings = LoadSettings.resolve(protocol, corrupt, validate=validate, check_files=check_files,
                                    verify_frames=verify_frames, workers=workers, progress=progress)
    release = resolve_release(root, _is_release, RELEASE_NAMES)
    if release is None:
        raise DatasetError(f"{root}: expected {', '.join(v for k, v in LISTS.items() if k != 'val')} and the "
                           f"train/ + test/ (or mask_train_v2/ + mask_test_v2/) folders, or an MSMT17_V1/ "
                           f"folder holding them")
    train_dir, test_dir = _image_dirs(release)
    errors = ErrorCollector(f"MSMT17 dataset at {release}")
    train = read_list(release / LISTS["train"], train_dir, "train", errors, validate)
    if use_val:
        if not (release / LISTS["val"]).is_file():
            raise DatasetError(f"{release / LISTS['val']}: not found, but data.format_options.use_val is true")
        train += read_list(release / LISTS["val"], train_dir, "train", errors, validate)
    test = (read_list(release / LISTS["query"], test_dir, "query", errors, validate)
            + read_list(release / LISTS["gallery"], test_dir, "gallery", errors, validate))
    return assemble("msmt17", release, train, test, settings, errors, listed=False)


__all__ = ["is_msmt17", "load_msmt17", "read_list"]
