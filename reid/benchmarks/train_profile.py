"""Where one training step's time goes: phase timers around the production step.

``python tools/benchmark.py train --profile`` runs :meth:`reid.engine.trainer.Trainer.run_step`
on batches from the real DataLoader, unchanged, with wall-clock marks taken by hooks the step
already passes through (no copy of the step's code, so what is timed is what ``fit`` runs):

* ``data``: ``next(loader)`` (decode, clip sampling, augmentation, collation);
* ``input``: model entry to backbone entry (mask selection, uint8 -> float normalisation);
* ``backbone``: the backbone's forward (module pre/post hooks);
* ``head``: backbone exit to model exit (pooling, projection, aggregation, BNNeck, classifier);
* ``id loss`` / ``metric loss``: the two loss modules' forwards (module hooks); ``loss rest``:
  the rest of ``compute_losses`` (casts, the weighted sum);
* ``backward``: ``total.backward()`` (through a pass-through proxy of the step's GradScaler);
* ``optimizer``: ``optimizer.step()`` (the optimiser's own step pre/post hooks);
* ``param check``: the post-step finite check (``check_parameters``);
* ``other``: the rest of ``run_step`` = step wall time minus the phases above (BN buffer save,
  gradient norm / clipping, finite checks, zero_grad, schedule step, loss floats for the hooks).

On the CPU every op is synchronous, so the marks are exact. Shares are ``sum over steps of the
phase / sum over steps of data + step``: on a loaded machine absolute times inflate, shares much
less (every phase is slowed alike). ``--ops N`` adds torch.profiler's top-N operators of one step.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import torch

PHASES = ("data", "input", "backbone", "head", "id loss", "metric loss", "loss rest", "backward",
          "optimizer", "param check", "other")


class _Marks:
    """Named ``perf_counter`` marks and accumulated durations of the current step."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.d: dict[str, float] = defaultdict(float)

    def mark(self, name: str) -> None:
        self.t[name] = time.perf_counter()

    def span(self, name: str, start: str, end: str) -> None:
        self.d[name] += self.t[end] - self.t[start]


class _TimedBackward:
    """What the step's ``scaler.scale(total)`` returns under profiling: ``.backward()`` timed."""

    def __init__(self, tensor: torch.Tensor, marks: _Marks) -> None:
        self.tensor, self.marks = tensor, marks

    def backward(self, *args, **kwargs) -> None:
        t0 = time.perf_counter()
        self.tensor.backward(*args, **kwargs)
        self.marks.d["backward"] += time.perf_counter() - t0


class _ScalerProxy:
    """Pass-through of a GradScaler whose ``scale`` returns a :class:`_TimedBackward`."""

    def __init__(self, scaler, marks: _Marks) -> None:
        self._scaler, self._marks = scaler, marks

    def scale(self, tensor):
        return _TimedBackward(self._scaler.scale(tensor), self._marks)

    def __getattr__(self, name):
        return getattr(self._scaler, name)


def _timed_method(marks: _Marks, name: str, method):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            marks.d[name] += time.perf_counter() - t0
    return wrapper


def instrument(trainer) -> _Marks:
    """Attach the phase marks to a set-up trainer (hooks on its model, losses, optimiser; instance
    wrappers of ``compute_losses`` and ``check_parameters``; a proxy of its scaler)."""
    marks = _Marks()
    model = trainer.model
    model.register_forward_pre_hook(lambda *_: marks.mark("model_in"))
    model.backbone.register_forward_pre_hook(lambda *_: marks.mark("backbone_in"))

    def backbone_out(*_):
        marks.mark("backbone_out")
        marks.span("input", "model_in", "backbone_in")
        marks.span("backbone", "backbone_in", "backbone_out")

    def model_out(*_):
        marks.mark("model_out")
        marks.span("head", "backbone_out", "model_out")

    model.backbone.register_forward_hook(backbone_out)
    model.register_forward_hook(model_out)
    for name, loss in (("id loss", trainer.id_loss), ("metric loss", trainer.metric_loss)):
        if isinstance(loss, torch.nn.Module):
            loss.register_forward_pre_hook(lambda *_, n=name: marks.mark(n))
            loss.register_forward_hook(lambda *_, n=name: marks.d.__setitem__(
                n, marks.d[n] + time.perf_counter() - marks.t[n]))
    trainer.compute_losses = _timed_method(marks, "losses", trainer.compute_losses)
    trainer.check_parameters = _timed_method(marks, "param check", trainer.check_parameters)
    trainer.optimizer.register_step_pre_hook(lambda *_: marks.mark("opt_in"))
    trainer.optimizer.register_step_post_hook(lambda *_: (marks.mark("opt_out"),
                                                          marks.span("optimizer", "opt_in", "opt_out")))
    trainer.scaler = _ScalerProxy(trainer.scaler, marks)
    return marks


def profile_trainer(trainer, steps: int, warmup: int, ops: int = 0) -> dict:
    """Phase times of ``warmup + steps`` production steps (the first ``warmup`` untimed) of a
    set-up trainer; ``ops > 0`` also profiles one extra step with torch.profiler."""
    marks = instrument(trainer)
    trainer.ddp_model.train()

    def batches_forever():
        epoch = 0
        while True:
            yield from trainer.train_loader(epoch)
            epoch += 1

    source = batches_forever()
    rows = []
    clips = None
    for i in range(warmup + steps):
        marks.d.clear()
        t0 = time.perf_counter()
        batch = next(source)
        t1 = time.perf_counter()
        trainer.run_step(batch)
        t2 = time.perf_counter()
        if i < warmup:
            continue
        clips = int(batch["frames"].shape[0])
        d = dict(marks.d)
        row = {p: d.get(p, 0.0) for p in PHASES}
        row["data"] = t1 - t0
        row["loss rest"] = max(d.get("losses", 0.0) - row["id loss"] - row["metric loss"], 0.0)
        measured = sum(row[p] for p in PHASES if p not in ("data", "other"))
        row["other"] = max((t2 - t1) - measured, 0.0)
        row["step"] = t2 - t1
        rows.append(row)
    total = sum(r["data"] + r["step"] for r in rows)
    out = {
        "clips_per_step": clips,
        "steps": len(rows),
        "s_per_step_median": statistics.median(r["data"] + r["step"] for r in rows),
        "phases": {p: {"ms_median": 1000 * statistics.median(r[p] for r in rows),
                       "share": sum(r[p] for r in rows) / total} for p in PHASES},
    }
    out["clips_per_s"] = clips / out["s_per_step_median"]
    if ops > 0:
        from torch.profiler import ProfilerActivity, profile

        batch = next(source)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.run_step(batch)
        out["ops_table"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=ops)
    return out


def format_profile(name: str, result: dict) -> str:
    lines = [f"{name}: {result['clips_per_step']} clips/step, median {result['s_per_step_median']:.3f} s/step "
             f"({result['clips_per_s']:.2f} clips/s, data included), {result['steps']} steps",
             f"  {'phase':<13}{'median ms':>11}{'share':>8}"]
    for phase, v in result["phases"].items():
        lines.append(f"  {phase:<13}{v['ms_median']:>11.1f}{100 * v['share']:>7.1f}%")
    if "ops_table" in result:
        lines.append(result["ops_table"])
    return "\n".join(lines)


__all__ = ["PHASES", "instrument", "profile_trainer", "format_profile"]
