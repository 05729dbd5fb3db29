#!/usr/bin/env python
"""Benchmarks of the package, each a ratio against a baseline measured in the same run.

  python tools/benchmark.py loader   # data loader vs raw decode + augment
  python tools/benchmark.py losses   # weighted CE vs F.cross_entropy; our RLL vs PML's
  python tools/benchmark.py eval     # evaluator vs bare matrix product and a torchreid-style baseline
  python tools/benchmark.py train    # training step with the real pipeline vs pre-loaded tensors

Each prints a table and, with --json, a JSON object. Extra arguments go to the area's benchmark
(see `python tools/benchmark.py AREA --help`). Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import sys

AREAS = ("loader", "losses", "eval", "train")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in AREAS:
        print(__doc__)
        return 0 if (not argv or argv[0] in ("-h", "--help")) else 2
    area, rest = argv[0], argv[1:]
    module = importlib.import_module(f"reid.benchmarks.{area}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
