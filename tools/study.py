#!/usr/bin/env python
"""Run a noisy-label robustness study: a grid of weighting schemes x noise (kind, rate) x seeds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  # CI-sized smoke study (synthetic MNIST-like data, < 60 s on 2 CPU cores)
  python tools/study.py --config configs/study_smoke.yaml --out runs/study_smoke

  # the real result: Fashion-MNIST, 40% symmetric noise, CCE/MAE/GCE/IMAE/DM/ProSelfLC (~20 min CPU)
  python tools/study.py --config configs/study_fashion_mnist.yaml --out runs/study_fashion_mnist

  # the memorisation regime: 2k images, 60 epochs (CCE memorises, IMAE/DM do not)
  python tools/study.py --config configs/study_fashion_mnist_small.yaml

  # the same grid shrunk to one epoch per cell, to check a config before the long run
  python tools/study.py --config configs/study_fashion_mnist.yaml --out /tmp/check --smoke

  # video ReID on the embedded synthetic MARS data, 40% symmetric tracklet noise (needs the trainer)
  python tools/study.py --config configs/study_synthetic_mars.yaml

Resuming: every finished cell writes <out>/cells/<cell>/cell.json atomically; run the same
command again after an interruption and finished cells are skipped. Outputs in <out>: runs.csv
(every cell, best and final numbers), table.md (test / noisy-subset fit / clean-subset fit,
mean +- std over seeds), metric_vs_rate_{best,final}.png, weight_curves.png,
p_histograms_final.png, and per cell pw_distributions.png (clean vs noisy p_i and w_i per epoch).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="study.py",
        description=(
            "Train the same network with several example-weighting schemes on labels corrupted "
            "with controlled noise, and report test performance, noisy-subset fit (noise "
            "tolerance, lower is better) and clean-subset fit (learning ability)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path, help="study YAML (configs/study_*.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<study name>)")
    parser.add_argument("--smoke", action="store_true", help="merge the config's 'smoke:' section (tiny, fast)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars (logs only)")
    args = parser.parse_args(argv)

    from reid.studies.runner import StudyError, load_study, run_study

    try:
        study = load_study(args.config, smoke=args.smoke)
    except StudyError as e:
        parser.error(str(e))
    out = args.out or Path("runs") / (study.name + ("-smoke" if args.smoke else ""))
    summary = run_study(study, out, progress=not args.no_progress, log=lambda m: print(m, flush=True))
    print(f"study {study.name}: {len(summary['ran'])} cell(s) run, {len(summary['skipped'])} skipped, "
          f"{len(summary['failed'])} failed; results in {out}")
    if (Path(out) / "table.md").is_file():
        print((Path(out) / "table.md").read_text())
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
