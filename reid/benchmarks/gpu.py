"""GPU benchmark: every GPU measurement of the project in one run (issue 14, goal 7).

Writes ``gpu_benchmark.json`` and ``gpu_benchmark.md`` (a markdown table) into ``--out``:

* **kNN**: :func:`reid.eval.knn.knn_search` (exact ``IndexFlatIP``, cosine, k = 100) over a
  random gallery, faiss on the GPU against faiss on the CPU, same features, same run
  (``speed-up = cpu s / gpu s``, end to end: normalisation, index build, host <-> device copies;
  the two rankings' top-1 agreement is reported too; faiss's GPU memory is not in torch's peak);
* **training**: clips/s of the production :meth:`reid.engine.trainer.Trainer.run_step` on
  batches of the synthetic dataset collected beforehand (the model-only cost, as the
  ``preloaded`` column of ``reid/benchmarks/train.py``), for ``fp32``, ``bf16`` autocast
  (``train.amp=bf16``), both NCHW, and ``channels_last`` (``train.channels_last=true``);
* **extraction**: frames/s of :func:`reid.eval.extract.extract_features` over every frame of the
  test tracklets (float32 and ``amp=True``, i.e. bf16 autocast);
* **peak GPU memory** of each (``torch.cuda.max_memory_allocated``, reset before each).

Full size (a CUDA device, budget < 5 min on one GPU): G = 1,000,000, Q = 10,000, D = 256;
ResNet-50 at 256x128, T = 4, P x K = 8 x 4. Without a CUDA device, or with ``--dry-run``, the
same code paths run on the CPU at tiny sizes (G = 2,000, ResNet-18 at 64x32, 2 timed steps, a
tiny synthetic dataset) so CI keeps the script working; what needs a GPU-only feature (faiss
GPU, bf16 autocast, GPU memory) is reported as ``skipped: <reason>``. Each mode runs in its own
block on one device (a GPU run has the device to itself); the GPU is synchronised around each
timing.

    python tools/benchmark.py gpu --out runs/benchmark-gpu      # on a machine with a GPU
    python tools/benchmark.py gpu --dry-run --out /tmp/gpu-dry  # CPU, tiny sizes, < 60 s
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from reid.configs import config_path  # the shipped configs, checkout or installed

FULL = {"gallery": 1_000_000, "queries": 10_000, "dim": 256, "k": 100, "backbone": "resnet50",
        "height": 256, "width": 128, "clip_length": 4, "p": 8, "k_per_id": 4, "steps": 10, "warmup": 3,
        "num_workers": 8}
DRY = {"gallery": 2_000, "queries": 100, "dim": 256, "k": 100, "backbone": "resnet18",
       "height": 64, "width": 32, "clip_length": 2, "p": 4, "k_per_id": 2, "steps": 2, "warmup": 1,
       "num_workers": 0}
# fp32 and bf16 in NCHW, so that channels_last (the config default since issue 14) is measured against them
TRAIN_MODES = {"fp32": ["train.channels_last=false"], "bf16": ["train.amp=bf16", "train.channels_last=false"],
               "channels_last": ["train.channels_last=true"]}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/benchmark.py gpu",
        description=__doc__.split("\n\n")[0] + " Writes JSON + markdown into --out.",
        epilog="examples:\n  python tools/benchmark.py gpu --out runs/benchmark-gpu\n"
               "  python tools/benchmark.py gpu --dry-run --out /tmp/gpu-dry",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU at tiny sizes (automatic when no CUDA device is visible)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default runs/benchmark-gpu-<timestamp>)")
    parser.add_argument("--json", action="store_true", help="print the JSON too")
    return parser


class DeviceClock:
    """Wall time of a block, the GPU synchronised at both ends so queued kernels are counted."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | str:
    if device.type != "cuda":
        return "skipped: no CUDA device (CPU run)"
    return torch.cuda.max_memory_allocated(device) / 2**20


# ---------------------------------------------------------------------------- kNN
def _faiss_gpu_skip_reason() -> str | None:
    import faiss

    from reid.eval.knn import faiss_uses_gpu

    if faiss_uses_gpu():
        return None
    if not hasattr(faiss, "StandardGpuResources"):
        return (f"the installed faiss {getattr(faiss, '__version__', '?')} is a CPU-only build "
                "(install faiss-gpu: README, GPU)")
    return "faiss sees no GPU (faiss.get_num_gpus() = 0)"


