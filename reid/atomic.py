"""Atomic file writes: the one mechanism every checkpoint, manifest, report and study cell uses.

The content goes to a temporary file in the destination's folder, is flushed and ``fsync``-ed,
then ``os.replace``-d over the destination (atomic on POSIX and Windows within one file system),
and the folder is ``fsync``-ed so the rename itself is durable. A crash or an exception leaves
either the old file or the new one, never a torn file, and no temporary file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file, then move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    """``json.dump(obj)`` to ``path`` atomically; non-JSON values are written with ``str``."""
    return atomic_write(path, lambda handle: json.dump(obj, handle, indent=indent, default=str))


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not supported on every platform (e.g. Windows)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
