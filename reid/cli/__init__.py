"""The ``reid`` console command: ``reid <command> [options]``, one module per command.

    reid train [--config NAME|FILE] [key=value ...]   reid.cli.train
    reid eval --features F.npz --protocol official    reid.cli.eval
    reid extract --checkpoint best.pt --input DIR     reid.cli.extract
    reid export --checkpoint best.pt --format onnx    reid.cli.export
    reid inspect --root ROOT                          reid.cli.inspect
    reid study --config study_smoke                   reid.cli.study
    reid make-synthetic --out DIR                     reid.cli.make_synthetic
    reid benchmark AREA                               reid.cli.benchmark

``tools/*.py`` call the same ``main`` functions (the README's ``python tools/train.py`` works in a
checkout). Every command prints a user error as one line on stderr and exits with status 2
(:mod:`reid.cli.common`); ``--debug`` shows the traceback. Command modules are imported only when
their command runs, so ``reid --help`` and ``reid --version`` are instant.
"""

from __future__ import annotations

import difflib
import importlib
import sys

from reid.cli.common import fail

# command -> (module, one-line description)
COMMANDS = {
    "train": ("reid.cli.train", "train and evaluate a model from a YAML config (bare: the main job)"),
    "eval": ("reid.cli.eval", "score features or a checkpoint: exact mAP / CMC / mINP under a named protocol"),
    "extract": ("reid.cli.extract", "features of a folder of tracklet folders with a checkpoint (one vector each)"),
    "export": ("reid.cli.export", "export a checkpoint: weights-only safetensors, ONNX or TorchScript (+ model.json)"),
    "inspect": ("reid.cli.inspect", "validate a dataset (MARS, CSV manifest, folders) and print its splits"),
    "study": ("reid.cli.study", "run a noisy-label robustness study (schemes x noise x seeds)"),
    "make-synthetic": ("reid.cli.make_synthetic", "generate the synthetic MARS-format dataset"),
    "benchmark": ("reid.cli.benchmark", "speed benchmarks (loader, losses, eval, train)"),
}

USAGE = """\
usage: reid [--version] [--help] <command> [options]

Video person re-identification with example weighting.

commands:
{commands}

examples:
  reid train                                   # the main job (synthetic MARS, CPU, a few minutes)
  reid train --config mars_resnet50 data.root=/data/MARS
  reid train --config schemes/dm --print-config
  reid eval --features feats.npz --protocol official --json
  reid extract --checkpoint runs/x/best.pt --input tracklets/ --out feats.npz
  reid inspect --root /data/MARS
  reid study --config study_smoke

`reid <command> --help` explains a command. Every user error prints one line on stderr and exits
with status 2; add --debug to see the traceback.
"""


def version() -> str:
    """``reid.__version__``, or the installed distribution's version."""
    import reid

    found = getattr(reid, "__version__", None)
    if found:
        return str(found)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("reid")
    except PackageNotFoundError:
        return "unknown"


def usage() -> str:
    width = max(map(len, COMMANDS)) + 2
    return USAGE.format(commands="\n".join(f"  {name:<{width}}{text}" for name, (_, text) in COMMANDS.items()))


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"reid {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return fail(f"unknown command '{name}' (commands: {', '.join(COMMANDS)}; reid --help).{hint}")
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest, prog=f"reid {name}") or 0)


__all__ = ["COMMANDS", "main", "usage", "version"]
