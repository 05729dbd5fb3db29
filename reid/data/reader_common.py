"""What the standard-benchmark readers share: turning parsed tracklets into
:class:`~reid.data.tracklet.VideoReIDData` (file checks, the decode scan and the corrupt-frame
policy, the query / gallery split under a protocol), locating a release folder, and checking
``data.format_options``.

A reader (``reid.data.ilids_vid``, ``prid2011``, ``duke_video``, ``market1501``, ``msmt17``)
only parses its layout into :class:`RawTracklet` lists, each carrying ``where`` (the file and
line, or the folder, that defined it) so every later problem names its source, then calls
:func:`assemble`. Image datasets are one-frame tracklets.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from reid.data.frames import CORRUPT_POLICIES, CorruptFramePolicy, FrameIssues, check_frames, existing_files
from reid.data.tracklet import DatasetError, Tracklet, VideoReIDData
from reid.data.validation import ErrorCollector
from reid.protocols import Protocol, get_protocol

log = logging.getLogger(__name__)

# the config key readers' options come from, for messages
OPTIONS_KEY = "data.format_options"


@dataclass
class RawTracklet:
    """One tracklet as a reader parsed it, before checks.

    Attributes:
        frames: absolute frame paths in temporal order (one for an image dataset).
        pid, camid: as the dataset gives them (after the reader's documented mapping).
        tracklet_id: the dataset's own name for it (a folder or file name).
        where: the file and line, or the folder, that defined it (for messages).
        is_query: a test query (test tracklets only).
    """

    frames: list[str]
    pid: int
    camid: int
    tracklet_id: int | str
    where: str
    is_query: bool = False


@dataclass(frozen=True)
class LoadSettings:
    """The loader arguments every reader takes, resolved once (protocol and policy objects)."""

    protocol: Protocol
    policy: CorruptFramePolicy
    validate: bool = True
    check_files: bool = True
    verify_frames: bool = False
    workers: int = 4
    progress: bool = True

    @classmethod
    def resolve(cls, protocol: str | Protocol, corrupt: str, **kwargs) -> "LoadSettings":
        return cls(get_protocol(protocol), CORRUPT_POLICIES.get(corrupt, key="corrupt"), **kwargs)


def check_options(fmt: str, options: dict, allowed: dict[str, str]) -> None:
    """Refuse a ``data.format_options`` key the reader of ``fmt`` does not take.

    Args:
        allowed: option name -> what it means (listed in the message).
    """
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = "; ".join(f"{k}: {v}" for k, v in allowed.items()) or "no options"
        raise DatasetError(
            f"{OPTIONS_KEY}: the {fmt} reader does not take {unknown}; it takes {takes}. "
            f"Remove the key(s) from {OPTIONS_KEY}."
        )


def resolve_release(root: str | os.PathLike, is_release: Callable[[Path], bool],
                    release_names: Iterable[str]) -> Path | None:
    """The folder that holds the release: ``root`` itself, or one of ``release_names`` inside it
    (torchreid keeps e.g. ``market1501/Market-1501-v15.09.15/``); None when neither fits."""
    p = Path(root)
    if not p.is_dir():
        return None
    if is_release(p):
        return p
    for name in release_names:
        if is_release(p / name):
            return p / name
    return None


def first_file(folder: Path, suffixes: tuple[str, ...]) -> str | None:
    """Name of one file of ``folder`` (recursing into its first sub-folders) ending in one of
    ``suffixes``; None if there is none. Cheap: stops at the first hit (format detection)."""
    try:
        with os.scandir(folder) as entries:
            subdirs = []
            for e in entries:
                if e.is_file() and e.name.lower().endswith(suffixes):
                    return e.name
                if e.is_dir():
                    subdirs.append(e.path)
    except OSError:
        return None
    for sub in sorted(subdirs)[:3]:
        name = first_file(Path(sub), suffixes)
        if name is not None:
            return name
    return None


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` ending in ``suffixes`` (case-insensitive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))


def _where(t: RawTracklet, path: str) -> str:
    """``<where>: frame <path>``, or just the path when the tracklet is that one file."""
    return path if t.where == path else f"{t.where}: frame {path}"


def _check_queries(test: list[RawTracklet], errors: ErrorCollector) -> None:
    """Every query needs another test tracklet of its pid (else it can never be matched)."""
    count: dict[int, int] = {}
    for t in test:
        count[t.pid] = count.get(t.pid, 0) + 1
    for t in test:
        if t.is_query and count[t.pid] < 2:
            errors.add(f"{t.where}: query (pid {t.pid}, camera {t.camid}) has no other test tracklet of pid "
                       f"{t.pid}, so it can never be matched; restore its gallery images or drop the query")
    if test and not any(t.is_query for t in test):
        errors.add("the test split has no query")


def assemble(
    name: str,
    root: Path,
    train: list[RawTracklet],
    test: list[RawTracklet],
    settings: LoadSettings,
    errors: ErrorCollector,
    listed: bool,
) -> VideoReIDData:
    """Check the parsed tracklets and build the splits.

    Args:
        name: the dataset name reports print.
        train, test: parsed tracklets; ``is_query`` marks the test queries.
        settings: validation, file checks, decode scan, corrupt policy, protocol.
        errors: the reader's collector (parse problems already in it are raised first).
        listed: the frames come from directory listings, so they exist (no separate check).

    Returns:
        ``VideoReIDData`` with ``query`` = the queries and ``gallery`` =
        ``protocol.gallery_mask`` of the test tracklets (shared objects), ``row`` = the
        tracklet's 0-based position in its split as parsed, ``corrupt`` = the policy's name.
    """
    errors.raise_if_any()
    if settings.validate:
        _check_queries(test, errors)
        errors.raise_if_any()
    policy = settings.policy
    issues = FrameIssues(policy=policy.name)
    scan = settings.verify_frames or policy.decode_at_load
    flat = [(split, k, path) for split, ts in (("train", train), ("test", test))
            for k, t in enumerate(ts) for path in t.frames]
    source = {"train": train, "test": test}
    keep = np.ones(len(flat), dtype=bool)
    if (settings.validate and settings.check_files and not listed) or scan:
        exists = existing_files([p for _, _, p in flat])
        for i in np.flatnonzero(~exists).tolist():
            split, k, path = flat[i]
            if policy.drop_bad:
                issues.missing.append((path, source[split][k].where))
            else:
                errors.add(f"{_where(source[split][k], path)} does not exist; copy the complete "
                           f"release or load with corrupt='skip' to drop missing frames")
        keep &= exists
        errors.raise_if_any()
    if scan:
        todo = np.flatnonzero(keep)
        bad = check_frames([flat[i][2] for i in todo.tolist()], workers=settings.workers,
                           desc=f"decoding {name} frames", progress=settings.progress)
        issues.scanned = len(todo)
        for j, path, reason in bad:
            split, k, _ = flat[todo[j]]
            if policy.drop_bad:
                keep[todo[j]] = False
                issues.corrupt.append((path, reason))
            else:
                errors.add(f"{_where(source[split][k], path)}: {reason}; replace the file or load "
                           f"with corrupt='skip' to drop unreadable frames")
        errors.raise_if_any()

    built: dict[str, list[tuple[Tracklet, bool]]] = {"train": [], "test": []}
    pos = 0
    for split in ("train", "test"):
        for row, t in enumerate(source[split]):
            frames = tuple(p for p, ok in zip(t.frames, keep[pos : pos + len(t.frames)].tolist()) if ok)
            pos += len(t.frames)
            if not frames:
                issues.dropped_tracklets.append((split, row))
                continue
            built[split].append((Tracklet(frames, t.pid, t.camid, t.tracklet_id, row), t.is_query))
    tests = [t for t, _ in built["test"]]
    is_query = np.array([q for _, q in built["test"]], dtype=bool)
    gallery = settings.protocol.gallery_mask(np.array([t.pid for t in tests], dtype=np.int64), is_query)
    data = VideoReIDData.from_tracklets(
        name, root, settings.protocol.name, [t for t, _ in built["train"]],
        query=[t for t, q in zip(tests, is_query.tolist()) if q],
        gallery=[t for t, g in zip(tests, gallery.tolist()) if g],
        frame_issues=issues, corrupt=policy.name,
    )
    if issues.dropped_frames or issues.dropped_tracklets:
        log.warning("%s at %s: %s", name, root, issues.summary())
    return data


__all__ = [
    "OPTIONS_KEY", "LoadSettings", "RawTracklet", "assemble", "check_options", "first_file",
    "list_files", "resolve_release",
]
