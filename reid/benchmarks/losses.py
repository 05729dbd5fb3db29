"""Loss benchmark: forward+backward time of our losses relative to baselines in the same run.

* weighted CE (each scheme) vs ``F.cross_entropy`` - batch 256, 625 classes (MARS train ids);
* our ``RankedListLoss`` vs PML's ``RankedListLoss`` and our ``InstanceCrossEntropyLoss`` vs PML's
  ``NTXentLoss`` - batch 64 (16 ids x 4) of 2048-d embeddings.

CPU, one torch thread by default (``--threads``; the same for every case), median over repeats
after warm-up. Every case times the same inputs and a full step: a fresh leaf copy of the
logits / embeddings, forward, ``backward()``. The weighted-CE cases (sub-millisecond each) are
timed *interleaved* with their baseline: rounds that visit the baseline and every scheme in a
seeded random order, a short burst of calls per visit (2 untimed, 5 timed), so each call runs in
its own case's steady state while load drifting on a shared machine hits both sides of each
ratio alike; the ratio is median(case) / median(baseline). Goals: weighted CE <= 1.5x plain CE; our RLL <= 1.5x
PML's.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from reid.losses import InstanceCrossEntropyLoss, RankedListLoss, WeightedCrossEntropyLoss

#: (scheme, parameters) timed against F.cross_entropy
SCHEME_CASES = [("cce", {}), ("mae", {}), ("mse", {}), ("gce", {"q": 0.7}), ("imae", {"T": 8.0}),
           ("dm", {"lam": 0.5, "beta": 8.0}), ("exponential", {"beta": 2.0}), ("normal", {"psi": 0.5, "beta": 4.0}),
           ("beta", {"alpha": 2.0, "eta": 3.0})]


def _median_time(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _interleaved_median_times(fns: list, repeats: int, warmup: int, burst: int = 5, seed: int = 0) -> list[float]:
    """Median seconds per call of each ``fn``, timed in rounds: every round visits all cases in a
    fresh seeded random order, and each visit makes ``warmup`` untimed calls then ``burst``
    timed ones (``repeats`` timed calls per case in all). Each timed call thus runs in the steady
    state of its own case (caches, allocator), as in a training loop, while a change of machine
    load during the run hits every case alike. The garbage collector is paused while timing (a
    collection would land in whichever case triggered it)."""
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    rng = random.Random(seed)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(max(1, -(-repeats // burst))):
            rng.shuffle(order)
            for i in order:
                for _ in range(warmup):
                    fns[i]()
                for _ in range(burst):
                    t0 = time.perf_counter()
                    fns[i]()
                    times[i].append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [statistics.median(bucket) for bucket in times]


def _step(loss_fn, x, *args):
    def run():
        z = x.detach().requires_grad_(True)
        loss_fn(z, *args).backward()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/benchmark.py losses", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python tools/benchmark.py losses\n  python tools/benchmark.py losses --repeats 50 --json\n"
               "  python tools/benchmark.py losses --ce-repeats 1000 --threads 2")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per RLL / ICE case (median reported)")
    parser.add_argument("--ce-repeats", type=int, default=300,
                        help="timed calls per weighted-CE case (sub-millisecond each; median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs per RLL / ICE case (weighted-CE cases: 2 per visit, see above)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: stable on shared machines)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []

    logits = torch.randn(256, 625) * 3
    labels = torch.randint(0, 625, (256,))
    steps = [_step(F.cross_entropy, logits, labels)]
    steps += [_step(WeightedCrossEntropyLoss(scheme=name, **params), logits, labels) for name, params in SCHEME_CASES]
    base, *scheme_times = _interleaved_median_times(steps, args.ce_repeats, warmup=2)
    rows.append(("F.cross_entropy (baseline)", base * 1e3, 1.0))
    for (name, _), t in zip(SCHEME_CASES, scheme_times):
        rows.append((f"WeightedCE {name}", t * 1e3, t / base))

    from pytorch_metric_learning import losses as pml
    emb = torch.randn(64, 2048)
    ids = torch.arange(16).repeat_interleave(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pml_rll = pml.RankedListLoss(margin=0.4, Tn=10.0, alpha=1.2, Tp=0.0)
    t_pml = _median_time(_step(pml_rll, emb, ids), args.repeats, args.warmup)
    t_ours = _median_time(_step(RankedListLoss(), emb, ids), args.repeats, args.warmup)
    rows += [("PML RankedListLoss (baseline)", t_pml * 1e3, 1.0), ("our RankedListLoss", t_ours * 1e3, t_ours / t_pml)]
    t_nt = _median_time(_step(pml.NTXentLoss(temperature=0.07), emb, ids), args.repeats, args.warmup)
    t_ice = _median_time(_step(InstanceCrossEntropyLoss(temperature=0.07, scheme="cce"), emb, ids), args.repeats, args.warmup)
    t_ice_dm = _median_time(_step(InstanceCrossEntropyLoss(temperature=0.07, scheme="dm", lam=0.5, beta=8.0), emb, ids),
                            args.repeats, args.warmup)
    rows += [("PML NTXentLoss (baseline)", t_nt * 1e3, 1.0), ("our ICE cce", t_ice * 1e3, t_ice / t_nt),
             ("our ICE dm", t_ice_dm * 1e3, t_ice_dm / t_nt)]

    print(f"{'case':32s} {'median ms':>10s} {'ratio':>7s}")
    for name, ms, ratio in rows:
        print(f"{name:32s} {ms:10.3f} {ratio:7.2f}")
    if args.json:
        print(json.dumps([{"case": n, "median_ms": ms, "ratio": r} for n, ms, r in rows], indent=1))
    return 0