def bench_knn(size: dict) -> dict:
    """faiss-cpu vs faiss-gpu exact kNN (``knn_search``, cosine) on the same random features."""
    from reid.eval.knn import knn_search

    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((size["gallery"], size["dim"]), dtype=np.float32)
    query = rng.standard_normal((size["queries"], size["dim"]), dtype=np.float32)
    k = min(size["k"], size["gallery"])
    result = {"gallery": size["gallery"], "queries": size["queries"], "dim": size["dim"], "k": k,
              "index": "IndexFlatIP (exact, cosine)"}
    t0 = time.perf_counter()
    _, cpu_idx = knn_search(query, gallery, k, use_gpu=False)
    result["cpu_s"] = time.perf_counter() - t0
    reason = _faiss_gpu_skip_reason()
    if reason is not None:
        result.update(gpu_s=f"skipped: {reason}", speedup=f"skipped: {reason}")
        return result
    knn_search(query[:10], gallery[:1000], k, use_gpu=True)  # CUDA context and cuBLAS warm-up
    t0 = time.perf_counter()
    _, gpu_idx = knn_search(query, gallery, k, use_gpu=True)  # returns host arrays: synchronised
    result["gpu_s"] = time.perf_counter() - t0
    result["speedup"] = result["cpu_s"] / result["gpu_s"]
    result["top1_agreement"] = float(np.mean(cpu_idx[:, 0] == gpu_idx[:, 0]))
    return result


# ---------------------------------------------------------------------------- training
def _config(size: dict, device: str, out: Path, data_root: Path | None, extra: list[str]):
    from reid.engine.config import load_config

    overrides = [
        f"model.backbone={size['backbone']}", "model.pretrained=null",
        f"data.height={size['height']}", f"data.width={size['width']}", f"data.clip_length={size['clip_length']}",
        f"data.p={size['p']}", f"data.k={size['k_per_id']}", f"data.num_workers={size['num_workers']}",
        f"train.device={device}", "train.progress=false", f"output_dir={out}",
    ]
    if data_root is not None:
        overrides.append(f"data.root={data_root}")
    return load_config(config_path("default"), [*overrides, *extra])


def bench_train_mode(size: dict, device: torch.device, mode: str, out: Path, data_root: Path | None) -> dict:
    """Clips/s of ``Trainer.run_step`` on pre-collected batches for one mode."""
    from reid.engine.trainer import Trainer

    if mode == "bf16" and device.type != "cuda":
        return {"mode": mode, "skipped": "bf16 autocast is CUDA-only in the trainer (train.amp is ignored on CPU)"}
    cfg = _config(size, device.type, out / f"train-{mode}", data_root, TRAIN_MODES[mode])
    trainer = Trainer(cfg)
    trainer.setup()
    try:
        trainer.ddp_model.train()
        needed = size["warmup"] + size["steps"]
        source = iter(trainer.train_loader(0))
        batches = [next(source) for _ in range(min(needed, trainer.iters_per_epoch))]
        del source
        clock = DeviceClock(device)
        times = []
        for i in range(needed):
            if i == size["warmup"]:
                _reset_peak(device)  # peak of the steady state, after cudnn autotuning
            t0 = clock.now()
            trainer.run_step(batches[i % len(batches)])
            t1 = clock.now()
            if i >= size["warmup"]:
                times.append(t1 - t0)
        clips = int(batches[0]["frames"].shape[0])
        step = statistics.median(times)
        return {"mode": mode, "clips_per_step": clips, "frames_per_clip": int(batches[0]["frames"].shape[1]),
                "s_per_step": step, "clips_per_s": clips / step, "peak_mib": _peak_mib(device),
                "steps": len(times), "model": trainer.model, "data": trainer.data}
    finally:
        trainer.teardown()


# ---------------------------------------------------------------------------- extraction
def bench_extract(model, data, size: dict, device: torch.device, amp: bool) -> dict:
    """Frames/s of ``extract_features`` over every frame of the distinct test tracklets (decode in
    ``num_workers`` DataLoader workers included: the path evaluation takes)."""
    from reid.data.transforms import build_clip_transform
    from reid.eval.extract import extract_features

    name = "bf16" if amp else "fp32"
    if amp and device.type != "cuda":
        return {"mode": name, "skipped": "bf16 autocast in extract_features is CUDA-only (amp=True is ignored on CPU)"}
    # each distinct tracklet once, as extract_query_gallery does (official: queries are in the gallery)
    tracklets = list({t.frames: t for t in [*data.query, *data.gallery]}.values())
    transform = build_clip_transform(False, size["height"], size["width"])
    frames = sum(len(t) for t in tracklets)
    kwargs = {"device": device, "chunk": 128 if device.type == "cuda" else 32, "num_workers": size["num_workers"],
              "progress": False, "amp": amp}
    extract_features(model, tracklets[:4], transform, **kwargs)  # warm-up: workers, cudnn
    clock = DeviceClock(device)
    _reset_peak(device)
    t0 = clock.now()
    extract_features(model, tracklets, transform, **kwargs)
    seconds = clock.now() - t0
    return {"mode": name, "tracklets": len(tracklets), "frames": frames, "s": seconds,
            "frames_per_s": frames / seconds, "peak_mib": _peak_mib(device)}


# ---------------------------------------------------------------------------- report
def _fmt(value, spec: str) -> str:
    return value if isinstance(value, str) else format(value, spec)


