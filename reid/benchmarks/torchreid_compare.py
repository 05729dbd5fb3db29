"""Training throughput against torchreid (0.2.5), the same recipe on the same generated data, same run.

Optional: torchreid is not a dependency. Without it the benchmark prints one line saying how to
install it and exits 0 (``pip install torchreid==0.2.5``; its package imports ``gdown``, a
Google-Drive downloader used only to fetch weights and one image dataset: when only that is
missing a placeholder module stands in, since nothing here downloads).

Both sides train ResNet-18 from scratch at 128x64 on 2-frame clips, batches of 32 clips = 8
identities x 4 tracklets, with the data pipeline included (decode, clip sampling, augmentation,
collation, ``num_workers=0`` on both sides), CPU:

* ``reid``: the production :meth:`reid.engine.trainer.Trainer.run_step` on batches of its
  training DataLoader, with the config of a recipe (:data:`reid.benchmarks.train.RECIPES`) plus
  any ``key=value`` overrides (e.g. ``train.channels_last=true optim.impl=fused``);
* ``torchreid``: ``VideoTripletEngine.forward_backward`` (its training step: frame-level CE +
  batch-hard triplet, margin 0.3, ``loss.backward()``, ``optimizer.step()``) on batches of its
  ``VideoDataManager`` reading the same folder through its own ``Mars`` dataset class
  (``RandomIdentitySampler`` 8 x 4, ``sample_method='random'``, ``seq_len=2``, flip + random
  crop + random erasing), ResNet-18 with the recipe's last stride, Adam lr 1e-3.

Recipes: ``matched`` (last stride 2, no BNNeck, linear classifier, plain CE + triplet: torchreid's
model in our config) against torchreid at last stride 2; ``default`` (the main job's config:
last stride 1, BNNeck, cosine head, IMAE + triplet) against torchreid at last stride 1.

Steps alternate between the two sides (which goes first alternates too), so load from other
processes hits both alike. ``torch.use_deterministic_algorithms`` is global in torch: it is set
to each side's own setting before that side's step (our config's ``train.deterministic`` for
reid, off for torchreid, which never sets it). Reported: median s/step (data included),
clips/s, CPU s/step (all threads), and ``ratio = reid clips/s / torchreid clips/s``. Goals (issue
14): matched >= 1.3, default >= 1.0.

    python tools/benchmark.py torchreid_compare --recipes matched,default --steps 8
    python tools/benchmark.py torchreid_compare --recipes matched train.channels_last=true
    python tools/benchmark.py torchreid_compare --variants "train.fill_uninitialized_memory=true; ; train.channels_last=true"

``--variants`` times several reid configurations against the same torchreid run (each its own
trainer, all in the alternation): a before/after in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from reid.configs import config_path

INSTALL_HINT = ("torchreid_compare: skipped, torchreid is not installed "
                "(pip install torchreid==0.2.5; a cached sdist: pip install --no-deps torchreid-0.2.5.tar.gz)")
GOALS = {"matched": 1.3, "default": 1.0}


def import_torchreid():
    """The ``torchreid`` package, or None when it cannot be imported."""
    try:
        if importlib.util.find_spec("torchreid") is None:
            return None
    except (ImportError, ValueError):  # a None entry in sys.modules, a broken install
        return None
    if importlib.util.find_spec("gdown") is None and "gdown" not in sys.modules:
        # torchreid's __init__ imports its weight downloader's dependency; nothing here downloads
        placeholder = types.ModuleType("gdown")

        def download(*_args, **_kwargs):
            raise RuntimeError("gdown is not installed (a placeholder stands in for torchreid_compare)")

        placeholder.download = download
        sys.modules["gdown"] = placeholder
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its Cython-evaluation warning
            import torchreid
    except ImportError:
        return None
    return torchreid


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/benchmark.py torchreid_compare",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python tools/benchmark.py torchreid_compare --steps 8\n"
               "  python tools/benchmark.py torchreid_compare --recipes matched train.channels_last=true",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipes", default="matched,default", help="comma-separated: matched, default")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per side and recipe (after warm-up)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    parser.add_argument("--data", type=Path, default=None,
                        help="a MARS-layout folder (default: the embedded synthetic dataset, generated once)")
    parser.add_argument("--ids", type=int, default=None,
                        help="generate a synthetic dataset with this many training (and test) ids instead")
    parser.add_argument("--variants", default=None,
                        help="reid variants timed in the same loop, ';'-separated override lists, e.g. "
                             "\"; train.channels_last=true; optim.impl=fused\" (an empty one = as configured)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides of the reid side")
    return parser


def _dataset(args, tmp: Path) -> Path:
    from reid.data.synthetic import ensure_synthetic_mars

    if args.data is not None:
        return args.data.resolve()
    if args.ids is not None:
        return ensure_synthetic_mars(tmp / "generated", ids_train=args.ids, ids_test=args.ids, progress=False)
    return ensure_synthetic_mars(progress=False)


def _cycle(make_iterable):
    epoch = 0
    while True:
        yield from make_iterable(epoch)
        epoch += 1


def _reid_side(recipe: str, overrides: list[str], root: Path, tmp: Path):
    from reid.benchmarks.train import RECIPES
    from reid.engine.config import load_config
    from reid.engine.trainer import Trainer

    cfg = load_config(config_path("default"), [
        *RECIPES[recipe], *overrides, f"data.root={root}", "model.pretrained=null",
        f"output_dir={tmp / ('reid-' + recipe)}", "train.progress=false", "train.device=cpu"])
    trainer = Trainer(cfg)
    trainer.setup()
    trainer.ddp_model.train()
    batches = _cycle(trainer.train_loader)

    def mode():
        torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = cfg.train.fill_uninitialized_memory

    def step() -> int:
        batch = next(batches)
        trainer.run_step(batch)
        return int(batch["frames"].shape[0])

    return cfg, mode, step


def _torchreid_side(torchreid, root: Path, tmp: Path, last_stride: int, batch: int, instances: int,
                    height: int, width: int, clip_length: int):
    from torchreid.reid.models.resnet import BasicBlock, ResNet

    link = tmp / "torchreid-root" / "mars"  # torchreid's Mars reads <root>/mars
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(root, target_is_directory=True)
    with contextlib.redirect_stdout(io.StringIO()):  # its dataset summaries
        dm = torchreid.data.VideoDataManager(
            root=str(link.parent), sources="mars", height=height, width=width,
            transforms=["random_flip", "random_crop", "random_erase"], use_gpu=False,
            batch_size_train=batch, batch_size_test=batch, workers=0, num_instances=instances,
            train_sampler="RandomIdentitySampler", seq_len=clip_length, sample_method="random")
    # resnet18() fixes last_stride=2; the class takes any (the layers of torchreid's resnet18)
    model = ResNet(num_classes=dm.num_train_pids, loss="triplet", block=BasicBlock, layers=[2, 2, 2, 2],
                   last_stride=last_stride, fc_dims=None, dropout_p=None)
    optimizer = torchreid.optim.build_optimizer(model, optim="adam", lr=1e-3)
    engine = torchreid.engine.VideoTripletEngine(dm, model, optimizer, margin=0.3, use_gpu=False,
                                                 label_smooth=False)
    model.train()
    batches = _cycle(lambda _epoch: dm.train_loader)

    def mode():
        torch.use_deterministic_algorithms(False)

    def step() -> int:
        data = next(batches)
        engine.forward_backward(data)
        return int(data["img"].shape[0])

    return mode, step


def compare(torchreid, recipe: str, variants: list[list[str]], root: Path, tmp: Path, steps: int,
            warmup: int) -> dict:
    """One recipe: torchreid and each reid variant (a list of config overrides), steps alternating."""
    reid_sides = [_reid_side(recipe, overrides, root, tmp / f"v{i}") for i, overrides in enumerate(variants)]
    cfg = reid_sides[0][0]
    tr_mode, tr_step = _torchreid_side(torchreid, root, tmp, cfg.model.last_stride, cfg.data.p * cfg.data.k,
                                       cfg.data.k, cfg.data.height, cfg.data.width, cfg.data.clip_length)
    sides = {"torchreid": (tr_mode, tr_step)}
    sides.update({f"reid:{i}": (mode, step) for i, (_, mode, step) in enumerate(reid_sides)})
    names = list(sides)
    times = {name: {"wall": [], "cpu": [], "clips": 0} for name in sides}
    for i in range(warmup + steps):
        order = names if i % 2 == 0 else names[::-1]  # alternate who goes first
        for name in order:
            mode, step = sides[name]
            mode()
            t0, c0 = time.perf_counter(), time.process_time()
            clips = step()
            t1, c1 = time.perf_counter(), time.process_time()
            if i >= warmup:
                times[name]["wall"].append(t1 - t0)
                times[name]["cpu"].append(c1 - c0)
                times[name]["clips"] = clips
    reid_sides[0][1]()  # leave torch's global mode as our trainer set it

    def summary(name: str) -> dict:
        t = times[name]
        wall = statistics.median(t["wall"])
        return {"clips_per_step": t["clips"], "s_per_step": wall, "clips_per_s": t["clips"] / wall,
                "cpu_s_per_step": statistics.median(t["cpu"])}

    tr = summary("torchreid")
    rows = []
    for i, overrides in enumerate(variants):
        r = summary(f"reid:{i}")
        rows.append({"overrides": overrides, **r, "ratio": r["clips_per_s"] / tr["clips_per_s"],
                     "cpu_ratio": tr["cpu_s_per_step"] / r["cpu_s_per_step"]})
    return {"recipe": recipe, "last_stride": cfg.model.last_stride, "steps": steps, "torchreid": tr, "reid": rows,
            "goal": GOALS.get(recipe)}


def _variants(text: str | None, common: list[str]) -> list[list[str]]:
    """``"a=1 b=2; c=3"`` -> ``[common + [a=1, b=2], common + [c=3]]``; an empty entry = ``common``."""
    if not text:
        return [list(common)]
    return [list(common) + part.split() for part in text.split(";")]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torchreid = import_torchreid()
    if torchreid is None:
        print(INSTALL_HINT)
        return 0
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = sorted(set(recipes) - set(GOALS))
    if unknown:
        raise SystemExit(f"torchreid_compare: unknown recipe(s) {unknown}; choices: {sorted(GOALS)}")
    variants = _variants(args.variants, list(args.overrides))
    results = []
    with tempfile.TemporaryDirectory(prefix="reid-bench-torchreid-") as tmp_name:
        tmp = Path(tmp_name)
        root = _dataset(args, tmp)
        for recipe in recipes:
            results.append(compare(torchreid, recipe, variants, root, tmp / recipe, args.steps, args.warmup))
    print(f"training throughput vs torchreid {getattr(torchreid, '__version__', '?')}, CPU, torch threads "
          f"{torch.get_num_threads()}, median of {args.steps} alternating steps, data included; data {root}")
    header = (f"{'recipe':<9}{'stride':>7}{'side':<4} {'s/step':>8}{'clips/s':>9}{'cpu-s':>8}{'ratio':>8}"
              f"{'cpu ratio':>11}{'goal':>7}  reid overrides")
    print(header)
    print("-" * len(header))
    for r in results:
        tr = r["torchreid"]
        print(f"{r['recipe']:<9}{r['last_stride']:>7}{'tr':<4} {tr['s_per_step']:>8.3f}{tr['clips_per_s']:>9.2f}"
              f"{tr['cpu_s_per_step']:>8.2f}{1.0:>8.3f}{1.0:>11.3f}{'':>7}  (torchreid)")
        goal = "-" if r["goal"] is None else f">={r['goal']:.1f}"
        for v in r["reid"]:
            print(f"{r['recipe']:<9}{r['last_stride']:>7}{'reid':<4} {v['s_per_step']:>8.3f}{v['clips_per_s']:>9.2f}"
                  f"{v['cpu_s_per_step']:>8.2f}{v['ratio']:>8.3f}{v['cpu_ratio']:>11.3f}{goal:>7}  "
                  f"{' '.join(v['overrides']) or '(config as is)'}")
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
