#!/usr/bin/env python
"""Train and evaluate a video ReID model from a YAML config (the main job when run bare)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from reid.engine.config import ConfigError, describe_schema, load_config  # noqa: E402

DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"

EPILOG = """\
config sections and their keys (see reid/engine/config.py for types and defaults):
{sections}

examples:
  # the main job: resnet18 from scratch on the embedded synthetic MARS dataset, CPU, ~5 min
  python tools/train.py

  # real MARS on a GPU, with a different weighting scheme and learning rate
  python tools/train.py --config configs/mars_resnet50.yaml data.root=/data/MARS loss.id.scheme=dm optim.lr=0.0005

  # ProSelfLC (progressive self label correction) as the identity loss
  python tools/train.py loss.id.name=proselflc

  # one weighting scheme (these files inherit configs/default.yaml through `base:`)
  python tools/train.py --config configs/schemes/imae.yaml

  # continue a run that was interrupted (its folder holds last.pt and config.yaml)
  python tools/train.py --resume runs/default-20250101-120000
  python tools/train.py --resume            # the newest run of --config's name

  # 2 processes with DDP (gloo on CPU, nccl on GPU)
  torchrun --nproc_per_node 2 tools/train.py train.epochs=4

overrides are dotted keys parsed as YAML: optim.lr=1e-3 sched.milestones=[20,40] data.root=null.
Every run writes to output_dir (default runs/<name>-<timestamp>): config.yaml, train.log,
metrics.jsonl, tensorboard/, last.pt, best.pt and final.json.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/train.py",
        description=(
            "Train a video person re-identification model (identity loss under any example-weighting "
            "scheme + a ranking loss), evaluate retrieval (mAP, CMC, mINP) under a named protocol, and "
            "compare with the untrained network. Configs are YAML files validated against a typed schema; "
            "unknown keys and wrong types are errors naming the key and the file."
        ),
        epilog=EPILOG.format(sections="\n".join(describe_schema())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None,
                        help=f"YAML config (default: {DEFAULT_CONFIG.relative_to(REPO_ROOT)})")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="DIR",
                        help="continue the run in DIR (its last.pt and config.yaml); without DIR, the newest "
                             "run folder under runs/ named after the config")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (after bases and overrides) and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. optim.lr=0.01 model.backbone=resnet50")
    return parser


def _latest_run(name: str) -> Path:
    runs = sorted(
        (p for p in (Path("runs")).glob(f"{name}-*") if (p / "last.pt").is_file()),
        key=lambda p: (p / "last.pt").stat().st_mtime,
    )
    if not runs:
        raise FileNotFoundError(f"--resume: no run folder runs/{name}-*/ with a last.pt; pass the folder explicitly")
    return runs[-1]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.resume is not None:
            config_path = args.config or DEFAULT_CONFIG
            if args.resume == "latest":
                name = load_config(config_path, args.overrides, set_output_dir=False).name
                run_dir = _latest_run(name)
            else:
                run_dir = Path(args.resume)
            if not (run_dir / "config.yaml").is_file():
                raise FileNotFoundError(f"--resume: {run_dir} holds no config.yaml (is it a run folder?)")
            # the run's own resolved config, so the resumed run is the same run; overrides still apply
            cfg = load_config(run_dir / "config.yaml", [*args.overrides, f"output_dir={run_dir}"])
        else:
            cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
            run_dir = None
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_plain(), sort_keys=False), end="")
        return 0

    from reid.engine import train
    from reid.engine.loop import NonFiniteLossError
    from reid.studies.hooks import study_hooks

    try:
        final = train(cfg, hooks=study_hooks(cfg), resume=run_dir)
    except NonFiniteLossError as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 3
    return 0 if final is not None else 1


if __name__ == "__main__":
    sys.exit(main())
