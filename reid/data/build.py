"""One entry point from "where is the data" to :class:`~reid.data.tracklet.VideoReIDData`.

Accepted layouts (``fmt="auto"`` picks by looking at ``root``):

* ``mars``: a folder with ``info/tracks_test_info.mat`` (the official MARS layout, see
  :mod:`reid.data.mars`);
* ``csv``: a ``.csv`` file, a manifest of your own tracklets (see :mod:`reid.data.custom`);
* ``folder``: a folder with ``train/``, ``query/`` and ``gallery/`` sub-folders in the
  ``<pid>/<camid>_<tracklet>/<frames>`` convention (see :func:`reid.data.custom.load_folder`);
* ``root=None``: the embedded synthetic dataset, generated once (MARS layout) by
  :func:`reid.data.synthetic.ensure_synthetic_mars` and read back through the MARS reader, so
  the synthetic job exercises exactly the code path real MARS takes.
"""

from __future__ import annotations

import os
from pathlib import Path

from reid.data.custom import load_folder, load_manifest
from reid.data.mars import TRACK_FILES, load_mars
from reid.data.tracklet import DatasetError, VideoReIDData

FORMATS = ("auto", "mars", "csv", "folder")


def detect_format(root: str | os.PathLike) -> str:
    """``"mars"``, ``"csv"`` or ``"folder"`` for ``root``; :class:`DatasetError` listing the
    accepted layouts otherwise."""
    p = Path(root)
    if p.is_dir() and (p / "info" / TRACK_FILES["test"][0]).is_file():
        return "mars"
    if p.is_file() and p.suffix.lower() == ".csv":
        return "csv"
    if p.is_dir() and all((p / d).is_dir() for d in ("train", "query", "gallery")):
        return "folder"
    what = "does not exist" if not p.exists() else ("is a file" if p.is_file() else "is a folder")
    raise DatasetError(
        f"{p} {what} but matches no accepted dataset layout. Accepted: (1) a MARS root with "
        f"bbox_train/, bbox_test/ and info/ (info/{TRACK_FILES['test'][0]} marks it); (2) a .csv "
        f"manifest with columns path,pid,camid,tracklet_id,frame_index,split,is_query; (3) a folder "
        f"with train/, query/, gallery/ holding <pid>/<camid>_<tracklet>/<frames>.jpg. "
        f"See README 'Datasets'."
    )


def build_data(
    root: str | os.PathLike | None = None,
    fmt: str = "auto",
    protocol: str = "official",
    validate: bool = True,
    corrupt: str = "error",
    synthetic_params: dict | None = None,
    check_files: bool = True,
    verify_frames: bool = False,
    progress: bool = True,
) -> VideoReIDData:
    """Load a dataset under an evaluation protocol.

    Args:
        root: MARS root, ``.csv`` manifest, or folder-convention root; ``None`` for the embedded
            synthetic dataset (``synthetic_params`` go to ``ensure_synthetic_mars``).
        fmt: ``"auto"`` (detect, see :func:`detect_format`), ``"mars"``, ``"csv"`` or ``"folder"``.
        protocol: ``"official"`` (queries stay in the gallery) or ``"torchreid"`` (queries and
            pid -1 removed from the gallery).
        validate, corrupt, check_files, verify_frames: see :func:`reid.data.mars.load_mars`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r}: expected one of {FORMATS}")
    if root is None:
        from reid.data.synthetic import ensure_synthetic_mars  # generator only needed here

        root = ensure_synthetic_mars(**(synthetic_params or {}))
        fmt = "mars"
    elif synthetic_params:
        raise ValueError("synthetic_params only apply with root=None (the embedded synthetic dataset)")
    kind = detect_format(root) if fmt == "auto" else fmt
    if kind == "mars":
        data = load_mars(root, protocol=protocol, validate=validate, check_files=check_files,
                         verify_frames=verify_frames, corrupt=corrupt, progress=progress)
        if (Path(root) / "SYNTHETIC.json").is_file():  # written by reid.data.synthetic
            data.name = "synthetic_mars"  # so reports never pass generated data off as MARS
        return data
    if kind == "csv":
        return load_manifest(root, protocol=protocol, validate=validate, check_files=check_files,
                             verify_frames=verify_frames, corrupt=corrupt, progress=progress)
    return load_folder(root, protocol=protocol, validate=validate, verify_frames=verify_frames,
                       corrupt=corrupt, progress=progress)


__all__ = ["FORMATS", "build_data", "detect_format"]
