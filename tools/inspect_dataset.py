#!/usr/bin/env python
"""Validate a video ReID dataset and print what it holds, under both evaluation protocols.

Run this before training on a new copy of MARS (or your own manifest): it performs the same
validation the trainer does (name lists vs tables, frame names vs pid / camera, contiguous
tracks, query rows, files present, optionally every frame decoded) and prints the split sizes,
junk / distractor counts, gallery size and the number of queries that have no valid
(cross-camera, real-id) match under each protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from reid.data.build import build_data, detect_format
from reid.data.mars import find_info_dir, load_mars, read_mars_index
from reid.data.tracklet import DatasetError, VideoReIDData
from reid.data.validation import PROTOCOLS, split_statistics

EPILOG = """\
examples:
  # full check of a MARS copy (files present), both protocols
  python tools/inspect_dataset.py --root /data/mars

  # only the index (.mat files; no images or name lists needed); ROOT or ROOT/info
  python tools/inspect_dataset.py --root /data/mars/info --index-only

  # also decode every frame (minutes on real MARS), machine-readable output
  python tools/inspect_dataset.py --root /data/mars --verify-frames --json

  # your own tracklets
  python tools/inspect_dataset.py --root my_manifest.csv --protocol torchreid

On real MARS the index gives: train 8298 tracklets / 625 ids; test 12180 tracklets, 1980
queries, 870 junk (pid -1) and 3248 distractor (pid 0) tracklets; gallery 12180 (official, 0
queries without a valid match) or 9330 (torchreid, 140 without).

exit status: 0 valid, 2 the dataset failed validation (the problems are printed).
"""


def _stats_from_table(train: np.ndarray, test: np.ndarray, query_rows: np.ndarray, protocols) -> dict:
    return split_statistics(
        train[:, 2], train[:, 3], train[:, 1] - train[:, 0] + 1,
        test[:, 2], test[:, 3], test[:, 1] - test[:, 0] + 1,
        query_rows, protocols,
    )


def _stats_from_data(data: VideoReIDData, protocols) -> dict:
    # loaded under "official": the gallery is every test tracklet, queries included
    test = data.gallery
    position = {id(t): i for i, t in enumerate(test)}
    qpos = np.array([position[id(t)] for t in data.query], dtype=np.int64)
    arr = lambda ts, attr: np.array([getattr(t, attr) for t in ts], dtype=np.int64)  # noqa: E731
    lengths = lambda ts: np.array([len(t) for t in ts], dtype=np.int64)  # noqa: E731
    return split_statistics(
        arr(data.train, "pid"), arr(data.train, "camid"), lengths(data.train),
        arr(test, "pid"), arr(test, "camid"), lengths(test), qpos, protocols,
    )


def inspect(root: str, index_only: bool = False, protocols=PROTOCOLS, verify_frames: bool = False,
            progress: bool = True) -> dict:
    """The summary dict printed by this tool (raises DatasetError when validation fails)."""
    if index_only:
        index = read_mars_index(root, validate=True)
        stats = _stats_from_table(index.train, index.test, index.query_rows, protocols)
        return {"root": str(find_info_dir(root)), "format": "mars (index only)", **stats}
    fmt = detect_format(root)
    if fmt == "mars":
        data = load_mars(root, protocol="official", verify_frames=verify_frames, progress=progress)
        index = read_mars_index(Path(root) / "info", validate=False)
        stats = _stats_from_table(index.train, index.test, index.query_rows, protocols)
    else:
        data = build_data(root, fmt=fmt, protocol="official", verify_frames=verify_frames, progress=progress)
        stats = _stats_from_data(data, protocols)
    issues = getattr(data, "frame_issues", None)
    out = {"root": str(root), "format": fmt, **stats}
    if issues is not None and issues.scanned:
        out["frames_decoded"] = issues.scanned
    return out


def format_table(s: dict) -> str:
    tr, te = s["train"], s["test"]
    rows = [
        f"dataset: {s['root']} ({s['format']})",
        "",
        f"{'split':<8}{'tracklets':>11}{'ids':>8}{'frames':>11}{'cameras':>9}",
        f"{'train':<8}{tr['tracklets']:>11}{tr['ids']:>8}{tr['frames']:>11}{tr['cameras']:>9}",
        f"{'test':<8}{te['tracklets']:>11}{te['ids']:>8}{te['frames']:>11}{te['cameras']:>9}   (ids: pid > 0)",
        "",
        f"queries:                      {s['query']['tracklets']}",
        f"junk tracklets (pid -1):      {te['junk_tracklets']}",
        f"distractor tracklets (pid 0): {te['distractor_tracklets']}",
        "",
        f"{'protocol':<12}{'gallery':>9}   queries without a valid match",
    ]
    for name, p in s["protocols"].items():
        rows.append(f"{name:<12}{p['gallery']:>9}   {p['queries_without_valid_match']}")
    rows.append("")
    rows.append("official: queries stay in the gallery; torchreid: queries and pid -1 removed from it.")
    rows.append("valid match: same pid > 0 seen by a different camera.")
    if "frames_decoded" in s:
        rows.append(f"frames decoded without error: {s['frames_decoded']}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="inspect_dataset.py",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", required=True,
                        help="MARS root (with bbox_train/, bbox_test/, info/), a .csv manifest, or a "
                             "train/query/gallery folder; with --index-only the MARS root or its info/ folder")
    parser.add_argument("--index-only", action="store_true",
                        help="read only info/*.mat (MARS): no name lists or images needed")
    parser.add_argument("--protocol", choices=("both",) + PROTOCOLS, default="both",
                        help="which protocol(s) to report gallery sizes for (default: both)")
    parser.add_argument("--verify-frames", action="store_true",
                        help="decode every frame (slow on real MARS: minutes); fails on corrupt files")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    try:
        summary = inspect(args.root, args.index_only, protocols, args.verify_frames, progress=not args.json)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=None if args.json else 2) if args.json else format_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
