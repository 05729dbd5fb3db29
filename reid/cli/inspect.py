"""Validate a video ReID dataset and print what it holds, under both evaluation protocols.

Run this before training on a new copy of MARS (or your own manifest): it performs the same
validation the trainer does (name lists vs tables, frame names vs pid / camera, contiguous
tracks, query rows, files present, optionally every frame decoded) and prints the split sizes,
junk / distractor counts, gallery size and the number of queries that have no valid
(cross-camera, real-id) match under each protocol. The work is done by
reid.data.inspect.inspect_dataset; this module is only the command line.
"""

from __future__ import annotations

import argparse
import json

from reid.cli.common import add_debug_flag, debug_requested, guarded
from reid.protocols import PROTOCOLS

EPILOG = """\
examples:
  # full check of a MARS copy (files present), both protocols
  {cmd} --root /data/mars

  # only the index (.mat files; no images or name lists needed); ROOT or ROOT/info
  {cmd} --root /data/mars/info --index-only

  # also decode every frame (minutes on real MARS), machine-readable output
  {cmd} --root /data/mars --verify-frames --json

  # your own tracklets
  {cmd} --root my_manifest.csv --protocol torchreid

On real MARS the index gives: train 8298 tracklets / 625 ids; test 12180 tracklets, 1980
queries, 870 junk (pid -1) and 3248 distractor (pid 0) tracklets; gallery 12180 (official, 0
queries without a valid match) or 9330 (torchreid, 140 without).

exit status: 0 valid, 2 the dataset failed validation (the problems are printed) or another
user error (one line on stderr, --debug for the traceback).
"""


def build_parser(prog: str = "reid inspect") -> argparse.ArgumentParser:
    cmd = f"python {prog}" if prog.endswith(".py") else prog
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        epilog=EPILOG.format(cmd=cmd),
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
    parser.add_argument("--format-option", action="append", default=[], metavar="KEY=VALUE",
                        help="the reader's own option, repeatable (value read as YAML), e.g. split_index=3 "
                             "for ilids_vid / prid2011, use_val=true for msmt17")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_debug_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from reid.data.inspect import format_summary, inspect_dataset

    from reid.engine.config_files import parse_override

    protocols = None if args.protocol == "both" else (args.protocol,)
    options = dict(parse_override(text) for text in args.format_option)  # ConfigError names a bad one
    summary = inspect_dataset(args.root, args.index_only, protocols, args.verify_frames, progress=not args.json,
                              format_options=options)
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0


def main(argv: list[str] | None = None, prog: str = "reid inspect") -> int:
    args = build_parser(prog).parse_args(argv)
    return guarded(lambda: run(args), debug_requested(args))


__all__ = ["build_parser", "main", "run"]
