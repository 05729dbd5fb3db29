"""``reid study`` (and ``python tools/study.py``): run a noisy-label robustness study, a grid of
weighting schemes x noise (kind, rate) x seeds, resumable, with a table and plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from reid.cli.common import add_debug_flag, debug_requested, guarded, resolve_config

EPILOG = """\
examples:
  # CI-sized smoke study (synthetic MNIST-like data, < 60 s on 2 CPU cores); configs by name or path
  {cmd} --config study_smoke --out runs/study_smoke

  # the real result: Fashion-MNIST, 40% symmetric noise, CCE/MAE/GCE/IMAE/DM/ProSelfLC (~20 min CPU)
  {cmd} --config configs/study_fashion_mnist.yaml --out runs/study_fashion_mnist

  # the memorisation regime: 2k images, 60 epochs (CCE memorises, IMAE/DM do not)
  {cmd} --config study_fashion_mnist_small

  # the same grid shrunk to one epoch per cell, to check a config before the long run
  {cmd} --config study_fashion_mnist --out /tmp/check --smoke

  # video ReID on the embedded synthetic MARS data, 40% symmetric tracklet noise (needs the trainer)
  {cmd} --config study_synthetic_mars

  # the results of docs/robustness.md: 12 losses x 3 seeds on Fashion-MNIST (apt-get install
  # dataset-fashion-mnist), 6 schemes x 2 regimes x 3 seeds on synthetic MARS; 2 cells at a time,
  # table and figures written into the document
  {cmd} --config study_fashion_mnist_seeds --jobs 2 --doc docs/robustness.md
  {cmd} --config study_synthetic_mars_seeds --jobs 2 --doc docs/robustness.md

Resuming: every finished cell writes <out>/cells/<cell>/cell.json atomically; run the same
command again after an interruption and finished cells are skipped. Outputs in <out>: runs.csv
(every cell, best and final numbers), table.md (test / noisy-subset fit / clean-subset fit,
mean +- std over seeds), metric_vs_rate_{{best,final}}.png, weight_curves.png,
p_histograms_final.png, and per cell pw_distributions.png (clean vs noisy p_i and w_i per epoch).

exit status: 0 every cell finished; 1 a cell failed; 2 a user error (bad study file: one line
on stderr, --debug for the traceback).
"""


def build_parser(prog: str = "reid study") -> argparse.ArgumentParser:
    cmd = f"python {prog}" if prog.endswith(".py") else prog
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Train the same network with several example-weighting schemes on labels corrupted "
            "with controlled noise, and report test performance, noisy-subset fit (noise "
            "tolerance, lower is better) and clean-subset fit (learning ability)."
        ),
        epilog=EPILOG.format(cmd=cmd),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, metavar="NAME|FILE",
                        help="study YAML: a shipped study's name (study_smoke, study_fashion_mnist, ...) or a file")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/<study name>)")
    parser.add_argument("--smoke", action="store_true", help="merge the config's 'smoke:' section (tiny, fast)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars (logs only)")
    parser.add_argument("--doc", type=Path, default=None, metavar="FILE.md",
                        help="after the study, put its table and figures into FILE.md between "
                             "<!-- begin/end study:NAME --> markers (figures copied to img/NAME/ beside it)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run N cells at once in separate processes (each with cpu_count/N threads; "
                             "results are the same as a serial run's); default 1")
    add_debug_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from reid.studies.runner import StudyError, load_study, run_study

    study = load_study(resolve_config(args.config), smoke=args.smoke)
    out = args.out or Path("runs") / (study.name + ("-smoke" if args.smoke else ""))
    if args.jobs < 1:
        raise StudyError(f"--jobs {args.jobs}: give a number of processes >= 1")
    summary = run_study(study, out, progress=not args.no_progress and args.jobs == 1,
                        log=lambda m: print(m, flush=True), jobs=args.jobs)
    print(f"study {study.name}: {len(summary['ran'])} cell(s) run, {len(summary['skipped'])} skipped, "
          f"{len(summary['failed'])} failed; results in {out}")
    if (Path(out) / "table.md").is_file():
        print((Path(out) / "table.md").read_text())
        if args.doc is not None:
            from reid.studies.study_report import splice_into_doc

            command = f"python tools/study.py --config {args.config} --out {out}" + (
                f" --jobs {args.jobs}" if args.jobs > 1 else "") + f" --doc {args.doc}"
            print(f"wrote the study's section of {splice_into_doc(args.doc, study.name, Path(out), command)}")
    return 1 if summary["failed"] else 0


def main(argv: list[str] | None = None, prog: str = "reid study") -> int:
    args = build_parser(prog).parse_args(argv)
    return guarded(lambda: run(args), debug_requested(args))


__all__ = ["build_parser", "main", "run"]
