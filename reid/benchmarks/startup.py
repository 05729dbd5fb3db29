"""Start-up benchmark of the evaluation command: a small ``tools/eval.py --features`` run (50
queries x 500 gallery, an npz generated here) timed end to end in a fresh subprocess, against
yardsticks timed in the same run, interleaved (A, B, C, ... A, B, C, ...) so that a drift in the
machine's speed hits every command alike:

  python   ``python -c pass``            the interpreter alone
  numpy    ``python -c "import numpy"``  the floor of any numpy program
  torch    ``python -c "import torch"``  what importing torch costs by itself

  python tools/benchmark.py startup                 # 5 runs each, min / median
  python tools/benchmark.py startup --runs 9 --json

It also reports which heavy modules (torch, faiss, matplotlib, scipy, ...) the command's process
had imported when it finished (``sys.modules``, read in the same kind of subprocess), since
start-up is what dominates such a run: scoring 50 x 500 takes milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEAVY_MODULES = ("torch", "faiss", "matplotlib", "scipy", "pydantic", "cv2", "timm", "yaml", "tqdm")
# the checkout's wrapper when there is one (the README's command); else the console module
_TOOLS_EVAL = Path(__file__).resolve().parents[2] / "tools" / "eval.py"


def write_small_features(path: Path, num_query: int = 50, num_gallery: int = 500, dim: int = 256,
                         seed: int = 0) -> Path:
    """An npz in ``tools/eval.py --features`` format: random features, 100 ids, 4 cameras; each
    query is a gallery item's id seen from another camera (so most queries have a valid match)."""
    rng = np.random.default_rng(seed)
    gallery_pids = rng.integers(0, 100, num_gallery)
    gallery_camids = rng.integers(0, 4, num_gallery)
    source = rng.choice(num_gallery, num_query, replace=False)
    np.savez(path, query_feats=rng.standard_normal((num_query, dim)).astype(np.float32),
             gallery_feats=rng.standard_normal((num_gallery, dim)).astype(np.float32),
             query_pids=gallery_pids[source], query_camids=(gallery_camids[source] + 1) % 4,
             gallery_pids=gallery_pids, gallery_camids=gallery_camids)
    return path


def eval_command(features: Path) -> list[str]:
    """The measured command: ``tools/eval.py --features F --protocol official --json``."""
    entry = [str(_TOOLS_EVAL)] if _TOOLS_EVAL.is_file() else ["-m", "reid.cli", "eval"]
    return [sys.executable, *entry, "--features", str(features), "--protocol", "official", "--json"]


def imported_heavy_modules(command: list[str]) -> list[str]:
    """The modules of :data:`HEAVY_MODULES` that ``command`` (a ``python SCRIPT args`` or
    ``python -m MODULE args`` line) has imported when its ``main`` returns."""
    probe = ("import runpy, sys\n"
             "argv = sys.argv[1:]\n"
             "if argv[0] == '-m':\n"
             "    sys.argv = [argv[1], *argv[2:]]; run = lambda: runpy.run_module(argv[1], run_name='__main__')\n"
             "else:\n"
             "    sys.argv = argv; run = lambda: runpy.run_path(argv[0], run_name='__main__')\n"
             "try:\n    run()\nexcept SystemExit:\n    pass\n"
             f"print('HEAVY', *[m for m in {HEAVY_MODULES!r} if m in sys.modules])\n")
    out = subprocess.run([command[0], "-c", probe, *command[1:]], capture_output=True, text=True, check=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("HEAVY")][-1]
    return line.split()[1:]


def time_commands(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Wall seconds of each command, ``runs`` times, interleaved, after one untimed warm-up each
    (so the file cache holds the modules for every command alike)."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for attempt in range(runs + 1):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            if attempt:  # attempt 0 is the warm-up
                walls[name].append(time.perf_counter() - start)
    return walls


def run_benchmark(runs: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        features = write_small_features(Path(tmp) / "small.npz")
        command = eval_command(features)
        commands = {"eval --features": command,
                    "python": [sys.executable, "-c", "pass"],
                    "numpy": [sys.executable, "-c", "import numpy"],
                    "torch": [sys.executable, "-c", "import torch"]}
        walls = time_commands(commands, runs)
        heavy = imported_heavy_modules(command)
    rows = {name: {"min_s": min(w), "median_s": statistics.median(w), "runs": len(w)} for name, w in walls.items()}
    target = rows["eval --features"]["median_s"]
    for row in rows.values():
        row["eval_over_this"] = target / row["median_s"]
    return {"command": " ".join(command[1:]).replace(str(features), "small.npz"), "queries": 50, "gallery": 500,
            "rows": rows, "imported_heavy_modules": heavy,
            "eval_minus_torch_import_s": target - rows["torch"]["median_s"]}


def format_table(result: dict) -> str:
    lines = [f"start-up: {result['command']}  ({result['queries']} queries x {result['gallery']} gallery)",
             f"{'command':<18}{'min s':>9}{'median s':>10}{'eval/this':>11}"]
    for name, row in result["rows"].items():
        lines.append(f"{name:<18}{row['min_s']:>9.3f}{row['median_s']:>10.3f}{row['eval_over_this']:>11.2f}")
    lines.append(f"eval median - torch-import median: {result['eval_minus_torch_import_s']:.3f} s")
    lines.append(f"heavy modules imported by the eval run: {', '.join(result['imported_heavy_modules']) or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command (after one warm-up)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: must be >= 1")
    result = run_benchmark(args.runs)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


__all__ = ["HEAVY_MODULES", "eval_command", "imported_heavy_modules", "main", "run_benchmark", "write_small_features"]
