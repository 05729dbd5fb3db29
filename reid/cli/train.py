"""``reid train`` (and ``python tools/train.py``): train and evaluate a video ReID model from a
YAML config; run bare, it is the main job (``configs/default.yaml``).

Order of work: parse, load and validate the config, :func:`reid.engine.preflight.preflight`
(losses built, data root, device, checkpoint for ``--resume``), and only then the run folder and
the data. Exit status: 0 done, 2 a user error (one line on stderr), 3 stopped on a non-finite
loss or gradient (``train.nan_policy=stop``) or no successful step at all, 1 the run produced
no report.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from reid.cli.common import UsageError, add_debug_flag, debug_requested, guarded, resolve_config

EXIT_NON_FINITE = 3

EPILOG = """\
config sections and their keys (see reid/engine/config.py for types and defaults):
{sections}

examples:
  # the main job: resnet18 from scratch on the embedded synthetic MARS dataset, CPU, ~2-5 min
  {cmd}

  # real MARS on a GPU (a shipped config, by name), another weighting scheme and learning rate
  {cmd} --config mars_resnet50 data.root=/data/MARS loss.id.scheme=dm optim.lr=0.0005

  # ProSelfLC (progressive self label correction) as the identity loss
  {cmd} loss.id.name=proselflc

  # one weighting scheme (these configs inherit the default one through `base:`)
  {cmd} --config schemes/imae

  # check a config without training: resolved values, and every problem found before any work
  {cmd} --config my.yaml train.epochs=20 --print-config

  # continue a run that was interrupted (its folder holds last.pt and config.yaml)
  {cmd} --resume runs/default-20250101-120000-123456
  {cmd} --resume            # the newest run of --config's name

  # 2 processes with DDP (gloo on CPU, nccl on GPU)
  torchrun --nproc_per_node 2 tools/train.py train.epochs=4

{shipped}
overrides: dotted keys, values parsed as YAML 1.2: optim.lr=3e-4 sched.milestones=[20,40] data.root=null.
Every run writes to output_dir (default runs/<name>-<YYYYmmdd-HHMMSS>-<microseconds>): config.yaml,
train.log, metrics.jsonl, tensorboard/, last.pt, best.pt and final.json. A folder that already
holds a run is refused unless --resume (continue it) or --overwrite (replace it).

exit status: 0 done; 2 a user error (bad config, data, checkpoint, disk full: one line on stderr,
--debug for the traceback); 3 stopped on non-finite numbers (train.nan_policy=stop, or no
step succeeded).
"""


def build_parser(prog: str = "reid train") -> argparse.ArgumentParser:
    from reid.cli.common import shipped_config_names
    from reid.engine.config import describe_schema

    cmd = f"python {prog}" if prog.endswith(".py") else prog
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Train a video person re-identification model (identity loss under any example-weighting "
            "scheme + a ranking loss), evaluate retrieval (mAP, CMC, mINP) under a named protocol, and "
            "compare with the untrained network. Configs are YAML files validated against a typed schema; "
            "unknown keys, wrong types and bad loss parameters are errors naming the key and the file, "
            "reported before any work."
        ),
        epilog=EPILOG.format(sections="\n".join(describe_schema()), cmd=cmd,
                             shipped=textwrap.fill("configs: --config takes a file or a shipped config's name ("
                                                   + ", ".join(n for n in shipped_config_names()
                                                               if not n.startswith("study_")) + ").", 96)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=None, metavar="NAME|FILE",
                        help="a shipped config's name (default, mars_resnet50, schemes/imae, ...) or a YAML "
                             "file (default: default)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="DIR",
                        help="continue the run in DIR (its last.pt and config.yaml); without DIR, the newest "
                             "run folder under runs/ named after the config")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in output_dir (its checkpoints, logs and final.json are "
                             "deleted first); without it such a folder is refused")
    parser.add_argument("--print-config", action="store_true",
                        help="check the config (schema and preflight: losses, model, hooks) and print it "
                             "resolved (after bases and overrides), then exit")
    add_debug_flag(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. optim.lr=0.01 model.backbone=resnet50")
    return parser


def latest_run(name: str, runs: Path = Path("runs")) -> Path:
    """The run folder ``runs/<name>-*`` whose ``last.pt`` is the newest."""
    candidates = sorted((p for p in runs.glob(f"{name}-*") if (p / "last.pt").is_file()),
                        key=lambda p: (p / "last.pt").stat().st_mtime)
    if not candidates:
        raise UsageError(f"--resume: no run folder {runs}/{name}-*/ with a last.pt; pass the folder: --resume DIR")
    return candidates[-1]


def resolve_run(args: argparse.Namespace):
    """``(cfg, run_dir or None, sources, label)`` for the parsed arguments: a new run from
    ``--config`` + overrides, or the run in ``--resume`` from its own ``config.yaml`` (so the
    resumed run is the same run; overrides still apply)."""
    from reid.engine.config import config_sources, load_config

    config_path = resolve_config(args.config or "default")
    if args.resume is None:
        cfg = load_config(config_path, args.overrides)
        return (cfg, None, *config_sources(config_path, args.overrides))
    if args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other: --resume continues the run in the "
                         "folder, --overwrite replaces it; pass one")
    if args.resume == "latest":
        run_dir = latest_run(load_config(config_path, args.overrides, set_output_dir=False).name)
    else:
        run_dir = Path(args.resume)
    if not run_dir.exists():
        raise UsageError(f"--resume: {run_dir} does not exist")
    run_config = run_dir / "config.yaml" if run_dir.is_dir() else run_dir.parent / "config.yaml"
    if not run_config.is_file():
        raise UsageError(f"--resume: {run_config} not found (is {run_dir} a run folder?)")
    overrides = [*args.overrides, f"output_dir={run_config.parent}"]
    cfg = load_config(run_config, overrides)
    return (cfg, run_dir, *config_sources(run_config, overrides))


def run(args: argparse.Namespace) -> int:
    cfg, run_dir, sources, label = resolve_run(args)

    from reid.engine.config_files import dump_yaml
    from reid.engine.preflight import RESUME_KEYS, check_checkpoint, preflight

    preflight(cfg, sources, label, environment=not args.print_config)
    if args.print_config:
        print(dump_yaml(cfg.to_plain()), end="")
        return 0
    if run_dir is not None:
        run_dir = check_checkpoint(run_dir, "--resume", RESUME_KEYS)

    from reid.engine import train
    from reid.engine.loop import NonFiniteLossError, NoTrainingStepError
    from reid.studies.hooks import study_hooks

    try:
        final = train(cfg, hooks=study_hooks(cfg), resume=run_dir, overwrite=args.overwrite)
    except (NonFiniteLossError, NoTrainingStepError) as exc:  # numerics, not a bug: no traceback
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_NON_FINITE
    return 0 if final is not None else 1


def main(argv: list[str] | None = None, prog: str = "reid train") -> int:
    args = build_parser(prog).parse_args(argv)
    return guarded(lambda: run(args), debug_requested(args))


__all__ = ["build_parser", "latest_run", "main", "resolve_run", "run"]
