"""Benchmark of ``reid.eval.evaluate`` against (a) the bare chunked ``Q x G`` matrix product and
(b) a torchreid-style evaluator (full distance matrix, full argsort, per-query loop; written here
as the baseline, not library code).

  python tools/benchmark.py eval --scale mars        # Q=1980, G=9330, D=2048
  python tools/benchmark.py eval --scale large       # Q=10000, G=100000, D=256
  python tools/benchmark.py eval --scale mars --json
  python tools/benchmark.py eval --gallery 1000000 --queries 10000   # tiled exact scorer, + FAISS ANN
                                                                      # (reid/benchmarks/eval_large.py)

Features are identity-clustered (centre + Gaussian noise, 4 tracklets x 2+ cameras per id), like
a trained model's: the exact-rank kernel's cost depends on how many items outrank a query's
hardest positive, which is small for useful features and up to G for random ones.
Ours and the bare product use the same thread count (all cores), chunk size, L2 normalisation
(inside the timer) and a reused ``[chunk, G]`` GEMM output buffer; every worker does the same small
warm-up product before its timer starts. Each measurement runs in a fresh subprocess; peak memory = ``resource.getrusage`` ``ru_maxrss``
of that subprocess (whole process, so it includes the features and the Python/torch runtime).
The baseline at large scale is run on a subset of queries and extrapolated linearly (stated).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from reid.benchmarks.eval_large import identity_layout, print_result, run

SCALES = {"mars": (1980, 9330, 2048), "large": (10000, 100000, 256), "tiny": (300, 2000, 64)}


def make_data(nq: int, ng: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    qp, qc, gp, gc, centers = identity_layout(rng, nq, ng, dim)
    gf = centers[gp] + 0.8 * rng.standard_normal((ng, dim), dtype=np.float32)
    qf = centers[qp] + 0.8 * rng.standard_normal((nq, dim), dtype=np.float32)
    return qf, gf, qp, qc, gp, gc


def torchreid_style_eval(distmat: np.ndarray, qp, gp, qc, gc):
    """Baseline: full argsort of every row, then a per-query loop (torchreid's eval_market1501)."""
    indices = np.argsort(distmat, axis=1)
    matches = (gp[indices] == qp[:, None]).astype(np.int32)
    aps = []
    for i in range(len(qp)):
        order = indices[i]
        keep = ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        raw = matches[i][keep]
        if not raw.any():
            continue
        hits = raw.cumsum()
        aps.append(((hits / (np.arange(len(raw)) + 1.0)) * raw).sum() / raw.sum())
    return float(np.mean(aps))


def _worker(kind: str, scale: str, chunk: int | None, subset: int) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    nq, ng, dim = SCALES[scale]
    qf, gf, qp, qc, gp, gc = make_data(nq, ng, dim)
    from reid.eval import evaluate
    from reid.eval.features import l2_normalize
    from reid.eval.scoring import auto_chunk_size

    chunk = chunk or auto_chunk_size(ng)
    # Warm-up outside the timer, identical for every kind: BLAS / OpenMP thread start-up and the
    # first-call dispatch are not part of any method's cost.
    torch.mm(torch.ones(64, dim), torch.ones(dim, 64))
    np.matmul(np.ones((64, dim), np.float32), np.ones((dim, 64), np.float32))
    t0 = time.perf_counter()
    extra = {}
    if kind == "ours":
        rep = evaluate(qf, gf, qp, qc, gp, gc, protocol="torchreid", metric="cosine", chunk_size=chunk)
        extra = {"mAP": rep.mAP}
    elif kind == "matmul":
        # The reference cost: the same normalisation, chunk size and thread count as ours, and the
        # same reused [chunk, G] output buffer (``out=``) that ours writes each chunk's scores into,
        # and the same GEMM library (numpy's BLAS, reid.eval.scoring.make_score_fn).
        q, g = l2_normalize(qf, "q"), l2_normalize(gf, "g")
        buf = np.empty((chunk, ng), np.float32)
        for a in range(0, nq, chunk):
            b = min(a + chunk, nq)
            np.matmul(q[a:b], g.T, out=buf[: b - a])
    else:  # torchreid-style baseline on the first `subset` queries
        n = min(subset, nq)
        q, g = torch.from_numpy(l2_normalize(qf[:n], "q")), torch.from_numpy(l2_normalize(gf, "g"))
        distmat = (1.0 - torch.mm(q, g.t())).numpy()
        extra = {"mAP_subset": torchreid_style_eval(distmat, qp[:n], gp, qc[:n], gc), "queries_run": n}
    seconds = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB
    return {"kind": kind, "seconds": seconds, "peak_rss_gb": rss_gb, "chunk": chunk, **extra}


def _measure(kind: str, scale: str, chunk, subset: int) -> dict:
    cmd = [sys.executable, "-m", "reid.benchmarks.eval", "--worker", kind, "--scale", scale,
           "--subset", str(subset)] + (["--chunk-size", str(chunk)] if chunk else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="tools/benchmark.py eval",
        description="Time exact evaluation against the bare matrix product and a torchreid-style evaluator.",
        epilog="example: python tools/benchmark.py eval --scale mars",
    )
    p.add_argument("--scale", choices=sorted(SCALES), default="mars")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--subset", type=int, default=None,
                   help="queries for the baseline (default: all at mars/tiny, 500 at large), extrapolated")
    p.add_argument("--repeats", type=int, default=1, help="best of N for ours and the matmul")
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    large = p.add_argument_group("large gallery (reid.eval.large_gallery; --gallery selects it)")
    large.add_argument("--gallery", type=int, default=None, help="gallery size G (e.g. 1000000)")
    large.add_argument("--queries", type=int, default=10000, help="queries Q (default 10000)")
    large.add_argument("--dim", type=int, default=256, help="feature dimension D (default 256)")
    large.add_argument("--noise", type=float, default=1.5, help="feature noise around identity centres (default 1.5)")
    large.add_argument("--protocol", default="torchreid", help="evaluation protocol (default torchreid)")
    large.add_argument("--query-block", type=int, default=None, help="queries per tile (default: the scorer's)")
    large.add_argument("--gallery-block", type=int, default=None, help="gallery rows per tile (default: the scorer's)")
    large.add_argument("--current-subset", type=int, default=0,
                       help="also time today's evaluate() on this many queries, extrapolated (0: skip)")
    large.add_argument("--ann", choices=["ivf_flat", "hnsw", "none"], default="ivf_flat",
                       help="FAISS approximate index compared with the exact top-k (default ivf_flat)")
    large.add_argument("--ann-params", default="", help="index parameters, e.g. nlist=1024,nprobe=32")
    large.add_argument("--k", type=int, default=100, help="top-k of the ANN comparison (default 100)")
    large.add_argument("--ann-queries", type=int, default=0, help="ANN comparison on the first N queries (0: all)")
    large.add_argument("--data-dir", default=None, help="keep the generated features here and reuse them")
    large.add_argument("--workdir", default=None, help="folder for the temporary feature files")
    args = p.parse_args(argv)
    if args.gallery:
        result = run(args)
        print(json.dumps(result)) if args.json else print_result(result)
        return 0
    nq, ng, dim = SCALES[args.scale]
    subset = args.subset or (500 if args.scale == "large" else nq)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.scale, args.chunk_size, subset)))
        return 0
    ours = min((_measure("ours", args.scale, args.chunk_size, subset) for _ in range(args.repeats)),
               key=lambda r: r["seconds"])
    mm = min((_measure("matmul", args.scale, args.chunk_size, subset) for _ in range(args.repeats)),
             key=lambda r: r["seconds"])
    base = _measure("baseline", args.scale, args.chunk_size, subset)
    base_full = base["seconds"] * nq / base["queries_run"]
    result = {
        "scale": args.scale, "Q": nq, "G": ng, "D": dim, "threads": os.cpu_count(),
        "ours_s": ours["seconds"], "matmul_s": mm["seconds"],
        "ratio_vs_matmul": ours["seconds"] / mm["seconds"],
        "baseline_s": base_full, "baseline_queries_run": base["queries_run"],
        "baseline_extrapolated": base["queries_run"] < nq,
        "speedup_vs_baseline": base_full / ours["seconds"],
        "ours_peak_rss_gb": ours["peak_rss_gb"], "matmul_peak_rss_gb": mm["peak_rss_gb"],
        "baseline_peak_rss_gb": base["peak_rss_gb"], "chunk": ours["chunk"], "mAP": ours["mAP"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"eval benchmark, scale={args.scale}: Q={nq} G={ng} D={dim}, torch threads={os.cpu_count()}")
        print(f"  ours (exact, torchreid protocol)  {ours['seconds']:8.2f} s   peak RSS {ours['peak_rss_gb']:.2f} GB")
        print(f"  bare chunked Q x G matmul         {mm['seconds']:8.2f} s   peak RSS {mm['peak_rss_gb']:.2f} GB")
        note = f" (extrapolated from {base['queries_run']} queries)" if result["baseline_extrapolated"] else ""
        print(f"  torchreid-style baseline          {base_full:8.2f} s{note}   peak RSS {base['peak_rss_gb']:.2f} GB")
        print(f"  ratio ours / matmul: {result['ratio_vs_matmul']:.2f}   speed-up vs baseline: {result['speedup_vs_baseline']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
