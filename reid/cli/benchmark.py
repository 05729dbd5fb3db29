"""``reid benchmark AREA`` (and ``python tools/benchmark.py AREA``): benchmarks of the package,
each a ratio against a baseline measured in the same run.

  loader   data loader vs raw decode + augment
  losses   weighted CE vs F.cross_entropy; our RLL vs PML's
  eval     evaluator vs bare matrix product and a torchreid-style baseline
  extract  feature extraction vs a model-only forward over the same frames
  train    training step with the real pipeline vs pre-loaded tensors
  startup  tools/eval.py --features start-up vs interpreter / numpy / torch import
  gpu      every GPU measurement in one run (a dry run at tiny sizes on CPU)
  torchreid_compare  training clips/s vs torchreid 0.2.5, same recipe and data (skipped without torchreid)

Each prints a table and, with --json, a JSON object. Extra arguments go to the area's benchmark
(see ``AREA --help``). Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import difflib
import importlib
import sys

from reid.cli.common import debug_requested, fail, guarded

AREAS = ("loader", "losses", "eval", "extract", "train", "startup", "gpu", "torchreid_compare")


def usage(prog: str) -> str:
    cmd = f"python {prog}" if prog.endswith(".py") else prog
    lines = [f"usage: {cmd} {{{','.join(AREAS)}}} [options]", "", __doc__.split("\n\n", 1)[1].rstrip()]
    lines += ["", "examples:", f"  {cmd} losses", f"  {cmd} eval --json", f"  {cmd} train --help"]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "reid benchmark") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(prog))
        return 0
    debug = "--debug" in argv or debug_requested()
    argv = [a for a in argv if a != "--debug"]
    area, rest = argv[0], argv[1:]
    if area not in AREAS:
        close = difflib.get_close_matches(area, AREAS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return fail(f"unknown benchmark area '{area}' (choices: {', '.join(AREAS)}).{hint}")
    module = importlib.import_module(f"reid.benchmarks.{area}")
    return guarded(lambda: module.main(rest), debug)


__all__ = ["AREAS", "main"]
