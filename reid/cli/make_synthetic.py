"""``reid make-synthetic`` (and ``python tools/make_synthetic_mars.py``): generate the embedded
synthetic video ReID dataset in the exact MARS layout.

Thin front end over the ``reid.data.synthetic`` package (its docstring says what is drawn): argument
parsing and printing only; parameters, generation, caching and the contact sheet live there. Every
argument is checked (``SyntheticMarsParams.create``) before anything is drawn.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from reid.cli.common import UsageError, add_debug_flag, debug_requested, guarded
from reid.data.synthetic import SyntheticMarsParams, ensure_synthetic_mars, make_contact_sheet, read_stamp

EXAMPLES = """\
examples:
  # the default dataset used by build_data(root=None) (~60+60 ids, 4 cameras, ~10k frames, <1 min)
  {cmd} --out datasets/synthetic_mars

  # a bigger, harder one; frames of 256x128
  {cmd} --out datasets/syn_big --ids-train 200 --ids-test 200 \\
      --cameras 6 --height 256 --width 128

  # tiny (unit-test size) plus a contact sheet to look at
  {cmd} --out /tmp/syn_tiny --tiny --preview /tmp/syn_tiny.png

  # only the contact sheet (rows = identities, columns = cameras + adverse cases)
  {cmd} --preview docs/img/synthetic_mars_samples.png --no-data

The output is reused when its SYNTHETIC.json stamp matches the parameters (use --force to
regenerate). Generation is atomic: it writes to a hidden sibling folder and renames it into place.
Read it back with reid.data.mars.load_mars(root) or `reid inspect --root DIR`.

exit status: 0 done; 2 a user error (bad parameter, disk full: one line on stderr, --debug
for the traceback).
"""


def build_parser(prog: str = "reid make-synthetic") -> argparse.ArgumentParser:
    d = SyntheticMarsParams()
    cmd = f"python {prog}" if prog.endswith(".py") else prog
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Write a procedurally drawn video person re-identification dataset in the exact MARS "
            "layout (bbox_train/, bbox_test/, info/*.txt, info/*.mat): people with per-identity "
            "clothing colours, patterns, accessories and build; cameras with their own scene, "
            "illumination, colour cast, scale and viewpoint; walking tracklets with controlled "
            "rates of blur, occlusion, truncation, second-person and background-only frames; junk "
            "(pid -1) and distractor (pid 0) tracklets in the test split. Deterministic for a seed."
        ),
        epilog=EXAMPLES.format(cmd=cmd),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: $REID_DATASETS/synthetic_mars or <repo>/datasets/synthetic_mars)")
    p.add_argument("--ids-train", type=int, default=d.ids_train, help="training identities (default %(default)s)")
    p.add_argument("--ids-test", type=int, default=d.ids_test, help="test identities, disjoint from training (default %(default)s)")
    p.add_argument("--cameras", type=int, default=d.cameras, help="cameras, 2..9; every id is seen by >= 2 (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed = byte-identical files (default %(default)s)")
    p.add_argument("--height", type=int, default=d.height, help="frame height in pixels (default %(default)s, as MARS)")
    p.add_argument("--width", type=int, default=d.width, help="frame width in pixels (default %(default)s, as MARS)")
    p.add_argument("--frames-min", type=int, default=None, help=f"shortest tracklet (default {d.frames_min}; 3 with --tiny)")
    p.add_argument("--frames-max", type=int, default=None, help=f"longest tracklet (default {d.frames_max}; 5 with --tiny)")
    p.add_argument("--junk", type=int, default=None, help="junk (pid -1) test tracklets (default ids_test/2)")
    p.add_argument("--distractors", type=int, default=None, help="distractor (pid 0) test tracklets (default 2*ids_test/3)")
    p.add_argument("--twin-fraction", type=float, default=d.twin_fraction,
                   help="fraction of identities sharing their upper body with another id (default %(default)s)")
    p.add_argument("--adverse-scale", type=float, default=1.0,
                   help="multiply every adverse-run probability (0 = clean data; default %(default)s; "
                        "base rates: " + ", ".join(f"{k} {v}" for k, v in d.adverse_rates) + ")")
    p.add_argument("--tiny", action="store_true", help="unit-test size: 3-5 frames, one tracklet per (id, camera)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default 2, 1 with --tiny); output does not depend on it")
    p.add_argument("--force", action="store_true", help="regenerate even if a matching dataset exists")
    p.add_argument("--preview", type=Path, default=None, metavar="PNG",
                   help="also write a contact sheet PNG: rows = test identities, columns = cameras + adverse cases")
    p.add_argument("--no-data", action="store_true", help="with --preview: write only the contact sheet")
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    params: dict = dict(ids_train=args.ids_train, ids_test=args.ids_test, cameras=args.cameras, seed=args.seed,
                        height=args.height, width=args.width, tiny=args.tiny, twin_fraction=args.twin_fraction)
    for key, value in (("frames_min", args.frames_min), ("frames_max", args.frames_max),
                       ("junk_tracklets", args.junk), ("distractor_tracklets", args.distractors)):
        if value is not None:
            params[key] = value
    if args.adverse_scale != 1.0:
        if args.adverse_scale < 0:
            raise UsageError(f"--adverse-scale {args.adverse_scale}: must be >= 0")
        params["adverse_rates"] = {k: min(1.0, v * args.adverse_scale) for k, v in SyntheticMarsParams().adverse_rates}
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: must be >= 1")
    try:
        spec = SyntheticMarsParams.create(**dict(params))
    except (ValueError, TypeError) as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    if args.no_data and args.preview is None:
        raise UsageError("--no-data only makes sense with --preview PNG")
    if not args.no_data:
        t0 = time.perf_counter()
        root = ensure_synthetic_mars(args.out, force=args.force, workers=args.workers, **params)
        stamp = read_stamp(root) or {}
        print(json.dumps({"root": str(root), "seconds": round(time.perf_counter() - t0, 1), **stamp.get("counts", {})}, indent=2))
    if args.preview is not None:
        path = make_contact_sheet(args.preview, spec)
        print(f"contact sheet: {path}")
    return 0


def main(argv: list[str] | None = None, prog: str = "reid make-synthetic") -> int:
    args = build_parser(prog).parse_args(argv)
    return guarded(lambda: run(args), debug_requested(args))


__all__ = ["build_parser", "main", "run"]
