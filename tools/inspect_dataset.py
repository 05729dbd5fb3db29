#!/usr/bin/env python
"""Validate a video ReID dataset and print what it holds, under both evaluation protocols.

Run this before training on a new copy of MARS (or your own manifest): it performs the same
validation the trainer does (name lists vs tables, frame names vs pid / camera, contiguous
tracks, query rows, files present, optionally every frame decoded) and prints the split sizes,
junk / distractor counts, gallery size and the number of queries that have no valid
(cross-camera, real-id) match under each protocol. The work is done by
reid.data.inspect.inspect_dataset; this file is only the command line.
"""

from __future__ import annotations

import argparse
import json
import sys

from reid.data.inspect import format_summary, inspect_dataset
from reid.data.tracklet import DatasetError
from reid.protocols import PROTOCOLS

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
    parser.add_argument("--protocol", choices=("both", *PROTOCOLS.names()), default="both",
                        help="which protocol(s) to report gallery sizes for (default: both, i.e. every "
                             "registered protocol)")
    parser.add_argument("--verify-frames", action="store_true",
                        help="decode every frame (slow on real MARS: minutes); fails on corrupt files")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    protocols = None if args.protocol == "both" else (args.protocol,)
    try:
        summary = inspect_dataset(args.root, args.index_only, protocols, args.verify_frames, progress=not args.json)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
