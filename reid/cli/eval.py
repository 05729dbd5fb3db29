"""``reid eval`` (and ``python tools/eval.py``): score re-identification features exactly (mAP /
CMC / mINP) under a named MARS protocol, from an npz of features or from a checkpoint.

Every argument and the input file are checked before any feature is extracted or scored
(``--topk``, ``--visualize``/``--out``, frame paths for ``--visualize``, options that only apply
to one mode, the npz's arrays, the checkpoint), so a mistake costs a second, not an evaluation.
``--json`` prints one strict JSON object: an undefined metric (no query with a valid match) is
``null``, never a bare ``NaN``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np

from reid.cli.common import UsageError, add_debug_flag, debug_requested, guarded
from reid.eval import METRICS, EvaluationInputError, evaluate, format_report, query_gallery_index
from reid.eval.feature_file import protocol_mismatch, read_meta, save_feature_file
from reid.protocols import PROTOCOLS, Protocol

NPZ_KEYS = ("query_feats", "gallery_feats", "query_pids", "query_camids", "gallery_pids", "gallery_camids")
ID_KEYS = NPZ_KEYS[2:]
PATH_KEYS = ("query_frame_paths", "query_frame_offsets", "gallery_frame_paths", "gallery_frame_offsets")
# options that only mean something when features are extracted from a checkpoint (None = not given)
CHECKPOINT_ONLY = ("data", "save_features", "chunk", "max_frames", "workers", "device")


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


EPILOG = """\
npz format (features mode): arrays query_feats [Q,D], gallery_feats [G,D], query_pids [Q],
query_camids [Q], gallery_pids [G], gallery_camids [G] (ids: integers that fit in int64). For
--visualize the file may also hold the frame paths as query_frame_paths / gallery_frame_paths
(1-D str arrays of all frames) with query_frame_offsets / gallery_frame_offsets ([N+1] ints:
tracklet i = paths[off[i]:off[i+1]]); --save-features writes them, plus query_gallery_index
([Q]: the gallery index of each query's own tracklet, -1 if absent) and the 0-d strings
protocol, metric and dataset. Scoring a file under another protocol than its own warns on
stderr (--strict: refuses). Object arrays are refused (the file is read with allow_pickle=False).

protocols (--protocol):
{protocols}
  Under every protocol, queries without any valid match are excluded from the means and COUNTED.

metrics (--metric):
{metrics}

examples:
  {cmd} --features feats.npz --protocol official
  {cmd} --features feats.npz --protocol torchreid --metric euclidean --json
  {cmd} --features feats.npz --protocol official --rerank
  {cmd} --checkpoint runs/x/best.pt --data /data/MARS --protocol official \\
      --save-features feats.npz --visualize 8 --out vis/

exit status: 0 done; 2 a user error (bad argument, file or checkpoint: one line on stderr,
--debug for the traceback).
"""


def build_parser(prog: str = "reid eval") -> argparse.ArgumentParser:
    cmd = f"python {prog}" if prog.endswith(".py") else prog
    epilog = EPILOG.format(
        protocols=_choices_help({name: f"{p.description}. {_gallery_hint(p)}" for name, p in PROTOCOLS.items()}),
        metrics=_choices_help(dict(METRICS)), cmd=cmd)
    p = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate video re-identification retrieval exactly (mAP, CMC rank-1/5/10/20, mINP) "
        f"under a named protocol ({', '.join(PROTOCOLS)}), from saved features or a checkpoint.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", type=Path, help="npz file with the six arrays listed below")
    src.add_argument("--checkpoint", type=Path, help="model checkpoint; features are extracted first")
    p.add_argument("--data", type=str, default=None,
                   help="checkpoint mode: dataset root (default: the run's own data settings)")
    p.add_argument("--protocol", choices=PROTOCOLS.names(), default=None,
                   help="evaluation protocol (see 'protocols' below; default: the one the features file "
                   "names, or the run's with --checkpoint)")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) a features file written for another protocol than --protocol, or "
                   "naming none, instead of warning")
    p.add_argument("--metric", choices=METRICS.names(), default=None,
                   help="distance metric (default: the run's eval.metric with --checkpoint, else cosine; "
                   "see 'metrics' below)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--chunk-size", type=int, default=None, help="queries per chunk (memory ~16 B x chunk x G)")
    p.add_argument("--json", action="store_true",
                   help="print exactly one JSON object instead of the table (undefined metrics are null)")
    p.add_argument("--save-features", type=Path, default=None, help="checkpoint mode: write the features npz")
    p.add_argument("--chunk", type=int, default=None,
                   help="checkpoint mode: frames per backbone pass (long tracklets are split, short ones "
                   "packed; default: the run's eval.chunk)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="checkpoint mode: evenly spaced frames per tracklet (default: the run's "
                   "eval.max_frames, i.e. what its own evaluation used)")
    p.add_argument("--workers", type=int, default=None,
                   help="checkpoint mode: DataLoader workers for frame decoding (default 0)")
    p.add_argument("--device", default=None, help="checkpoint mode: torch device (default: auto)")
    p.add_argument("--visualize", type=int, default=0, metavar="N", help="write ranked-list PNGs for N queries")
    p.add_argument("--out", type=Path, default=None, help="folder for the --visualize PNGs")
    p.add_argument("--topk", type=int, default=10, help="gallery tracklets per visualised query (>= 1)")
    p.add_argument("--order", choices=("worst", "best", "random"), default="worst",
                   help="which queries --visualize draws: lowest AP first (default), highest first, or random")
    p.add_argument("--seed", type=int, default=0, help="seed choosing the visualised queries with --order random")
    add_debug_flag(p)
    return p


def check_arguments(args: argparse.Namespace) -> None:
    """Every argument problem, before any work (:class:`UsageError` naming the option)."""
    for option, value, least in (("--topk", args.topk, 1), ("--visualize", args.visualize, 0),
                                 ("--chunk-size", args.chunk_size, 1), ("--chunk", args.chunk, 1),
                                 ("--max-frames", args.max_frames, 1), ("--workers", args.workers, 0)):
        if value is not None and value < least:
            raise UsageError(f"{option} {value}: must be >= {least}")
    if args.visualize and args.out is None:
        raise UsageError(f"--visualize {args.visualize} needs --out DIR (the folder for the PNGs)")
    if args.out is not None and not args.visualize:
        raise UsageError("--out is the folder for --visualize N's images; add --visualize N or drop --out")
    if args.features is not None:
        given = [f"--{name.replace('_', '-')}" for name in CHECKPOINT_ONLY if getattr(args, name) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UsageError(f"{', '.join(given)} {verb} only with --checkpoint (the features are read from "
                             f"{args.features} as they are)")


def load_features(path: Path, need_paths: bool = False) -> dict:
    """The npz's arrays, checked: the six required keys, no object arrays, ids that fit int64,
    and the frame-path arrays when ``need_paths``. Errors name the file and the key."""
    if not path.is_file():
        raise UsageError(f"--features: features file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise EvaluationInputError(f"{path}: cannot read it as an npz file ({type(exc).__name__}: {exc})") from None
    if not hasattr(data, "files"):
        raise EvaluationInputError(f"{path}: a single .npy array, not an npz archive of named arrays")
    missing = [k for k in NPZ_KEYS if k not in data.files]
    if missing:
        raise EvaluationInputError(f"{path} lacks key(s) {', '.join(missing)} (has: {', '.join(data.files)})")
    if need_paths and any(k not in data.files for k in PATH_KEYS):
        raise UsageError(f"--visualize needs frame paths: {path} lacks "
                         f"{', '.join(k for k in PATH_KEYS if k not in data.files)}; write the npz with "
                         "--checkpoint ... --save-features, or add those arrays")
    arrays = {}
    for key in data.files:
        try:
            arrays[key] = data[key]
        except ValueError as exc:  # "Object arrays cannot be loaded when allow_pickle=False"
            raise EvaluationInputError(f"{path}: array '{key}' holds Python objects ({exc}); store it as "
                                       "numbers (ids, features) or fixed-width strings (paths)") from None
    for key in ID_KEYS:
        ids = arrays[key]
        if ids.dtype.kind == "u" and ids.size and int(ids.max()) > np.iinfo(np.int64).max:
            raise EvaluationInputError(f"{path}: '{key}' holds {int(ids.max())}, above the int64 range "
                                       "evaluation uses for ids; renumber the ids")
    return arrays


def _paths_to_arrays(prefix: str, tracklets: list) -> dict:
    flat = [str(p) for t in tracklets for p in t]
    off = np.cumsum([0] + [len(t) for t in tracklets]).astype(np.int64)
    return {f"{prefix}_frame_paths": np.array(flat, dtype=str), f"{prefix}_frame_offsets": off}


def _arrays_to_paths(arrs: dict, prefix: str):
    if f"{prefix}_frame_paths" not in arrs:
        return None
    flat, off = arrs[f"{prefix}_frame_paths"], arrs[f"{prefix}_frame_offsets"]
    return [list(flat[off[i]: off[i + 1]]) for i in range(len(off) - 1)]


def json_safe(value):
    """``value`` with every non-finite float as ``None`` (JSON has no NaN/Infinity)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _checkpoint_arrays(args: argparse.Namespace) -> tuple[dict, str]:
    from reid.engine.evaluation import features_from_checkpoint
    from reid.engine.preflight import EVAL_KEYS, check_checkpoint

    check_checkpoint(args.checkpoint, "--checkpoint", EVAL_KEYS)
    if args.data is not None and not Path(args.data).exists():
        raise UsageError(f"--data {args.data}: does not exist (a MARS root, a .csv manifest or a folder)")
    out = features_from_checkpoint(
        args.checkpoint, args.data, args.protocol, device=args.device, chunk=args.chunk,
        num_workers=args.workers or 0, max_frames=args.max_frames,
    )
    arrays = {k: np.asarray(out[k]) for k in NPZ_KEYS}
    arrays.update(_paths_to_arrays("query", out.get("query_paths", [])))
    arrays.update(_paths_to_arrays("gallery", out.get("gallery_paths", [])))
    if "query_paths" in out:
        arrays["query_gallery_index"] = query_gallery_index(out["query_paths"], out["gallery_paths"])
    meta = {"protocol": str(out.get("protocol") or args.protocol), "metric": out.get("metric", "cosine"),
            "dataset": out.get("dataset") or (Path(args.data).name if args.data else None)}
    if args.save_features:
        save_feature_file(args.save_features, arrays, **meta)
    return arrays, meta


def file_protocol(args: argparse.Namespace, meta: dict) -> str:
    """The protocol to score a features file under: ``--protocol``, checked against the one the
    file names (a warning on stderr, or a :class:`UsageError` with ``--strict``), else the file's."""
    named = meta.get("protocol")
    if args.protocol is None:
        if named is None or named not in PROTOCOLS.names():
            what = "names no protocol" if named is None else f"names protocol {named!r}, unknown to this version"
            raise UsageError(f"--protocol is required: {args.features} {what} "
                             f"(choices: {', '.join(PROTOCOLS.names())})")
        return named
    if named is None and args.strict:
        raise UsageError(f"--strict: {args.features} names no protocol, so it cannot be checked against "
                         f"--protocol {args.protocol}; rewrite it with --save-features or reid extract, or drop --strict")
    problem = protocol_mismatch(args.features, meta.get("protocol"), args.protocol)
    if problem and args.strict:
        raise UsageError(f"--strict: {problem}; score it with --protocol {meta['protocol']} or re-extract "
                         f"the features for {args.protocol}")
    if problem:
        print(f"warning: {problem}; the numbers may not mean what they would under {args.protocol} "
              "(--strict refuses)", file=sys.stderr)
    return args.protocol


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    if args.features is not None:
        arrays = load_features(args.features, need_paths=bool(args.visualize))
        meta = read_meta(arrays)
        protocol = file_protocol(args, meta)
        source = str(args.features)
    else:
        arrays, meta = _checkpoint_arrays(args)
        protocol, source = meta["protocol"], str(args.checkpoint)
    metric = args.metric or meta.get("metric") or "cosine"
    if metric not in METRICS.names():
        metric = "cosine"  # a file naming a metric this version lacks: the documented default
    try:
        report = evaluate(*(arrays[k] for k in NPZ_KEYS), protocol=protocol, metric=metric,
                          rerank=args.rerank, chunk_size=args.chunk_size, progress=not args.json,
                          query_gallery_index=arrays.get("query_gallery_index"))
    except EvaluationInputError as exc:
        raise EvaluationInputError(f"{source}: {exc}") from None

    if args.visualize:
        from reid.eval.visualize import visualize_queries

        q_paths, g_paths = _arrays_to_paths(arrays, "query"), _arrays_to_paths(arrays, "gallery")
        written = visualize_queries(arrays, q_paths, g_paths, args.out, args.visualize, protocol,
                                    metric, topk=args.topk, seed=args.seed, order=args.order, report=report)
        if not args.json:
            print(f"wrote {len(written)} ranked-list images and index.html to {args.out}")
    if args.json:
        print(json.dumps(json_safe(report.to_dict()), allow_nan=False))
    else:
        print(format_report(report))
    return 0


def main(argv: list[str] | None = None, prog: str = "reid eval") -> int:
    args = build_parser(prog).parse_args(argv)
    return guarded(lambda: run(args), debug_requested(args))


__all__ = ["build_parser", "check_arguments", "json_safe", "load_features", "main", "run"]
