"""Reader for PRID-2011 multi-shot (Hirzer et al., "Person Re-Identification by Descriptive and
Discriminative Classification", SCIA 2011): 385 persons in camera A, 749 in camera B, the first
200 seen by both. The standard protocol (as in iLIDS-VID's paper and torchreid) keeps the 178
persons whose sequences in both cameras have more than ~27 frames and uses 10 random splits of
89 training / 89 test persons.

Layout (torchreid's ``prid2011/`` folder is ``root``)::

    ROOT/prid_2011/multi_shot/cam_a/person_0001/0001.png ...
    ROOT/prid_2011/multi_shot/cam_b/person_0001/...
    ROOT/splits_prid2011.json          (torchreid's 10 splits of person folder names)

The release ships no split file: ``splits_prid2011.json`` is the one torchreid users download
(its README links it); ``data.format_options.split_file`` points elsewhere. Options:
``split_index`` (0..9, default 0), ``split_file``. Tracklets, pids and the protocol:
:mod:`reid.data.two_camera`.
"""

from __future__ import annotations

import os
from pathlib import Path

from reid.data.reader_common import LoadSettings, check_options
from reid.data.tracklet import DatasetError, VideoReIDData
from reid.data.two_camera import NUM_SPLITS, load_two_camera, pick_split, read_split_json, split_index_option

MULTI_SHOT = Path("prid_2011") / "multi_shot"
CAMERAS = ("cam_a", "cam_b")
SPLIT_JSON = "splits_prid2011.json"
OPTIONS = {"split_index": f"which of the {NUM_SPLITS} splits (0..{NUM_SPLITS - 1}, default 0)",
           "split_file": f"a JSON split file to use instead of {SPLIT_JSON}"}


def is_prid2011(root: str | os.PathLike) -> bool:
    """``root`` holds ``prid_2011/multi_shot/cam_a`` and ``cam_b``."""
    p = Path(root) / MULTI_SHOT
    return all((p / cam).is_dir() for cam in CAMERAS)


def load_prid2011(
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
    """PRID-2011 split ``split_index`` (module docstring) as train / query / gallery; arguments as
    :func:`reid.data.ilids_vid.load_ilids_vid`."""
    check_options("prid2011", options, OPTIONS)
    settings = LoadSettings.resolve(protocol, corrupt, validate=validate, check_files=check_files,
                                    verify_frames=verify_frames, workers=workers, progress=progress)
    root = Path(root)
    if not is_prid2011(root):
        raise DatasetError(f"{root}: expected {MULTI_SHOT}/cam_a and cam_b in it (the PRID-2011 release)")
    split_index = split_index_option(options)
    source = Path(options["split_file"]) if options.get("split_file") is not None else root / SPLIT_JSON
    if not source.is_file():
        raise DatasetError(
            f"{source}: split file not found. PRID-2011 ships none: put torchreid's {SPLIT_JSON} (10 splits "
            f"of 89 training / 89 test person folders, e.g. person_0001) in {root}, or set "
            f"data.format_options.split_file to a JSON list of {{\"train\": [...], \"test\": [...]}}"
        )
    split = pick_split(read_split_json(source), split_index, source)
    cams = root / MULTI_SHOT
    return load_two_camera("prid2011", root, (cams / CAMERAS[0], cams / CAMERAS[1]), split, split_index,
                           source, settings)


__all__ = ["is_prid2011", "load_prid2011"]