def markdown(report: dict) -> str:
    """The report as a markdown document (one table per measurement)."""
    env, knn = report["environment"], report["knn"]
    lines = [f"# GPU benchmark ({report['kind']})", "", f"- {report['note']}",
             f"- device: {env['device']}; torch {env['torch']}; faiss {env['faiss']}; {env['date']}",
             f"- command: `{report['command']}`", "",
             f"## kNN: Q = {knn['queries']:,}, G = {knn['gallery']:,}, D = {knn['dim']}, k = {knn['k']}, {knn['index']}",
             "", "| faiss-cpu s | faiss-gpu s | speed-up (cpu / gpu) | top-1 agreement |", "|---|---|---|---|",
             f"| {knn['cpu_s']:.3f} | {_fmt(knn['gpu_s'], '.3f')} "
             f"| {'-' if isinstance(knn['speedup'], str) else format(knn['speedup'], '.1f')} "
             f"| {_fmt(knn.get('top1_agreement', '-'), '.4f')} |", ""]
    size = report["sizes"]
    lines += [f"## Training: {size['backbone']} at {size['height']}x{size['width']}, T = {size['clip_length']}, "
              f"P x K = {size['p']} x {size['k_per_id']}, Trainer.run_step (median of {size['steps']} steps)", "",
              "| mode | s/step | clips/s | vs fp32 | peak GPU MiB |", "|---|---|---|---|---|"]
    fp32 = next((r for r in report["train"] if r["mode"] == "fp32" and "skipped" not in r), None)
    for r in report["train"]:
        if "skipped" in r:
            lines.append(f"| {r['mode']} | skipped: {r['skipped']} | | | |")
            continue
        ratio = r["clips_per_s"] / fp32["clips_per_s"] if fp32 else "-"
        lines.append(f"| {r['mode']} | {r['s_per_step']:.4f} | {r['clips_per_s']:.1f} | {_fmt(ratio, '.2f')} "
                     f"| {_fmt(r['peak_mib'], '.0f')} |")
    lines += ["", "## Extraction: extract_features, every frame of the test tracklets", "",
              "| mode | tracklets | frames | s | frames/s | peak GPU MiB |", "|---|---|---|---|---|---|"]
    for r in report["extract"]:
        if "skipped" in r:
            lines.append(f"| {r['mode']} | skipped: {r['skipped']} | | | | |")
            continue
        lines.append(f"| {r['mode']} | {r['tracklets']} | {r['frames']} | {r['s']:.3f} | {r['frames_per_s']:.1f} "
                     f"| {_fmt(r['peak_mib'], '.0f')} |")
    lines += ["", f"total wall time: {report['total_s']:.1f} s", ""]
    return "\n".join(lines)


def _environment(device: torch.device) -> dict:
    import faiss

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} torch threads)"
    return {"device": name, "torch": torch.__version__, "faiss": getattr(faiss, "__version__", "?"),
            "date": datetime.now().isoformat(timespec="seconds")}


def run(dry_run: bool, out: Path, argv: list[str]) -> dict:
    """Every measurement; returns the report (also written as JSON + markdown into ``out``)."""
    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    dry = dry_run or not cuda
    device = torch.device("cpu" if dry else "cuda")
    size = DRY if dry else FULL
    kind = "dry run, CPU, tiny sizes" if dry else "full size, GPU"
    note = ("dry run: " + ("--dry-run given" if dry_run else "no CUDA device visible")
            + "; the figures check the code paths, they are not GPU measurements") if dry else \
        "full size on one GPU"
    out.mkdir(parents=True, exist_ok=True)
    report = {"kind": kind, "dry_run": dry, "note": note, "command": "python tools/benchmark.py gpu " + " ".join(argv),
              "environment": _environment(device), "sizes": size, "knn": bench_knn(size)}
    with tempfile.TemporaryDirectory(prefix="reid-bench-gpu-") as tmp:
        data_root = None  # full size: the embedded synthetic dataset (datasets/synthetic_mars)
        if dry:
            from reid.data.synthetic import make_synthetic_mars

            data_root = make_synthetic_mars(Path(tmp) / "mars", ids_train=6, ids_test=6, cameras=3, seed=0,
                                            tiny=True, progress=False)
        report["train"], trained = [], {}
        for mode in TRAIN_MODES:
            result = bench_train_mode(size, device, mode, Path(tmp), data_root)
            model_and_data = {"model": result.pop("model", None), "data": result.pop("data", None)}
            if mode == "fp32":  # its model (after the timed steps) and test data serve the extraction
                trained = model_and_data
            report["train"].append(result)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        model, data = trained["model"], trained["data"]
        report["extract"] = [bench_extract(model, data, size, device, amp) for amp in (False, True)]
    report["total_s"] = time.perf_counter() - started
    (out / "gpu_benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_benchmark.md").write_text(markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    out = args.out or Path("runs") / f"benchmark-gpu-{datetime.now():%Y%m%d-%H%M%S}"
    report = run(args.dry_run, out, argv)
    print(markdown(report))
    print(f"wrote {out / 'gpu_benchmark.json'} and {out / 'gpu_benchmark.md'}")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
