"""One entry point from "where is the data" to :class:`~reid.data.tracklet.VideoReIDData`, and
the registry of dataset formats it dispatches through.

Accepted layouts (``fmt="auto"`` asks every reader's ``detect``, in registration order):

* ``mars``: a folder with ``info/tracks_test_info.mat`` (the official MARS layout, see
  :mod:`reid.data.mars`);
* ``csv``: a ``.csv`` file, a manifest of your own tracklets (see :mod:`reid.data.custom`);
* ``ilids_vid``, ``prid2011``, ``duke_video`` (video) and ``market1501``, ``dukemtmc_reid``,
  ``msmt17`` (image, one-frame tracklets): the standard benchmarks in their release layouts (see
  each reader module); iLIDS-VID and PRID-2011 take ``split_index`` (``data.format_options``);
* ``folder``: a folder with ``train/``, ``query/`` and ``gallery/`` sub-folders in the
  ``<pid>/<camid>_<tracklet>/<frames>`` convention (see :func:`reid.data.custom.load_folder`);
* ``root=None``: the embedded synthetic dataset, generated once (MARS layout) by
  :func:`reid.data.synthetic.ensure_synthetic_mars` and read back through the MARS reader, so
  the synthetic job exercises exactly the code path real MARS takes.

Adding a format is one reader module (a ``detect`` and a ``load`` function) plus one
``READERS.register(...)`` line below.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from reid.data.custom import is_folder_dataset, is_manifest, load_folder, load_manifest
from reid.data.duke_video import is_duke_video, load_duke_video
from reid.data.ilids_vid import is_ilids_vid, load_ilids_vid
from reid.data.market1501 import is_dukemtmc_reid, is_market1501, load_dukemtmc_reid, load_market1501
from reid.data.msmt17 import is_msmt17, load_msmt17
from reid.data.prid2011 import is_prid2011, load_prid2011
from reid.data.mars import is_mars_root, load_mars
from reid.data.mars_format import INFO_DIR, INFO_MARKER
from reid.data.tracklet import DatasetError, VideoReIDData
from reid.registry import Registry


@dataclass(frozen=True)
class Reader:
    """One dataset format.

    Attributes:
        detect: ``detect(root) -> bool``: whether ``root`` is in this format (``fmt="auto"``).
        load: ``load(root, protocol, validate, check_files, verify_frames, corrupt, progress,
            **options) -> VideoReIDData`` (keyword arguments; ``options`` are the format's own,
            ``data.format_options``, only for readers whose ``load`` takes ``**options``).
        layout: the layout in words, for the error that lists the accepted layouts.
    """

    detect: Callable[[Path], bool]
    load: Callable[..., VideoReIDData]
    layout: str


def _load_folder(root, *, check_files: bool, protocol, validate, verify_frames, corrupt, progress) -> VideoReIDData:
    # the folder reader lists the frames it reads, so they exist: check_files has nothing to do;
    # no ``**options``: the folder format takes none (build_data refuses them)
    return load_folder(root, protocol=protocol, validate=validate, verify_frames=verify_frames,
                       corrupt=corrupt, progress=progress)


READERS: Registry[Reader] = Registry("dataset format")
READERS.register("mars", Reader(
    detect=is_mars_root, load=load_mars,
    layout=f"a MARS root with bbox_train/, bbox_test/ and {INFO_DIR}/ ({INFO_DIR}/{INFO_MARKER} marks it)",
))
READERS.register("csv", Reader(
    detect=is_manifest, load=load_manifest,
    layout="a .csv manifest with columns path,pid,camid,tracklet_id,frame_index,split,is_query",
))
# the standard benchmarks, before ``folder``: a DukeMTMC-VideoReID root also has train/ query/ gallery/
READERS.register("ilids_vid", Reader(
    detect=is_ilids_vid, load=load_ilids_vid,
    layout="an iLIDS-VID root with i-LIDS-VID/sequences/cam1,cam2/personNNN/*.png",
))
READERS.register("prid2011", Reader(
    detect=is_prid2011, load=load_prid2011,
    layout="a PRID-2011 root with prid_2011/multi_shot/cam_a,cam_b/person_NNNN/*.png and splits_prid2011.json",
))
READERS.register("duke_video", Reader(
    detect=is_duke_video, load=load_duke_video,
    layout="DukeMTMC-VideoReID: train/, query/, gallery/ of <pid>/<tracklet>/<pid>_C<cam>_F<frame>_X<n>.jpg",
))
READERS.register("market1501", Reader(
    detect=is_market1501, load=load_market1501,
    layout="Market-1501: bounding_box_train/, query/, bounding_box_test/ of 0002_c1s1_000451_03.jpg names",
))
READERS.register("dukemtmc_reid", Reader(
    detect=is_dukemtmc_reid, load=load_dukemtmc_reid,
    layout="DukeMTMC-reID: bounding_box_train/, query/, bounding_box_test/ of 0001_c2_f0046182.jpg names",
))
READERS.register("msmt17", Reader(
    detect=is_msmt17, load=load_msmt17,
    layout="MSMT17: list_train.txt, list_query.txt, list_gallery.txt with train/ and test/ image folders",
))
READERS.register("folder", Reader(
    detect=is_folder_dataset, load=_load_folder,
    layout="a folder with train/, query/, gallery/ holding <pid>/<camid>_<tracklet>/<frames>.jpg",
))

# what ``build_data(fmt=...)`` and the config accept
FORMATS = ("auto", *READERS.names())


def detect_format(root: str | os.PathLike) -> str:
    """The name of the first reader in :data:`READERS` whose ``detect`` accepts ``root``;
    :class:`DatasetError` listing the accepted layouts otherwise."""
    p = Path(root)
    for name, reader in READERS.items():
        if reader.detect(p):
            return name
    what = "does not exist" if not p.exists() else ("is a file" if p.is_file() else "is a folder")
    layouts = "; ".join(f"({k}) {reader.layout}" for k, reader in enumerate(READERS.values(), 1))
    raise DatasetError(
        f"{p} {what} but matches no accepted dataset layout. Accepted: {layouts}. See README 'Datasets'."
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
    **options,
) -> VideoReIDData:
    """Load a dataset under an evaluation protocol.

    Args:
        root: MARS root, ``.csv`` manifest, or folder-convention root; ``None`` for the embedded
            synthetic dataset (``synthetic_params`` go to ``ensure_synthetic_mars``).
        fmt: ``"auto"`` (detect, see :func:`detect_format`) or a name in :data:`READERS`.
        protocol: a name in :data:`reid.protocols.PROTOCOLS`: ``"official"`` (queries stay in the
            gallery) or ``"torchreid"`` (queries and pid -1 removed from the gallery).
        validate, corrupt, check_files, verify_frames: see :func:`reid.data.mars.load_mars`.
            The reader validates ``protocol`` and ``corrupt`` (once) and records both on the
            returned data.
        options: the format's own options (``data.format_options``), e.g. ``split_index=3`` for
            ``ilids_vid`` / ``prid2011``; each reader refuses keys it does not take.
    """
    if fmt != "auto":
        READERS.check(fmt, key="fmt")
    if root is None:
        from reid.data.synthetic import ensure_synthetic_mars  # the generator is only needed here

        if options:
            raise DatasetError(f"data.format_options {sorted(options)} apply to a dataset root, not the "
                               f"embedded synthetic dataset (data.root: null)")
        root = ensure_synthetic_mars(**(synthetic_params or {}))
        fmt = "mars"
    elif synthetic_params:
        raise ValueError("synthetic_params only apply with root=None (the embedded synthetic dataset)")
    name = detect_format(root) if fmt == "auto" else fmt
    load = READERS[name].load
    if options and not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(load).parameters.values()):
        raise DatasetError(f"data.format_options: the {name} format takes no options (got {sorted(options)}); "
                           f"remove data.format_options")
    data = load(root, protocol=protocol, validate=validate, check_files=check_files,
                verify_frames=verify_frames, corrupt=corrupt, progress=progress, **options)
    if name == "mars":
        from reid.data.synthetic import STAMP_NAME  # the generator's stamp marks generated data

        if (Path(root) / STAMP_NAME).is_file():
            data.name = "synthetic_mars"  # so reports never pass generated data off as MARS
    return data


__all__ = ["FORMATS", "READERS", "Reader", "build_data", "detect_format"]
