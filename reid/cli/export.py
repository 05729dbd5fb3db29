"""``reid export``: a trained checkpoint as weights-only safetensors, ONNX or TorchScript.

    reid export --checkpoint runs/default-*/best.pt --format safetensors --out exported/
    reid export --checkpoint best.pt --format onnx --out exported/ --clip-length 4

Each format writes ``model.json`` (model config, class count, input size, clip length, test
transform, reid version) beside its file; ONNX and TorchScript files are checked against the
PyTorch model (features within 1e-4) before the command succeeds. Details:
:mod:`reid.engine.export`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reid.cli.common import UsageError, add_debug_flag, debug_requested, guarded

FORMATS = ("safetensors", "onnx", "torchscript")  # reid.engine.export.FORMATS (not imported: --help stays fast)


def build_parser(prog: str = "reid export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="formats: safetensors = model.safetensors (state dict only, loads without pickle: "
               "reid.engine.export.load_weights_only); onnx = model.onnx (inputs frames [B,T,3,H,W] float32, "
               "mask [B,T] bool; output features [B,D]; dynamic B, fixed T); torchscript = model.ts (traced, "
               "same inputs). Needs: pip install 'reid[export]'.")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a checkpoint written by reid train (best.pt / last.pt), or its run folder (last.pt)")
    p.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; files in it are replaced)")
    p.add_argument("--clip-length", type=int, default=None,
                   help="frames per clip T of the ONNX/TorchScript graph (default: the run's eval.max_frames, "
                        "else data.clip_length)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the check of the exported file against PyTorch (e.g. without onnxruntime)")
    p.add_argument("--json", action="store_true", help="print one JSON object (files, sizes, max difference)")
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    if args.clip_length is not None and args.clip_length < 1:
        raise UsageError(f"--clip-length {args.clip_length}: must be >= 1")
    from reid.engine.export import export_checkpoint

    result = export_checkpoint(args.checkpoint, args.format, args.out, clip_length=args.clip_length,
                               verify=not args.no_verify)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"exported {result['checkpoint']} ({result['checkpoint_bytes'] / 1e6:.1f} MB) as {args.format}, "
          f"clip length {result['clip_length']}:")
    for name, size in result["files"].items():
        print(f"  {name}  {size / 1e6:.2f} MB" if size >= 1e5 else f"  {name}  {size} B")
    if result["max_abs_diff"] is not None:
        print(f"checked against PyTorch: max |difference| = {result['max_abs_diff']:.2e}")
    return 0


def main(argv: list[str] | None = None, prog: str = "reid export") -> int:
    args = build_parser(prog).parse_args(argv)
    return guarded(lambda: run(args), debug_requested(args))


__all__ = ["build_parser", "main", "run"]
