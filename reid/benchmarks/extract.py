"""Extraction benchmark: :func:`reid.eval.extract.extract_features` vs a model-only forward over
the same frames (issue 14, goal 3: extraction >= 0.9 of the model-only frames/s).

What is compared (same tracklets, same frames, same chunking, same device, same run):

* **model-only** (baseline): the frames of the stream extraction would read
  (:class:`reid.data.frame_chunks.FrameChunks`: every frame, or ``max_frames`` evenly spaced ones
  per tracklet) decoded, normalised and put on the device *before* the clock starts, then
  ``model.encode_frames`` on each ``chunk``-frame batch (under the same autocast), device
  synchronised at the end. No decoding, no normalisation, no aggregation: the least work that
  can give those frames' features, so the ratio is conservative.
* **extraction, N workers**: ``extract_features(model, tracklets, transform, chunk=...,
  num_workers=N, max_frames=...)`` end to end (decode in N DataLoader workers -- in process for
  N = 0 -- uint8 hand-over, normalisation on the device, forward, aggregation per tracklet,
  features back on the host).

Reported per mode (all frames / ``max_frames``) and worker count: frames/s of each, ``ratio`` =
median over ``--repeats`` interleaved rounds of extraction / model-only measured in the same round,
and ``startup_s``: the time of the same call on one chunk's worth of tracklets (worker start-up,
first batch), with ``steady ratio`` = the ratio once that fixed cost is taken out.

    python tools/benchmark.py extract                        # synthetic data, resnet18 at 256x128, CPU
    python tools/benchmark.py extract --device cuda --backbone resnet50 --workers 4,8 --frames 20000 --amp
    python -m reid.benchmarks.extract ...                    # the same, without the dispatcher
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from reid.benchmarks.gpu import DeviceClock
from reid.benchmarks.loader import parse_hw
from reid.data.frame_chunks import FrameChunks
from reid.data.transforms import build_clip_transform
from reid.data.uint8_frames import normalize_frames
from reid.eval.extract import extract_features
from reid.models import build_model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="tools/benchmark.py extract", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="dataset root (default: a synthetic MARS in a temporary folder)")
    ap.add_argument("--ids", type=int, default=8, help="synthetic test identities (default 8)")
    ap.add_argument("--frame-size", default="256x128", help="synthetic frame size HxW (default 256x128)")
    ap.add_argument("--size", default="256x128", help="network input HxW (default 256x128)")
    ap.add_argument("--backbone", default="resnet18", help="backbone (default resnet18; random weights)")
    ap.add_argument("--aggregation", default="mean", help="frame aggregation (default mean)")
    ap.add_argument("--chunk", type=int, default=32, help="frames per forward (default 32, eval.chunk's default)")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts (default 0,1,2)")
    ap.add_argument("--max-frames", default="all,8", help="comma-separated modes: all and/or a frame count (default all,8)")
    ap.add_argument("--frames", type=int, default=1024, help="test frames to use, whole tracklets (default 1024)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only), both sides")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return ap.parse_args(argv)


def _tracklets(args, tmp: Path | None) -> tuple[list, str]:
    from reid.data.build import build_data

    root = args.root
    if root is None:
        from reid.data.synthetic import make_synthetic_mars

        fh, fw = parse_hw(args.frame_size, "--frame-size")
        root = str(make_synthetic_mars(tmp / "mars", ids_train=2, ids_test=args.ids, cameras=3, seed=0,
                                       height=fh, width=fw, progress=False))
    data = build_data(root, progress=False)
    distinct = list({t.frames: t for t in [*data.query, *data.gallery]}.values())
    chosen, total = [], 0
    for t in distinct:
        if total >= args.frames:
            break
        chosen.append(t)
        total += len(t.frames)
    return chosen, root if args.root else "synthetic (temporary)"


def model_only(model, batches: list[torch.Tensor], clock: DeviceClock, autocast) -> float:
    """Seconds of ``encode_frames`` over pre-loaded, normalised device batches."""
    with torch.inference_mode():
        t0 = clock.now()
        for x in batches:
            with autocast():
                model.encode_frames(x)
        return clock.now() - t0


def run_mode(model, tracklets, transform, device, args, max_frames, workers, clock, autocast) -> list[dict]:
    chunks = FrameChunks(tracklets, transform, args.chunk, max_frames=max_frames)
    batches = [normalize_frames(chunks[c]["frames"]).to(device) for c in range(len(chunks))]
    n = chunks.total_frames
    kw = dict(device=device, chunk=args.chunk, progress=False, max_frames=max_frames, amp=args.amp)
    first = tracklets[: max(1, int(chunks.completed_by(0)))]  # one chunk's worth: the fixed cost
    n_first = int(chunks.offsets[len(first)])
    model_only(model, batches, clock, autocast)  # warm-up: allocator, kernels
    rows = {w: {"mode": "all" if max_frames is None else f"max_frames={max_frames}", "workers": w, "frames": n,
                "tracklets": len(tracklets), "rounds": []} for w in workers}
    for w in workers:
        extract_features(model, first, transform, num_workers=w, **kw)  # warm-up: file cache, workers
    for _ in range(args.repeats):
        base_s = model_only(model, batches, clock, autocast)
        for w in workers:
            t0 = clock.now()
            extract_features(model, tracklets, transform, num_workers=w, **kw)
            ext_s = clock.now() - t0
            t0 = clock.now()
            extract_features(model, first, transform, num_workers=w, **kw)
            start_s = clock.now() - t0
            rows[w]["rounds"].append({"model_s": base_s, "extract_s": ext_s, "startup_s": start_s})
    out = []
    for w in workers:
        r = rows[w]
        rounds = r["rounds"]
        r["model_fps"] = max(n / x["model_s"] for x in rounds)
        r["extract_fps"] = max(n / x["extract_s"] for x in rounds)
        r["startup_s"] = float(np.median([x["startup_s"] for x in rounds]))
        r["ratio"] = float(np.median([x["model_s"] / x["extract_s"] for x in rounds]))
        # steady: the frames beyond the first call's, over the time beyond it, vs model-only
        rest = n - n_first
        r["steady_ratio"] = (float(np.median([(rest / max(x["extract_s"] - x["startup_s"], 1e-9)) / (n / x["model_s"])
                                              for x in rounds])) if rest > 0 else float("nan"))
        out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    modes = [None if m.strip() == "all" else int(m) for m in args.max_frames.split(",") if m.strip()]
    if args.repeats < 1 or args.chunk < 1 or args.frames < 1 or any(w < 0 for w in workers):
        raise SystemExit("--repeats, --chunk and --frames must be >= 1 and --workers counts >= 0")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    clock = DeviceClock(device)
    if args.amp and device.type == "cuda":
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        from contextlib import nullcontext as autocast
    height, width = parse_hw(args.size, "--size")
    tmp = Path(tempfile.mkdtemp(prefix="reid-extract-bench-")) if args.root is None else None
    try:
        tracklets, dataset = _tracklets(args, tmp)
        torch.manual_seed(0)
        model = build_model({"backbone": args.backbone, "aggregation": args.aggregation}, 2).to(device).eval()
        transform = build_clip_transform(False, height, width)
        load_before = os.getloadavg()[0]
        results = []
        for max_frames in modes:
            results += run_mode(model, tracklets, transform, device, args, max_frames, workers, clock, autocast)
        report = {"dataset": dataset, "device": str(device), "backbone": args.backbone, "size": f"{height}x{width}",
                  "chunk": args.chunk, "amp": bool(args.amp and device.type == "cuda"),
                  "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "repeats": args.repeats,
                  "loadavg_1m_before": round(load_before, 2),
                  "loadavg_1m_5m_after": [round(v, 2) for v in os.getloadavg()[:2]], "results": results}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def format_table(report: dict) -> str:
    lines = [
        f"data: {report['dataset']}; {report['backbone']} at {report['size']}, chunk {report['chunk']}, "
        f"device {report['device']}, amp {report['amp']}, torch threads {report['torch_threads']}",
        f"machine: {report['cpu_count']} CPUs, load average 1m before {report['loadavg_1m_before']}, "
        f"(1m, 5m) after {report['loadavg_1m_5m_after']}",
        f"{report['repeats']} interleaved rounds: frames/s = best round; ratio = median of per-round "
        "extraction / model-only; steady = without the start-up (one chunk's call)",
        "",
        f"{'mode':<15}{'workers':>8}{'tracklets':>10}{'frames':>8}{'model fr/s':>12}{'extract fr/s':>14}"
        f"{'ratio':>8}{'startup s':>11}{'steady':>8}",
    ]
    for r in report["results"]:
        lines.append(f"{r['mode']:<15}{r['workers']:>8}{r['tracklets']:>10}{r['frames']:>8}{r['model_fps']:>12.1f}"
                     f"{r['extract_fps']:>14.1f}{r['ratio']:>8.3f}{r['startup_s']:>11.2f}{r['steady_ratio']:>8.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
