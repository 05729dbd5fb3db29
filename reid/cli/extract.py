"""``reid extract`` (and ``python tools/extract.py``): retrieval features of a folder of tracklet
folders, one vector per tracklet, with the checkpoint's own test transform and aggregation
(:class:`reid.engine.extractor.FeatureExtractor`).

The npz holds ``names`` (the tracklet folder names, sorted), ``features`` ``[N, D]`` float32,
``frame_paths`` / ``frame_offsets`` (tracklet i = ``frame_paths[off[i]:off[i+1]]``) and the 0-d
strings ``protocol``, ``metric`` (the run's) and ``dataset`` (the input folder's name).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from reid.cli.common import UsageError, add_debug_flag, debug_requested, guarded

EPILOG = """\
input layout:  DIR/<tracklet>/<frames>.jpg   (one sub-folder per tracklet; frames in file-name order;
               .jpg .jpeg .png .bmp .webp)

examples:
  {cmd} --checkpoint runs/default-x/best.pt --input tracklets/ --out feats.npz
  {cmd} --checkpoint exported/ --input tracklets/ --out feats.npz --device cuda --max-frames 8

exit status: 0 done; 2 a user error (one line on stderr, --debug for the traceback).
"""


def build_parser(prog: str = "reid extract") -> argparse.ArgumentParser:
    cmd = f"python {prog}" if prog.endswith(".py") else prog
    p = argparse.ArgumentParser(
        prog=prog, epilog=EPILOG.format(cmd=cmd), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Extract one retrieval feature per tracklet folder with a trained checkpoint (or an "
        "export folder: model.json + model.safetensors), exactly as the run's own evaluation does.")
    p.add_argument("--checkpoint", type=Path, required=True, help="best.pt / last.pt, or a reid export folder")
    p.add_argument("--input", type=Path, required=True, help="folder of tracklet folders")
    p.add_argument("--out", type=Path, required=True, help="the features file to write (.npz)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="evenly spaced frames per tracklet (default: the run's eval.max_frames)")
    p.add_argument("--chunk", type=int, default=None, help="frames per backbone pass (default: the run's eval.chunk)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from reid.engine.extractor import FeatureExtractor
    from reid.eval.feature_file import save_feature_file

    for option, value in (("--max-frames", args.max_frames), ("--chunk", args.chunk)):
        if value is not None and value < 1:
            raise UsageError(f"{option} {value}: must be >= 1")
    if args.out.suffix != ".npz":
        raise UsageError(f"--out {args.out}: the features file must end in .npz")
    if args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a folder; give a file name such as {args.out / 'feats.npz'}")
    if not args.checkpoint.exists():
        raise UsageError(f"--checkpoint {args.checkpoint}: not found (a checkpoint file or an export folder)")
    if args.checkpoint.is_file():
        from reid.engine.preflight import EVAL_KEYS, check_checkpoint

        check_checkpoint(args.checkpoint, "--checkpoint", EVAL_KEYS)
    names, tracklets = FeatureExtractor.scan(args.input)  # input errors before the model is loaded
    extractor = FeatureExtractor(args.checkpoint, device=args.device, max_frames=args.max_frames, chunk=args.chunk,
                                 progress=not args.no_progress)
    feats = extractor.extract(tracklets)
    arrays = {
        "names": np.array(names, dtype=str),
        "features": feats,
        "frame_paths": np.array([p for t in tracklets for p in t], dtype=str),
        "frame_offsets": np.cumsum([0] + [len(t) for t in tracklets]).astype(np.int64),
    }
    save_feature_file(args.out, arrays, protocol=extractor.settings["protocol"], metric=extractor.settings["metric"],
                      dataset=args.input.resolve().name)
    print(f"wrote {len(names)} tracklet features (D={feats.shape[1]}) to {args.out}")
    return 0


def main(argv: list[str] | None = None, prog: str = "reid extract") -> int:
    args = build_parser(prog).parse_args(argv)
    return guarded(lambda: run(args), debug_requested(args))


__all__ = ["build_parser", "main", "run"]
