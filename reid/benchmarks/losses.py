"""Loss benchmark: forward+backward time of our losses relative to baselines in the same run.

* weighted CE (each scheme) vs ``F.cross_entropy`` - batch 256, 625 classes (MARS train ids), both
  as the loss module training calls (``WeightedCrossEntropyLoss``) and as the core function
  (``reid.weighting.weighted_cross_entropy(...).loss``, the module minus its ``last_stats``);
* our ``RankedListLoss`` vs PML's ``RankedListLoss`` and our ``InstanceCrossEntropyLoss`` vs PML's
  ``NTXentLoss`` - batch 64 (16 ids x 4) of 2048-d embeddings.

CPU, one torch thread by default (``--threads``; the same for every case), median over repeats
after warm-up. Every case times the same inputs and a full step: a fresh leaf copy of the
logits / embeddings, forward, ``backward()``. The weighted-CE cases (sub-millisecond each) are
timed *interleaved* with their baseline: rounds that visit the baseline and every case in a
seeded random order, a short burst of calls per visit (2 untimed, 5 timed), so each call runs in
its own case's steady state while load drifting on a shared machine hits both sides of each
ratio alike; the ratio is median(case) / median(baseline). Goals: weighted CE <= 1.2x plain CE
for every scheme (issue 14; the verdict line names the worst scheme); our RLL <= 1.5x PML's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from reid.losses import InstanceCrossEntropyLoss, RankedListLoss, WeightedCrossEntropyLoss
from reid.weighting import get_scheme, weighted_cross_entropy

#: (scheme, parameters) timed against F.cross_entropy
SCHEME_CASES = [("cce", {}), ("mae", {}), ("mse", {}), ("gce", {"q": 0.7}), ("imae", {"T": 8.0}),
           ("dm", {"lam": 0.5, "beta": 8.0}), ("exponential", {"beta": 2.0}), ("normal", {"psi": 0.5, "beta": 4.0}),
           ("beta", {"alpha": 2.0, "eta": 3.0})]
#: weighted CE / F.cross_entropy, fwd+bwd, every scheme (issue 14, goal 4)
WEIGHTED_CE_GOAL = 1.2


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


def _core(scheme):
    """The core function alone: what :class:`WeightedCrossEntropyLoss` adds is its ``last_stats``."""
    def loss(z, y):
        return weighted_cross_entropy(z, y, scheme).loss
    return loss


def weighted_ce_rows(repeats: int, n: int = 256, classes: int = 625) -> list[tuple[str, float, float]]:
    """``(case, median ms, ratio to F.cross_entropy)`` for the baseline, then every scheme as the
    loss module and as the core function, all timed interleaved in one run."""
    torch.manual_seed(0)
    logits = torch.randn(n, classes) * 3
    labels = torch.randint(0, classes, (n,))
    names = ["F.cross_entropy (baseline)"]
    steps = [_step(F.cross_entropy, logits, labels)]
    for name, params in SCHEME_CASES:
        names += [f"WeightedCE {name}", f"weighted_cross_entropy {name}"]
        steps += [_step(WeightedCrossEntropyLoss(scheme=name, **params), logits, labels),
                  _step(_core(get_scheme(name, **params)), logits, labels)]
    times = _interleaved_median_times(steps, repeats, warmup=2)
    return [(name, t * 1e3, t / times[0]) for name, t in zip(names, times)]


def weighted_ce_verdict(rows) -> list[str]:
    """One line per form (module, core function): the worst scheme's ratio against the goal."""
    lines = []
    for prefix, what in (("WeightedCE ", "WeightedCrossEntropyLoss"), ("weighted_cross_entropy ", "weighted_cross_entropy")):
        ratios = {name[len(prefix):]: r for name, _, r in rows if name.startswith(prefix)}
        worst = max(ratios, key=ratios.get)
        met = "met" if ratios[worst] <= WEIGHTED_CE_GOAL else "NOT met"
        lines.append(f"{what} / F.cross_entropy: {min(ratios.values()):.2f}-{ratios[worst]:.2f} "
                     f"(worst: {worst}); goal <= {WEIGHTED_CE_GOAL}: {met}")
    return lines


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # not on every platform
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/benchmark.py losses", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python tools/benchmark.py losses\n  python tools/benchmark.py losses --only weighted-ce\n"
               "  python tools/benchmark.py losses --repeats 50 --json\n"
               "  python tools/benchmark.py losses --ce-repeats 1000 --threads 2")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per RLL / ICE case (median reported)")
    parser.add_argument("--ce-repeats", type=int, default=300,
                        help="timed calls per weighted-CE case (sub-millisecond each; median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs per RLL / ICE case (weighted-CE cases: 2 per visit, see above)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: stable on shared machines)")
    parser.add_argument("--only", choices=("all", "weighted-ce", "ranking"), default="all",
                        help="which cases to run (default all)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 625), metavar=("N", "C"),
                        help="weighted-CE batch and class count (default 256 625; tiny sizes only check the code runs)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = _loadavg()
    rows, verdict = [], []

    if args.only in ("all", "weighted-ce"):
        rows += weighted_ce_rows(args.ce_repeats, *args.size)
        verdict = weighted_ce_verdict(rows)

    if args.only in ("all", "ranking"):
        from pytorch_metric_learning import losses as pml
        torch.manual_seed(0)
        emb = torch.randn(64, 2048)
        ids = torch.arange(16).repeat_interleave(4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pml_rll = pml.RankedListLoss(margin=0.4, Tn=10.0, alpha=1.2, Tp=0.0)
        t_pml = _median_time(_step(pml_rll, emb, ids), args.repeats, args.warmup)
        t_ours = _median_time(_step(RankedListLoss(), emb, ids), args.repeats, args.warmup)
        rows += [("PML RankedListLoss (baseline)", t_pml * 1e3, 1.0), ("our RankedListLoss", t_ours * 1e3, t_ours / t_pml)]
        t_nt = _median_time(_step(pml.NTXentLoss(temperature=0.07), emb, ids), args.repeats, args.warmup)
        t_ice = _median_time(_step(InstanceCrossEntropyLoss(temperature=0.07, scheme="cce"), emb, ids), args.repeats,
                             args.warmup)
        t_ice_dm = _median_time(_step(InstanceCrossEntropyLoss(temperature=0.07, scheme="dm", lam=0.5, beta=8.0), emb,
                                      ids), args.repeats, args.warmup)
        rows += [("PML NTXentLoss (baseline)", t_nt * 1e3, 1.0), ("our ICE cce", t_ice * 1e3, t_ice / t_nt),
                 ("our ICE dm", t_ice_dm * 1e3, t_ice_dm / t_nt)]

    print(f"torch threads {args.threads}; load average before {load_before}, after {_loadavg()}")
    print(f"{'case':34s} {'median ms':>10s} {'ratio':>7s}")
    for name, ms, ratio in rows:
        print(f"{name:34s} {ms:10.3f} {ratio:7.2f}")
    for line in verdict:
        print(line)
    if args.json:
        goal = {"goal": WEIGHTED_CE_GOAL}
        print(json.dumps([{"case": n, "median_ms": ms, "ratio": r, **(goal if n.lower().startswith("weighted") else {})}
                          for n, ms, r in rows], indent=1))
    return 0
