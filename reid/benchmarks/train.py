"""Training-step benchmark: the real data pipeline against pre-loaded tensors, same run.

For each backbone the production :meth:`reid.engine.trainer.Trainer.run_step` (forward,
weighted losses, backward, clip, optimiser and schedule step) is timed twice on the same batches:

* ``pipeline``: batches come from the training DataLoader (JPEG decode, clip sampling,
  augmentation, collation, in ``data.num_workers`` workers) -- what ``fit`` does;
* ``preloaded``: the same batches were collected beforehand, so only the step is timed
  (model-only baseline).

``ratio = pipeline / preloaded`` is the data pipeline's overhead on a training step (goal
``<= 1.15`` at the default config); ``clips/s`` is the pipeline throughput (clips = tracklet clips
of ``data.clip_length`` frames). Both are measured in the same process, alternating step by step
after warm-up (so other processes' load hits both alike), and reported as medians. CPU seconds per
step (``time.process_time``, all threads) are printed too: on a shared machine they are a steadier
measure of cost than wall time.

    python tools/benchmark.py train                       # default config, resnet18 and resnet50
    python tools/benchmark.py train --steps 8 --backbones resnet18 data.num_workers=2
    python tools/benchmark.py train --profile --recipe matched --backbones resnet18   # phase shares

``--profile`` times the phases of the production step instead (data, input, backbone, head,
losses, backward, optimiser, the rest: :mod:`reid.benchmarks.train_profile`). ``--recipe``:
``default`` (the main job's config) or ``matched`` (:data:`RECIPES`: the recipe the torchreid
comparison trains in both libraries, :mod:`reid.benchmarks.torchreid_compare`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from reid.configs import config_path  # the shipped configs, checkout or installed


# config overrides per recipe; ``matched``: torchreid's ResNet-18 video-triplet recipe expressed in
# our config (last stride 2, no BNNeck, linear classifier, plain CE + batch-hard triplet 0.3, Adam)
RECIPES: dict[str, list[str]] = {
    "default": [],
    "matched": ["model.last_stride=2", "model.bnneck=false", "model.classifier=linear", "loss.id.scheme=cce",
                "loss.metric.name=triplet", "optim.name=adam", "optim.lr=0.001"],
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/benchmark.py train",
        description=__doc__.split("\n\n")[0] + " Prints a table (and JSON with --json).",
        epilog="examples:\n  python tools/benchmark.py train\n"
               "  python tools/benchmark.py train --steps 8 --backbones resnet18 data.num_workers=2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=config_path("default"))
    parser.add_argument("--backbones", default="resnet18,resnet50", help="comma-separated backbones")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per mode (after warm-up)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                        help="default config, or the recipe matched to torchreid's (overrides come first)")
    parser.add_argument("--profile", action="store_true", help="phase shares of the production step instead")
    parser.add_argument("--ops", type=int, default=0, help="with --profile: torch.profiler's top-N operators")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def _time_backbone(cfg, steps: int, warmup: int) -> dict:
    from reid.engine.trainer import Trainer

    trainer = Trainer(cfg)
    trainer.setup()
    trainer.ddp_model.train()
    needed = warmup + steps

    def batches_forever():
        epoch = 0
        while True:  # cycle epochs when one epoch has fewer batches than needed
            yield from trainer.train_loader(epoch)
            epoch += 1

    # the model-only baseline's batches, loaded up front (a different epoch than the timed one)
    preload_source = iter(trainer.train_loader(10_000))
    batches = [next(preload_source) for _ in range(min(needed, trainer.iters_per_epoch))]
    batches = [batches[i % len(batches)] for i in range(needed)]
    pipeline = batches_forever()
    # interleave the two modes step by step so that load from other processes hits both alike
    pipeline_times, pipeline_cpu, preloaded_times, preloaded_cpu = [], [], [], []
    for i in range(needed):
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.run_step(next(pipeline))
        t1, c1 = time.perf_counter(), time.process_time()
        trainer.run_step(batches[i])
        t2, c2 = time.perf_counter(), time.process_time()
        if i >= warmup:
            pipeline_times.append(t1 - t0)
            pipeline_cpu.append(c1 - c0)
            preloaded_times.append(t2 - t1)
            preloaded_cpu.append(c2 - c1)
    clips = batches[0]["frames"].shape[0]
    pipe, pre = statistics.median(pipeline_times), statistics.median(preloaded_times)
    return {
        "backbone": cfg.model.backbone,
        "clips_per_step": clips,
        "frames_per_clip": int(batches[0]["frames"].shape[1]),
        "pipeline_s_per_step": pipe,
        "preloaded_s_per_step": pre,
        "ratio": pipe / pre,
        "pipeline_clips_per_s": clips / pipe,
        "preloaded_clips_per_s": clips / pre,
        # CPU seconds (all threads) per step: robust to other processes sharing the cores
        "pipeline_cpu_s_per_step": statistics.median(pipeline_cpu),
        "preloaded_cpu_s_per_step": statistics.median(preloaded_cpu),
        "cpu_ratio": statistics.median(pipeline_cpu) / statistics.median(preloaded_cpu),
    }


def _profile(cfg, args) -> dict:
    from reid.benchmarks.train_profile import profile_trainer
    from reid.engine.trainer import Trainer

    trainer = Trainer(cfg)
    trainer.setup()
    return {"backbone": cfg.model.backbone, **profile_trainer(trainer, args.steps, args.warmup, args.ops)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from reid.engine.config import load_config

    results = []
    with tempfile.TemporaryDirectory(prefix="reid-bench-train-") as tmp:
        for backbone in [b.strip() for b in args.backbones.split(",") if b.strip()]:
            cfg = load_config(args.config, [
                *RECIPES[args.recipe], *args.overrides, f"model.backbone={backbone}", "model.pretrained=null",
                f"output_dir={tmp}/{backbone}", "train.progress=false", "train.device=cpu",
            ])
            results.append(_profile(cfg, args) if args.profile else _time_backbone(cfg, args.steps, args.warmup))
    threads = torch.get_num_threads()
    if args.profile:
        from reid.benchmarks.train_profile import format_profile

        print(f"training step phases, recipe {args.recipe}, config {args.config.name} {' '.join(args.overrides)}, "
              f"CPU, torch threads {threads}")
        for r in results:
            print(format_profile(r["backbone"], r))
        if args.json:
            print(json.dumps({"threads": threads, "results": [{k: v for k, v in r.items() if k != "ops_table"}
                                                               for r in results]}, indent=2))
        return 0
    print(f"training step, config {args.config.name} {' '.join(args.overrides)}, CPU, torch threads {threads}, "
          f"median of {args.steps} steps")
    header = (f"{'backbone':<10}{'clips/step':>11}{'pipeline s':>12}{'preloaded s':>13}{'ratio':>8}{'clips/s':>9}"
              f"{'pipe cpu-s':>12}{'pre cpu-s':>11}{'cpu ratio':>11}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['backbone']:<10}{r['clips_per_step']:>11}{r['pipeline_s_per_step']:>12.3f}"
              f"{r['preloaded_s_per_step']:>13.3f}{r['ratio']:>8.3f}{r['pipeline_clips_per_s']:>9.2f}"
              f"{r['pipeline_cpu_s_per_step']:>12.3f}{r['preloaded_cpu_s_per_step']:>11.3f}{r['cpu_ratio']:>11.3f}")
    if args.json:
        print(json.dumps({"threads": threads, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
