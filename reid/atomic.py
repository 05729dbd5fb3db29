"""Atomic file writes: the one mechanism every checkpoint, manifest, report and study cell uses.

The content goes to a temporary file ``.<name>.tmp-<pid>`` in the destination's folder, is
flushed and ``fsync``-ed, then ``os.replace``-d over the destination (atomic on POSIX and Windows
within one file system), and the folder is ``fsync``-ed so the rename itself is durable. A crash
or an exception leaves either the old file or the new one, never a torn file. An exception
removes the temporary file; a process killed mid-write (SIGKILL, power loss) cannot, so the next
write of the same file removes temporaries whose writer process is gone
(:func:`remove_stale_temps`).

A write that fails because the disk is full (or any other OS error) raises
:class:`AtomicWriteError`, which names the file and keeps the ``errno``; the previous file is
intact. Writers that wrap the handle (``torch.save`` turns the handle's ``OSError`` into a
``RuntimeError`` from its C++ writer) are unwrapped through the exception's context chain.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import IO, Any, Callable

from reid.errors import UserError

TEMP_MARK = ".tmp-"


class AtomicWriteError(UserError, OSError):
    """Writing a file failed with an OS error (disk full, permission, I/O); the previous version
    of the file is intact. ``errno`` is the underlying error number."""


def temp_path(path: Path, pid: int | None = None) -> Path:
    """The temporary file :func:`atomic_write` uses for ``path`` in process ``pid``."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid() if pid is None else pid}")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (``kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove ``.<name>.tmp-<pid>`` files in ``folder`` (every name when ``name`` is None) whose
    writer process no longer exists, i.e. leftovers of a killed write. Returns what was removed.
    A temporary of a live process (a write in progress) is left alone."""
    folder = Path(folder)
    prefix = f".{name}{TEMP_MARK}" if name is not None else "."
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or TEMP_MARK not in entry.name:
            continue
        pid_text = entry.name.rpartition(TEMP_MARK)[2]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _os_error_of(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc`` (itself, or in its cause / context chain)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _write_error(path: Path, error: OSError) -> AtomicWriteError:
    code = error.errno if error.errno is not None else errno.EIO
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        todo = "the disk is full: free space on that file system (or write elsewhere) and retry"
    else:
        todo = "check the folder's permissions and free space, then retry"
    return AtomicWriteError(code, f"cannot write {path} ({error}); the previous {path.name}, if any, is intact; {todo}")


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file, then move it over ``path`` atomically.

    Raises:
        AtomicWriteError: an OS error (disk full, permission...) while writing; ``path`` keeps
            its previous content and no temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        os_error = _os_error_of(exc) if isinstance(exc, Exception) else None
        if os_error is not None and not isinstance(exc, AtomicWriteError):
            raise _write_error(path, os_error) from exc
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


__all__ = ["AtomicWriteError", "atomic_write", "atomic_write_json", "pid_alive", "remove_stale_temps", "temp_path"]
