"""Reader for iLIDS-VID (Wang et al., "Person Re-Identification by Video Ranking", ECCV 2014):
300 persons, one sequence per person in each of 2 cameras (600 tracklets), 10 random splits of
150 training / 150 test persons.

Layout (the release under torchreid's ``ilids-vid/`` folder, which is ``root``)::

    ROOT/i-LIDS-VID/sequences/cam1/person001/cam1_person001_00317.png ...
    ROOT/i-LIDS-VID/sequences/cam2/person001/...
    ROOT/train-test people splits/train_test_splits_ilidsvid.mat     (the release's splits)
    ROOT/splits.json                                                  (torchreid's, optional)

Splits: ``splits.json`` when present (torchreid writes it on first use; same splits), else the
release's ``.mat``: variable ``ls_set`` of shape 10 x 300, 1-based indices into the sorted
``cam1`` person folders; in each row the first 150 persons test, the other 150 train (Wang et al.).
``data.format_options``: ``split_index`` (0..9, default 0), ``split_file`` (another JSON split
file). Tracklets, pids and the protocol: :mod:`reid.data.two_camera`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reid.data.reader_common import LoadSettings, check_options
from reid.data.tracklet import DatasetError, VideoReIDData
from reid.data.two_camera import NUM_SPLITS, load_two_camera, pick_split, read_split_json, split_index_option

SEQUENCES = Path("i-LIDS-VID") / "sequences"
CAMERAS = ("cam1", "cam2")
SPLIT_JSON = "splits.json"
SPLIT_MAT = Path("train-test people splits") / "train_test_splits_ilidsvid.mat"
NUM_PERSONS = 300
OPTIONS = {"split_index": f"which of the {NUM_SPLITS} splits (0..{NUM_SPLITS - 1}, default 0)",
           "split_file": "a JSON split file to use instead of the release's"}


def is_ilids_vid(root: str | os.PathLike) -> bool:
    """``root`` holds ``i-LIDS-VID/sequences/cam1`` and ``cam2``."""
    p = Path(root) / SEQUENCES
    return all((p / cam).is_dir() for cam in CAMERAS)


def splits_from_mat(mat_path: Path, cam1_persons: list[str]) -> list[dict]:
    """The 10 splits of the release's ``.mat`` as torchreid's JSON holds them (see module doc)."""
    from scipy.io import loadmat  # only needed without splits.json

    try:
        ls_set = np.asarray(loadmat(str(mat_path))["ls_set"])
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise DatasetError(f"{mat_path}: cannot read the variable 'ls_set' ({exc}); restore the file from "
                           f"the iLIDS-VID release") from None
    if ls_set.shape != (NUM_SPLITS, NUM_PERSONS):
        raise DatasetError(f"{mat_path}: 'ls_set' has shape {ls_set.shape}, expected "
                           f"({NUM_SPLITS}, {NUM_PERSONS}); restore the file from the iLIDS-VID release")
    if len(cam1_persons) != NUM_PERSONS:
        raise DatasetError(f"{mat_path}: indexes {NUM_PERSONS} person folders but the cam1 folder holds "
                           f"{len(cam1_persons)}; copy the complete i-LIDS-VID/sequences folder")
    splits = []
    half = NUM_PERSONS // 2
    for r, row in enumerate(ls_set.astype(np.int64).tolist()):
        bad = [v for v in row if not 1 <= v <= NUM_PERSONS]
        if bad or len(set(row)) != NUM_PERSONS:
            raise DatasetError(f"{mat_path}: row {r + 1} of 'ls_set' is not a permutation of 1..{NUM_PERSONS}")
        splits.append({"train": [cam1_persons[v - 1] for v in sorted(row[half:])],
                       "test": [cam1_persons[v - 1] for v in sorted(row[:half])]})
    return splits


def ilids_vid_splits(root: Path, split_file: str | os.PathLike | None = None) -> tuple[list[dict], Path]:
    """The splits and the file they came from: ``split_file``, else ``splits.json``, else the
    release's ``.mat``."""
    if split_file is not None:
        path = Path(split_file)
        if not path.is_file():
            raise DatasetError(f"data.format_options.split_file: {path} is not a file")
        return read_split_json(path), path
    if (root / SPLIT_JSON).is_file():
        return read_split_json(root / SPLIT_JSON), root / SPLIT_JSON
    if (root / SPLIT_MAT).is_file():
        cams = root / SEQUENCES
        persons = sorted(p.name for p in (cams / CAMERAS[0]).iterdir() if p.is_dir())
        return splits_from_mat(root / SPLIT_MAT, persons), root / SPLIT_MAT
    raise DatasetError(f"{root}: no split file: expected {root / SPLIT_JSON} (torchreid's) or "
                       f"{root / SPLIT_MAT} (in the iLIDS-VID release), or set data.format_options.split_file")


def load_ilids_vid(
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
    """iLIDS-VID split ``split_index`` (module docstring) as train / query / gallery.

    ``check_files`` has nothing to do (frames come from listing the person folders);
    ``validate``, ``verify_frames`` and ``corrupt`` as in :func:`reid.data.mars.load_mars`."""
    check_options("ilids_vid", options, OPTIONS)
    settings = LoadSettings.resolve(protocol, corrupt, validate=validate, check_files=check_files,
                                    verify_frames=verify_frames, workers=workers, progress=progress)
    root = Path(root)
    if not is_ilids_vid(root):
        raise DatasetError(f"{root}: expected {SEQUENCES}/cam1 and cam2 in it (the iLIDS-VID release)")
    split_index = split_index_option(options)
    splits, source = ilids_vid_splits(root, options.get("split_file"))
    split = pick_split(splits, split_index, source)
    cams = root / SEQUENCES
    return load_two_camera("ilids_vid", root, (cams / CAMERAS[0], cams / CAMERAS[1]), split, split_index,
                           source, settings)


__all__ = ["is_ilids_vid", "ilids_vid_splits", "load_ilids_vid", "splits_from_mat"]
