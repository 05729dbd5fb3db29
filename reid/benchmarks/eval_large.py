"""The million-item gallery case of ``tools/benchmark.py eval`` (issue 14, goal 5):

  python tools/benchmark.py eval --gallery 1000000 --queries 10000          # D = 256
  python tools/benchmark.py eval --gallery 20000 --queries 500 --json       # a quick check

In one run, each measurement in a fresh subprocess that loads the same features from ``.npy``
files (written once, blockwise, by the parent: identity-clustered like ``eval --scale``'s):

* ``gemm``: the bare tiled product ``Q x D`` by ``D x G``, chunked exactly as ours (gallery
  blocks outside, query blocks inside, one reused tile buffer), with the same per-block L2
  normalisation inside the timer (as the ``--scale`` cases do); the seconds spent in
  the GEMM alone (``np.matmul``, evaluate's library) are reported too;
* ``large``: :func:`reid.eval.large_gallery.evaluate_large_gallery`, everything included
  (validation, normalisation, exact ranks, mAP / CMC / mINP);
* ``current`` (``--current-subset N``): today's :func:`reid.eval.evaluate` on the first ``N``
  queries, extrapolated linearly to ``Q`` (it needs the normalised gallery copy and 16-query
  chunks at this G);
* ``ann`` (``--ann ivf_flat|hnsw``): FAISS approximate top-``k`` against the exact top-``k``
  (:func:`reid.eval.knn.knn_search`, flat index): recall@k, and mAP@k / rank-1 / mINP@k of the
  approximate lists and of the exact lists (truncation alone, :mod:`reid.eval.ann`) against the
  exact full-list metrics of ``large``; index type and parameters in the output.

Peak memory: ``VmHWM`` of the worker (``/proc/self/status``; whole process: features, libraries
and work), divided by the bytes of the feature arrays (``Q x D + G x D`` float32).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_GEN_ROWS = 1 << 16


def identity_layout(rng: np.random.Generator, nq: int, ng: int, dim: int):
    """``(qp, qc, gp, gc, centers)``: ~4 gallery items per identity over 6 cameras, each query an
    identity of the gallery, one ``N(0, 1)`` centre per identity (the benchmarks' features are
    centre + noise)."""
    num_ids = max(nq, ng // 4)
    gp = rng.integers(0, num_ids, ng)
    gc = rng.integers(1, 7, ng)
    qp = rng.choice(np.unique(gp), nq, replace=nq > len(np.unique(gp)))
    qc = rng.integers(1, 7, nq)
    centers = rng.standard_normal((num_ids, dim), dtype=np.float32)
    return qp, qc, gp, gc, centers


def write_data(folder: Path, nq: int, ng: int, dim: int, noise: float = 1.5, seed: int = 0) -> None:
    """Identity-clustered features (centre + ``noise`` x N(0, 1), ~4 items per gallery identity;
    at D = 256 and G = 1e6, 1.5 leaves a few impostors above a query's hardest positive, as
    trained features do, where ``--scale``'s 0.8 leaves none) as
    ``query.npy``, ``gallery.npy`` (written in blocks, never whole in memory) and ``ids.npz``."""
    rng = np.random.default_rng(seed)
    qp, qc, gp, gc, centers = identity_layout(rng, nq, ng, dim)
    gallery = np.lib.format.open_memmap(folder / "gallery.npy", mode="w+", dtype=np.float32, shape=(ng, dim))
    for a in range(0, ng, _GEN_ROWS):
        b = min(a + _GEN_ROWS, ng)
        gallery[a:b] = centers[gp[a:b]] + noise * rng.standard_normal((b - a, dim), dtype=np.float32)
    gallery.flush()
    del gallery
    np.save(folder / "query.npy", centers[qp] + noise * rng.standard_normal((nq, dim), dtype=np.float32))
    np.savez(folder / "ids.npz", qp=qp, qc=qc, gp=gp, gc=gc)
    (folder / "meta.json").write_text(json.dumps(_meta(nq, ng, dim, noise, seed)))


def _meta(nq: int, ng: int, dim: int, noise: float, seed: int = 0) -> dict:
    return {"Q": nq, "G": ng, "D": dim, "noise": noise, "seed": seed}


def _data_folder(args, stack) -> Path:
    """``--data-dir`` (kept; reused when it holds data of the same sizes and noise) or a temporary
    folder removed at the end."""
    if args.data_dir:
        folder = Path(args.data_dir)
        meta = folder / "meta.json"
        wanted = _meta(args.queries, args.gallery, args.dim, args.noise)
        if not (meta.exists() and json.loads(meta.read_text()) == wanted):
            folder.mkdir(parents=True, exist_ok=True)
            write_data(folder, args.queries, args.gallery, args.dim, args.noise)
        return folder
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reid-eval-large-", dir=args.workdir)))
    write_data(folder, args.queries, args.gallery, args.dim, args.noise)
    return folder


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _worker(kind: str, folder: Path, opts: dict) -> dict:
    # no torch here: the exact path never imports it; the GEMM's threads come from the
    # OPENBLAS_NUM_THREADS / OMP_NUM_THREADS that _measure sets for this process
    qf, gf = np.load(folder / "query.npy"), np.load(folder / "gallery.npy")
    ids = np.load(folder / "ids.npz")
    qp, qc, gp, gc = ids["qp"], ids["qc"], ids["gp"], ids["gc"]
    from reid.eval.features import l2_normalize
    from reid.eval.large_gallery import DEFAULT_QUERY_BLOCK, TILE_BYTES, evaluate_large_gallery

    qb = opts["query_block"] or min(len(qf), DEFAULT_QUERY_BLOCK)
    gb = opts["gallery_block"] or max(256, TILE_BYTES // (4 * qb))
    d = qf.shape[1]
    np.matmul(np.ones((64, d), np.float32), np.ones((d, 64), np.float32))  # thread start-up, outside timers
    rss_loaded = _status_kib("VmRSS")
    out: dict = {"kind": kind, "query_block": qb, "gallery_block": gb}
    t0, cpu0 = time.perf_counter(), time.process_time()
    if kind == "large":
        rep = evaluate_large_gallery(qf, gf, qp, qc, gp, gc, protocol=opts["protocol"], metric="cosine",
                                     query_block=qb, gallery_block=gb)
        out.update(rep.to_dict())
        if opts["ann_queries"]:  # the exact mAP of the queries the ANN comparison uses
            ap = rep.average_precision[: opts["ann_queries"]]
            out["mAP_first"] = {str(len(ap)): float(np.nanmean(ap))}
    elif kind == "gemm":
        q, mm_s = l2_normalize(qf, "q"), 0.0
        buf = np.empty(qb * gb, np.float32)
        for g0 in range(0, len(gf), gb):
            g = l2_normalize(gf[g0:g0 + gb], "g").T
            w = g.shape[1]
            t1 = time.perf_counter()
            for a in range(0, len(qf), qb):
                c = min(qb, len(qf) - a)
                np.matmul(q[a:a + c], g, out=buf[: c * w].reshape(c, w))
            mm_s += time.perf_counter() - t1
        out["mm_only_s"] = mm_s
    elif kind == "current":
        from reid.eval import evaluate

        n = min(opts["current_subset"], len(qf))
        rep = evaluate(qf[:n], gf, qp[:n], qc[:n], gp, gc, protocol=opts["protocol"], metric="cosine",
                       large_gallery=False)  # the classic path, not its hand-over to ours
        out.update(queries_run=n, mAP_subset=rep.mAP)
    else:  # ann
        from reid.eval.ann import ann_search, recall_at_k, truncated_metrics
        from reid.eval.knn import knn_search

        n = min(opts["ann_queries"] or len(qf), len(qf))  # the first n queries (the exact top-k costs a GEMM)
        qf, qp, qc = qf[:n], qp[:n], qc[:n]
        out["queries_run"] = n
        _, exact = knn_search(qf, gf, opts["k"], metric="cosine", use_gpu=False)
        out["exact_knn_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        _, approx, info = ann_search(qf, gf, opts["k"], metric="cosine", index=opts["ann"], **opts["ann_params"])
        out["ann_s"] = time.perf_counter() - t1
        out.update(index=info, recall_at_k=recall_at_k(approx, exact),
                   approx=truncated_metrics(approx, qp, qc, gp, gc, opts["protocol"]),
                   exact_lists=truncated_metrics(exact, qp, qc, gp, gc, opts["protocol"]))
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - cpu0  # all threads: steadier than wall time on a busy machine
    feature_bytes = qf.nbytes + gf.nbytes
    out.update(feature_gb=feature_bytes / 1e9, rss_loaded_gb=rss_loaded * 1024 / 1e9,
               peak_rss_gb=_status_kib("VmHWM") * 1024 / 1e9,
               peak_over_features=_status_kib("VmHWM") * 1024 / feature_bytes)
    return out


def _measure(kind: str, folder: Path, opts: dict) -> dict:
    cmd = [sys.executable, "-m", "reid.benchmarks.eval_large", kind, str(folder), json.dumps(opts)]
    threads = str(opts["threads"])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"benchmark worker {kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _params(text: str) -> dict:
    out = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        out[key.strip()] = float(value) if "." in value else int(value)
    return out


def run(args) -> dict:
    """Every measurement of the large case (``args`` from ``reid.benchmarks.eval``'s parser)."""
    opts = {"threads": os.cpu_count() or 1, "protocol": args.protocol, "query_block": args.query_block,
            "gallery_block": args.gallery_block, "current_subset": args.current_subset, "k": args.k,
            "ann": args.ann, "ann_params": _params(args.ann_params), "ann_queries": args.ann_queries}
    with contextlib.ExitStack() as stack:
        folder = _data_folder(args, stack)
        runs: dict[str, list[dict]] = {"gemm": [], "large": []}
        for _ in range(args.repeats):  # interleaved, so load drift hits both sides
            for kind in ("gemm", "large"):
                runs[kind].append(_measure(kind, folder, opts))
        gemm, large = (min(runs[k], key=lambda r: r["seconds"]) for k in ("gemm", "large"))
        result = {"Q": args.queries, "G": args.gallery, "D": args.dim, "threads": opts["threads"],
                  "protocol": args.protocol, "loadavg_before": os.getloadavg(), "gemm": gemm, "large": large,
                  "ratio": large["seconds"] / gemm["seconds"], "ratio_vs_mm_only": large["seconds"] / gemm["mm_only_s"],
                  "cpu_ratio": large["cpu_seconds"] / gemm["cpu_seconds"]}
        if args.current_subset:
            cur = _measure("current", folder, opts)
            cur["extrapolated_s"] = cur["seconds"] * args.queries / cur["queries_run"]
            result["current"] = cur
        if args.ann != "none":
            ann = _measure("ann", folder, opts)
            # the exact full-list mAP of the same queries (from large's per-query APs when a subset ran)
            exact_map = large["mAP"] if ann["queries_run"] == args.queries else large["mAP_first"][str(ann["queries_run"])]
            ann["exact_mAP_same_queries"] = exact_map
            ann["mAP_diff_vs_exact"] = ann["approx"]["mAP"] - exact_map
            ann["mAP_diff_truncation_only"] = ann["exact_lists"]["mAP"] - exact_map
            result["ann"] = ann
        result["loadavg_after"] = os.getloadavg()
    return result


def print_result(r: dict) -> None:
    g, lg = r["gemm"], r["large"]
    print(f"eval benchmark, large gallery: Q={r['Q']} G={r['G']} D={r['D']}, threads={r['threads']}, "
          f"protocol={r['protocol']}, tile {lg['query_block']} x {lg['gallery_block']}, "
          f"load {r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f}")
    print(f"  bare tiled GEMM (+ block normalisation)  {g['seconds']:8.2f} s   (GEMM alone {g['mm_only_s']:.2f} s)"
          f"   peak RSS {g['peak_rss_gb']:.2f} GB = {g['peak_over_features']:.2f} x features")
    print(f"  exact evaluation (evaluate_large_gallery) {lg['seconds']:8.2f} s   peak RSS {lg['peak_rss_gb']:.2f} GB"
          f" = {lg['peak_over_features']:.2f} x features ({lg['feature_gb']:.2f} GB; {lg['rss_loaded_gb']:.2f} GB"
          " after loading)")
    print(f"  ratio exact / GEMM: {r['ratio']:.3f}   (/ GEMM alone: {r['ratio_vs_mm_only']:.3f}; CPU seconds "
          f"{lg['cpu_seconds']:.1f} / {g['cpu_seconds']:.1f} = {r['cpu_ratio']:.3f})   "
          f"mAP {lg['mAP']:.4f} rank-1 {lg['rank1']:.4f} mINP {lg['mINP']:.4f}")
    if "current" in r:
        c = r["current"]
        print(f"  today's evaluate(): {c['extrapolated_s']:.2f} s (extrapolated from {c['queries_run']} queries), "
              f"peak RSS {c['peak_rss_gb']:.2f} GB = {c['peak_over_features']:.2f} x features")
    if "ann" in r:
        a = r["ann"]
        print(f"  ANN {a['index']}: {a['ann_s']:.2f} s (build + search); exact flat top-{a['index']['k']}: "
              f"{a['exact_knn_s']:.2f} s; recall@{a['index']['k']} {a['recall_at_k']:.4f}")
        for name in ("approx", "exact_lists"):
            m = a[name]
            print(f"    {name:<12} mAP@k {m['mAP']:.4f} rank-1 {m['rank1']:.4f} mINP@k {m['mINP']:.4f}")
        print(f"    on {a['queries_run']} queries, exact full-list mAP {a['exact_mAP_same_queries']:.4f}")
        print(f"    mAP@k - exact mAP: {a['mAP_diff_vs_exact']:+.5f} (truncation alone: {a['mAP_diff_truncation_only']:+.5f})")


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]))))
