"""Reader for DukeMTMC-VideoReID (Wu et al., "Exploit the Unknown Gradually: One-Shot
Video-Based Person Re-Identification by Stepwise Learning", CVPR 2018): 702 training ids (2196
tracklets), 702 query tracklets, 2636 gallery tracklets (702 ids + 408 distractor ids), 8 cameras.

Layout (``root`` is the release folder, or torchreid's ``dukemtmc-vidreid/`` holding it)::

    ROOT/train/<pid4>/<tracklet4>/<pid4>_C<cam>_F<frame4>_X<n>.jpg    e.g. 0001/0001/0001_C6_F0001_X54409.jpg
    ROOT/query/...   ROOT/gallery/...                                 (old names: 0001C6F0001X54409.jpg)

Frames are ordered by their ``F`` number; the camera is the ``C`` digit of the frame names (all
frames of a tracklet must agree) and the pid the folder's (the names' must match). ``query``
tracklets are the queries; under ``official`` they also stay in the gallery (junk for
themselves: same pid and camera), under ``torchreid`` the gallery is ``gallery/`` exactly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reid.data.reader_common import LoadSettings, RawTracklet, assemble, check_options, first_file, resolve_release
from reid.data.tracklet import DatasetError, VideoReIDData
from reid.data.validation import ErrorCollector

PARTS = ("train", "query", "gallery")
RELEASE_NAMES = ("DukeMTMC-VideoReID",)
FRAME_NAME = re.compile(r"^(\d{4})_?C(\d+)_?F(\d+)_?X(\d+)\.jpg$")
NAME_HINT = "expected <pid4>_C<camera>_F<frame>_X<n>.jpg, e.g. 0001_C6_F0001_X54409.jpg"


def _is_release(p: Path) -> bool:
    if not all((p / part).is_dir() for part in PARTS):
        return False
    name = first_file(p / "train", (".jpg",))
    return name is not None and FRAME_NAME.match(name) is not None


def find_duke_video(root: str | os.PathLike) -> Path | None:
    """The release folder at or directly under ``root`` (None if there is none)."""
    return resolve_release(root, _is_release, RELEASE_NAMES)


def is_duke_video(root: str | os.PathLike) -> bool:
    """``root`` (or its ``DukeMTMC-VideoReID/``) has ``train/ query/ gallery/`` with frames named
    as DukeMTMC-VideoReID names them."""
    return find_duke_video(root) is not None


def _tracklet(tdir: Path, pid: int, errors: ErrorCollector, validate: bool) -> tuple[list[str], int] | None:
    """The frames of one tracklet folder in ``F`` order and its camera."""
    frames: dict[int, Path] = {}
    camid = None
    for fp in sorted(tdir.iterdir()):
        if not fp.is_file() or fp.suffix.lower() != ".jpg":
            continue
        m = FRAME_NAME.match(fp.name)
        if m is None:
            errors.add(f"{fp}: frame name does not parse; {NAME_HINT}")
            continue
        name_pid, cam, number = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if validate and name_pid != pid:
            errors.add(f"{fp}: the name says pid {name_pid} but the file is in the folder of pid {pid}; "
                       f"move it to its pid's folder")
        if camid is None:
            camid = cam
        elif validate and cam != camid:
            errors.add(f"{fp}: camera {cam} but the tracklet's first frame says camera {camid}; a tracklet "
                       f"is seen by one camera, move the frame to its own tracklet")
        if number in frames:
            errors.add(f"{fp}: frame number F{number} repeats {frames[number].name} in {tdir}")
            continue
        frames[number] = fp
    if not frames:
        errors.add(f"{tdir}: no frame ({NAME_HINT})")
        return None
    return [str(frames[k].absolute()) for k in sorted(frames)], int(camid)


def load_duke_video(
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
    """DukeMTMC-VideoReID as train / query / gallery (module docstring). ``check_files`` has
    nothing to do (frames come from listing folders); ``validate`` adds the name-vs-folder pid and
    per-tracklet camera checks and that every query can be matched. Errors name the file."""
    check_options("duke_video", options, {})
    settings = LoadSettings.resolve(protocol, corrupt, validate=validate, check_files=check_files,
                                    verify_frames=verify_frames, workers=workers, progress=progress)
    release = find_duke_video(root)
    if release is None:
        raise DatasetError(f"{root}: expected train/, query/ and gallery/ of <pid>/<tracklet>/<frames> "
                           f"({NAME_HINT}), or a DukeMTMC-VideoReID/ folder holding them")
    errors = ErrorCollector(f"DukeMTMC-VideoReID dataset at {release}")
    parts: dict[str, list[RawTracklet]] = {"train": [], "test": []}
    for part in PARTS:
        for pid_dir in sorted(p for p in (release / part).iterdir() if p.is_dir()):
            if not pid_dir.name.isdigit():
                errors.add(f"{pid_dir}: folder name is not a pid (4 digits, e.g. 0001)")
                continue
            pid = int(pid_dir.name)
            for tdir in sorted(p for p in pid_dir.iterdir() if p.is_dir()):
                got = _tracklet(tdir, pid, errors, validate)
                if got is not None:
                    tid = int(tdir.name) if tdir.name.isdigit() else tdir.name
                    parts["train" if part == "train" else "test"].append(
                        RawTracklet(got[0], pid, got[1], tid, str(tdir), is_query=part == "query"))
    return assemble("duke_video", release, parts["train"], parts["test"], settings, errors, listed=True)


__all__ = ["find_duke_video", "is_duke_video", "load_duke_video"]
