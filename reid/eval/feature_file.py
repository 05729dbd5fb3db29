"""Feature files (``.npz``) and the provenance they carry.

A feature file written by ``reid eval --save-features`` or ``reid extract`` holds, next to its
arrays, 0-d string arrays naming what it was built for (read with ``allow_pickle=False``):

* ``protocol`` -- the :class:`reid.protocols.Protocol` whose gallery rule built the gallery
  (``official`` and ``single_camera`` keep the queries, ``torchreid`` drops them and pid -1), so
  scoring it under another protocol is flagged (``reid eval`` warns, ``--strict`` refuses);
* ``metric`` -- the run's distance metric, the default ``reid eval`` scores with;
* ``dataset`` -- the dataset's name (``synthetic_mars``, ``mars``, a manifest's name, or the
  input folder for ``reid extract``).

``reid extract`` files also carry ``names`` (one per tracklet) and ``features`` ``[N, D]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid.atomic import atomic_write

META_KEYS = ("protocol", "metric", "dataset")


def meta_arrays(**meta: str | None) -> dict[str, np.ndarray]:
    """``{key: 0-d str array}`` for the given provenance fields (None values left out)."""
    unknown = set(meta) - set(META_KEYS)
    if unknown:
        raise ValueError(f"unknown feature-file field(s) {sorted(unknown)} (known: {', '.join(META_KEYS)})")
    return {k: np.array(str(v)) for k, v in meta.items() if v is not None}


def read_meta(arrays: dict) -> dict[str, str]:
    """The provenance fields present in a loaded feature file (missing ones are absent)."""
    return {k: str(arrays[k].item() if hasattr(arrays[k], "item") else arrays[k]) for k in META_KEYS if k in arrays}


def protocol_mismatch(path, file_protocol: str | None, protocol: str) -> str | None:
    """The sentence explaining why scoring ``path`` under ``protocol`` is suspect, or None."""
    if file_protocol is None or file_protocol == protocol:
        return None
    return (f"{path} was written for protocol {file_protocol} (its gallery follows that protocol's rule) "
            f"but is scored under {protocol}")


def save_feature_file(path: str | Path, arrays: dict[str, np.ndarray], **meta: str | None) -> Path:
    """``np.savez`` of ``arrays`` plus the provenance fields, written atomically (a partial file
    never replaces a good one); written to a handle, so the name is kept as given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**arrays, **meta_arrays(**meta)}
    return atomic_write(path, lambda handle: np.savez(handle, **payload), binary=True)


__all__ = ["META_KEYS", "meta_arrays", "read_meta", "protocol_mismatch", "save_feature_file"]
