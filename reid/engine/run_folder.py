"""Run folders: one run per folder, one writer at a time, collision-free default names.

* A new run refuses an ``output_dir`` that already holds a run (any of :data:`RUN_MARKERS`),
  unless it resumes that run or ``overwrite=True`` (which first deletes the old run's
  artefacts, :data:`RUN_ARTEFACTS`): two runs in one folder interleave ``metrics.jsonl`` and
  overwrite each other's checkpoints.
* A lock file ``output_dir/.lock`` (created with ``O_CREAT | O_EXCL``, holding the pid and the
  host) keeps a second process out while a run writes. A lock whose process is gone (SIGKILL,
  power loss) is stale: it is reported in the log and taken over. A lock from another host cannot
  be checked: the error says which file to delete.
* :func:`new_run_dir` picks ``<parent>/<name>-<YYYYmmdd-HHMMSS>`` and claims it with ``mkdir``
  (atomic), adding ``-2``, ``-3``... when a run started in the same second took the name.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path

from reid.atomic import pid_alive, remove_stale_temps
from reid.errors import UserError

LOCK_NAME = ".lock"
# files whose presence means "this folder holds a run"
RUN_MARKERS = ("config.yaml", "last.pt", "final.json", "metrics.jsonl")
# what overwrite=True removes before the new run starts (nothing else in the folder is touched)
RUN_ARTEFACTS = ("config.yaml", "train.log", "metrics.jsonl", "last.pt", "best.pt", "nan_stop.pt", "final.json",
                 "tensorboard")

log = logging.getLogger("reid.train")


class RunFolderError(UserError, RuntimeError):
    """The output folder holds another run, or another process is writing into it."""


def new_run_dir(parent: str | os.PathLike, name: str) -> Path:
    """Create and return a fresh folder ``<parent>/<name>-<timestamp>[-N]`` (atomic ``mkdir``,
    so concurrent runs started in the same second get different folders)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        candidate = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RunFolderError(f"{parent}: no free run folder name {stem}-N after 10000 tries")


def existing_run_files(folder: Path) -> list[str]:
    """The :data:`RUN_MARKERS` present in ``folder``."""
    return [name for name in RUN_MARKERS if (folder / name).exists()]


class RunFolder:
    """Exclusive use of one run folder: ``claim()`` takes the lock and checks the folder,
    ``release()`` removes the lock (idempotent). ``created`` says whether ``claim`` made the
    folder (a run that fails before training removes what it wrote, see :meth:`discard`)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.lock_path = self.folder / LOCK_NAME
        self.created = False
        self.held = False

    def claim(self, resume: bool = False, overwrite: bool = False) -> "RunFolder":
        if not self.folder.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self.created = True
        elif not self.folder.is_dir():
            raise RunFolderError(f"output_dir {self.folder} exists and is not a folder; choose another output_dir")
        self._lock()
        try:
            found = existing_run_files(self.folder)
            if found and not resume:
                if not overwrite:
                    raise RunFolderError(
                        f"output_dir {self.folder} already holds a run ({', '.join(found)}); "
                        "use --resume DIR or --overwrite, or choose another output_dir")
                self._remove_artefacts()
            removed = remove_stale_temps(self.folder)
            if removed:
                log.info("removed %d temporary file(s) of an interrupted write: %s", len(removed),
                         ", ".join(p.name for p in removed))
        except BaseException:
            self.release()
            raise
        return self

    def _lock(self) -> None:
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(5):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._check_stale()
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(me)
            self.held = True
            return
        raise RunFolderError(f"{self.lock_path}: could not take the run folder's lock (contended); retry")

    def _check_stale(self) -> None:
        """Raise if the lock's owner is alive (or unknown); move a dead owner's lock aside."""
        try:
            text = self.lock_path.read_text().split()
        except FileNotFoundError:
            return  # released meanwhile: retry
        pid = int(text[0]) if text and text[0].isdigit() else -1
        host = text[1] if len(text) > 1 else "?"
        if host != socket.gethostname():
            raise RunFolderError(f"output_dir {self.folder} is locked by process {pid} on host {host} "
                                 f"({self.lock_path}); if no run is using it, delete {self.lock_path}")
        if pid_alive(pid):
            raise RunFolderError(f"output_dir {self.folder} is in use by another run (process {pid}, lock "
                                 f"{self.lock_path}); wait for it, or choose another output_dir")
        aside = self.lock_path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
        try:
            os.replace(self.lock_path, aside)  # only one contender wins the rename
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)
        log.warning("stale lock %s of process %d (no longer running) removed; taking over the folder",
                    self.lock_path, pid)

    def _remove_artefacts(self) -> None:
        for name in RUN_ARTEFACTS:
            target = self.folder / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        log.warning("overwrite: removed the previous run's files in %s", self.folder)

    def release(self) -> None:
        if self.held:
            self.lock_path.unlink(missing_ok=True)
            self.held = False

    def discard(self, written: tuple[str, ...] = ("config.yaml", "train.log", "metrics.jsonl", "tensorboard")) -> None:
        """Undo a fresh run that failed before its first step: remove the files it wrote and,
        when ``claim`` created the folder and nothing else is in it, the folder, so the same
        command can be run again once the error is fixed."""
        for name in written:
            target = self.folder / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        self.release()
        if self.created:
            try:
                self.folder.rmdir()
            except OSError:
                pass  # something else is in it: keep it


__all__ = ["LOCK_NAME", "RUN_MARKERS", "RUN_ARTEFACTS", "RunFolder", "RunFolderError", "existing_run_files",
           "new_run_dir"]
