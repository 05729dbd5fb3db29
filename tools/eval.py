#!/usr/bin/env python
"""Score re-identification features: exact mAP / CMC / mINP under a named MARS protocol."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np

from reid.eval import METRICS, EvaluationInputError, evaluate, format_report
from reid.protocols import PROTOCOLS, Protocol

NPZ_KEYS = ("query_feats", "gallery_feats", "query_pids", "query_camids", "gallery_pids", "gallery_camids")


def _gallery_hint(protocol: Protocol) -> str:
    """What the npz gallery must hold for ``protocol`` (from its gallery rule)."""
    if protocol.queries_in_gallery and not protocol.gallery_excludes_pids:
        return "npz gallery: the full test set, queries included."
    dropped = ["the queries"] if not protocol.queries_in_gallery else []
    dropped += [f"pid {pid}" for pid in protocol.gallery_excludes_pids]
    return f"npz gallery: the test set without {' and '.join(dropped)}."


def _choices_help(entries: dict[str, str]) -> str:
    """``name  text`` lines, text wrapped and aligned after the longest name."""
    width = max(map(len, entries)) + 2
    lines = []
    for name, text in entries.items():
        wrapped = textwrap.wrap(text, 96 - width, break_on_hyphens=False) or [""]
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines += [f"  {'':<{width}}{line}" for line in wrapped[1:]]
    return "\n".join(lines)


EPILOG = f"""\
npz format (features mode): arrays query_feats [Q,D], gallery_feats [G,D], query_pids [Q],
query_camids [Q], gallery_pids [G], gallery_camids [G]. For --visualize the file may also hold the
frame paths as query_frame_paths / gallery_frame_paths (1-D str arrays of all frames) with
query_frame_offsets / gallery_frame_offsets ([N+1] ints: tracklet i = paths[off[i]:off[i+1]]);
--save-features writes them.

protocols (--protocol):
{_choices_help({name: f"{p.description}. {_gallery_hint(p)}" for name, p in PROTOCOLS.items()})}
  Under every protocol, queries without any valid match are excluded from the means and COUNTED.

metrics (--metric):
{_choices_help(dict(METRICS))}

examples:
  python tools/eval.py --features feats.npz --protocol official
  python tools/eval.py --features feats.npz --protocol torchreid --metric euclidean --json
  python tools/eval.py --features feats.npz --protocol official --rerank
  python tools/eval.py --checkpoint runs/x/best.pt --data /data/MARS --protocol official \\
      --save-features feats.npz --visualize 8 --out vis/
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/eval.py",
        description="Evaluate video re-identification retrieval exactly (mAP, CMC rank-1/5/10/20, mINP) "
        f"under a named protocol ({', '.join(PROTOCOLS)}), from saved features or a checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", type=Path, help="npz file with the six arrays listed below")
    src.add_argument("--checkpoint", type=Path, help="model checkpoint; features are extracted first")
    p.add_argument("--data", type=str, default=None,
                   help="checkpoint mode: dataset root (default: the run's own data settings)")
    p.add_argument("--protocol", choices=PROTOCOLS.names(), required=True,
                   help="evaluation protocol (see 'protocols' below)")
    p.add_argument("--metric", choices=METRICS.names(), default=None,
                   help="distance metric (default: the run's eval.metric with --checkpoint, else cosine; "
                   "see 'metrics' below)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--chunk-size", type=int, default=None, help="queries per chunk (memory ~16 B x chunk x G)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object instead of the table")
    p.add_argument("--save-features", type=Path, default=None, help="checkpoint mode: write the features npz")
    p.add_argument("--chunk", type=int, default=None,
                   help="checkpoint mode: frames per backbone pass (long tracklets are split, short ones "
                   "packed; default: the run's eval.chunk)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="checkpoint mode: evenly spaced frames per tracklet (default: the run's "
                   "eval.max_frames, i.e. what its own evaluation used)")
    p.add_argument("--workers", type=int, default=0, help="checkpoint mode: DataLoader workers for frame decoding")
    p.add_argument("--device", default=None, help="checkpoint mode: torch device (default: auto)")
    p.add_argument("--visualize", type=int, default=0, metavar="N", help="write ranked-list PNGs for N queries")
    p.add_argument("--out", type=Path, default=None, help="folder for the --visualize PNGs")
    p.add_argument("--topk", type=int, default=10, help="gallery tracklets per visualised query")
    p.add_argument("--seed", type=int, default=0, help="seed choosing the visualised queries")
    return p


def load_features(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"error: features file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - report any unreadable file the same way
        raise SystemExit(f"error: cannot read {path} as an npz file: {e}")
    missing = [k for k in NPZ_KEYS if k not in data.files]
    if missing:
        raise SystemExit(f"error: {path} lacks key(s) {', '.join(missing)} (has: {', '.join(data.files)})")
    return {k: data[k] for k in data.files}


def _paths_to_arrays(prefix: str, tracklets: list) -> dict:
    flat = [str(p) for t in tracklets for p in t]
    off = np.cumsum([0] + [len(t) for t in tracklets]).astype(np.int64)
    return {f"{prefix}_frame_paths": np.array(flat, dtype=str), f"{prefix}_frame_offsets": off}


def _arrays_to_paths(arrs: dict, prefix: str):
    if f"{prefix}_frame_paths" not in arrs:
        return None
    flat, off = arrs[f"{prefix}_frame_paths"], arrs[f"{prefix}_frame_offsets"]
    return [list(flat[off[i]: off[i + 1]]) for i in range(len(off) - 1)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    metric = args.metric or "cosine"
    if args.features is not None:
        arrays = load_features(args.features)
        source = str(args.features)
    else:
        # the run is rebuilt from its config (model and data stack only when needed)
        from reid.engine.evaluation import features_from_checkpoint

        out = features_from_checkpoint(
            args.checkpoint, args.data, args.protocol, device=args.device, chunk=args.chunk,
            num_workers=args.workers, max_frames=args.max_frames,
        )
        arrays = {k: np.asarray(out[k]) for k in NPZ_KEYS}
        arrays.update(_paths_to_arrays("query", out.get("query_paths", [])))
        arrays.update(_paths_to_arrays("gallery", out.get("gallery_paths", [])))
        source = str(args.checkpoint)
        metric = args.metric or out.get("metric", "cosine")
        if args.save_features:
            args.save_features.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.save_features, **arrays)
    try:
        report = evaluate(
            *(arrays[k] for k in NPZ_KEYS),
            protocol=args.protocol,
            metric=metric,
            rerank=args.rerank,
            chunk_size=args.chunk_size,
            progress=not args.json,
        )
    except EvaluationInputError as e:
        raise SystemExit(f"error: {source}: {e}")

    if args.visualize:
        if args.out is None:
            raise SystemExit("error: --visualize needs --out DIR")
        q_paths, g_paths = _arrays_to_paths(arrays, "query"), _arrays_to_paths(arrays, "gallery")
        if q_paths is None or g_paths is None:
            raise SystemExit(
                "error: --visualize needs frame paths: use --checkpoint, or an npz with "
                "query_frame_paths/query_frame_offsets and gallery_frame_paths/gallery_frame_offsets"
            )
        from reid.eval.visualize import visualize_queries

        written = visualize_queries(arrays, q_paths, g_paths, args.out, args.visualize, args.protocol,
                                    metric, topk=args.topk, seed=args.seed)
        if not args.json:
            print(f"wrote {len(written)} ranked-list images to {args.out}")

    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
