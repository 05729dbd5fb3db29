"""Two-camera video benchmarks with person-level train/test splits (iLIDS-VID, PRID-2011).

Layout: one folder per camera, one sub-folder per person holding that person's sequence
(``<camera>/<person>/<frames>.png``). A split file lists, for each of the benchmark's 10 random
splits, the person folders used for training and for testing, as torchreid's JSON does::

    [{"train": ["person001", ...], "test": ["person002", ...]}, ...]     # 10 entries

Split ``split_index`` (``data.format_options: {split_index: 3}``, default 0): every training
person gives two training tracklets (one per camera); every test person gives a query (its
first-camera sequence) and a test tracklet (its second-camera sequence). Under ``torchreid`` the
gallery is the second-camera sequences (torchreid's split exactly); under ``official`` the
queries stay in the gallery as well, and are junk for themselves (same pid and camera).
Pids are the person numbers of the folder names (``person007`` -> 7), cameras 1 and 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from reid.data.reader_common import OPTIONS_KEY, LoadSettings, RawTracklet, assemble, list_files
from reid.data.tracklet import DatasetError, VideoReIDData
from reid.data.validation import ErrorCollector

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
NUM_SPLITS = 10
_PERSON_NUMBER = re.compile(r"(\d+)$")


def split_index_option(options: dict) -> int:
    """``split_index`` from the format options (default 0), checked to be an integer >= 0."""
    value = options.get("split_index", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatasetError(f"{OPTIONS_KEY}.split_index: {value!r} is not a split number; use 0..{NUM_SPLITS - 1}")
    return value


def read_split_json(path: Path) -> list[dict]:
    """The splits of a torchreid-style split file (a JSON list of ``{"train", "test"}``)."""
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); expected a list of "
                           f'{{"train": [...], "test": [...]}} objects') from None
    if not isinstance(splits, list) or not splits:
        raise DatasetError(f"{path}: expected a non-empty JSON list of {{\"train\": [...], \"test\": [...]}}")
    for k, split in enumerate(splits):
        ok = isinstance(split, dict) and all(
            isinstance(split.get(part), list) and all(isinstance(n, str) for n in split[part])
            for part in ("train", "test"))
        if not ok:
            raise DatasetError(f"{path}: split {k} is not an object with lists of folder names "
                               f"'train' and 'test'")
    return splits


def person_pid(folder_name: str) -> int | None:
    """The person number at the end of a person folder's name (``person_0042`` -> 42)."""
    m = _PERSON_NUMBER.search(folder_name)
    return int(m.group(1)) if m else None


def pick_split(splits: list[dict], split_index: int, split_file: Path) -> dict:
    if split_index >= len(splits):
        raise DatasetError(f"{OPTIONS_KEY}.split_index: {split_index} is out of range; {split_file} holds "
                           f"{len(splits)} splits (0..{len(splits) - 1})")
    return splits[split_index]


def _sequence(cam_dir: Path, person: str, where: str, errors: ErrorCollector) -> list[str] | None:
    folder = cam_dir / person
    if not folder.is_dir():
        errors.add(f"{where}: person folder {folder} does not exist; fix the split file or restore the folder")
        return None
    frames = list_files(folder, FRAME_SUFFIXES)
    if not frames:
        errors.add(f"{where}: {folder} holds no frame ({'/'.join(FRAME_SUFFIXES)})")
        return None
    return [str(p.absolute()) for p in frames]


def load_two_camera(
    name: str,
    root: Path,
    cam_dirs: tuple[Path, Path],
    split: dict,
    split_index: int,
    split_file: Path,
    settings: LoadSettings,
) -> VideoReIDData:
    """Tracklets of split ``split`` (``{"train": [...], "test": [...]}``), see the module docstring.

    Problems (an unparseable person folder name, a person listed twice or in both parts, a
    missing folder or an empty sequence) are collected, each naming the split file, the split
    and the entry."""
    errors = ErrorCollector(f"{name} dataset at {root} (split {split_index} of {split_file})")
    seen: dict[str, str] = {}
    parts: dict[str, list[RawTracklet]] = {"train": [], "test": []}
    for part in ("train", "test"):
        for k, person in enumerate(split[part]):
            where = f"{split_file}: split {split_index}, '{part}' entry {k + 1} ({person!r})"
            pid = person_pid(person)
            if pid is None:
                errors.add(f"{where}: a person folder name ends with its number (e.g. person001)")
                continue
            if person in seen:
                errors.add(f"{where}: listed again (first in '{seen[person]}'); each person belongs to one part")
                continue
            seen[person] = part
            for camid, cam_dir in enumerate(cam_dirs, 1):
                frames = _sequence(cam_dir, person, where, errors)
                if frames is not None:
                    # the test person's first-camera sequence is its query
                    parts[part].append(RawTracklet(frames, pid, camid, f"{cam_dir.name}/{person}", where,
                                                   is_query=part == "test" and camid == 1))
    return assemble(name, root, parts["train"], parts["test"], settings, errors, listed=True)


__all__ = ["NUM_SPLITS", "load_two_camera", "person_pid", "pick_split", "read_split_json", "split_index_option"]
