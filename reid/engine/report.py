"""The end-of-run report: ``final.json`` content and the results table the main job prints."""

from __future__ import annotations

import math

METRIC_KEYS = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")


def numeric_metrics(metrics: dict | None) -> dict | None:
    """Metrics dict restricted to JSON-friendly scalars (drops nested objects)."""
    if metrics is None:
        return None
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
    return out


def _to_dict(obj) -> dict | None:
    return obj.to_dict() if hasattr(obj, "to_dict") else None


def build_final_report(trainer, evaluation, seconds: float, cpu_seconds: float) -> dict:
    """``final.json``: the untrained / final / best evaluations (``evaluation`` is the trainer's
    :class:`~reid.engine.hooks.EvalHook`), the headline chosen by ``eval.report``, and the run's
    counters and timings."""
    cfg = trainer.cfg
    last_metrics = evaluation.last_metrics
    final_metrics = numeric_metrics(last_metrics) if last_metrics else None
    best_val = getattr(evaluation, "best_val", None) or {}
    headline = {"best": evaluation.best["metrics"], "best_by_val": best_val.get("metrics")}.get(
        cfg.eval.report, final_metrics)
    return {
        "name": cfg.name,
        "output_dir": str(trainer.output_dir),
        "protocol": (last_metrics or {}).get("protocol", trainer.data.protocol),
        "metric": cfg.eval.metric,
        "dataset": trainer.data.summary(),
        "reporting": cfg.eval.report,
        "headline": headline,
        "final": final_metrics,
        "final_epoch": trainer.epoch,
        "best": evaluation.best["metrics"],
        "best_epoch": evaluation.best["epoch"],
        # the same entry under its honest name: selected on the test set, an oracle
        "best_by_test": evaluation.best["metrics"],
        "best_by_test_epoch": evaluation.best["epoch"],
        "best_by_test_note": "oracle: the evaluation with the highest test mAP (selected on the test set)",
        # eval.validation: the evaluation with the highest mAP on the held-out training identities
        "best_by_val": best_val.get("metrics"),
        "best_by_val_epoch": best_val.get("epoch") if best_val.get("metrics") else None,
        "untrained": numeric_metrics(evaluation.untrained) if evaluation.untrained else None,
        "history": evaluation.history,
        "epochs": cfg.train.epochs,
        "global_step": trainer.global_step,
        "nan_skipped": trainer.nan_skipped,
        # corrupt-frame policy summary (frames decoded / dropped) and the pre-training frame check
        "frame_issues": _to_dict(getattr(trainer.data, "frame_issues", None)),
        "frame_check": _to_dict(getattr(trainer, "frame_check", None)),
        "world_size": trainer.dist.world_size,
        "device": str(trainer.device),
        "num_classes": trainer.num_classes,
        "wall_seconds": seconds,
        # CPU time of this process (all threads): on a shared machine wall time / load
        "cpu_seconds": cpu_seconds,
    }


def format_final_table(final: dict) -> str:
    """The end-of-run table: untrained vs trained (final and best) retrieval metrics."""
    rows = []
    if final.get("untrained"):
        rows.append(("untrained (epoch 0)", final["untrained"]))
    if final.get("final"):
        rows.append((f"final (epoch {final['final_epoch']})", final["final"]))
    if final.get("best_by_val"):  # with eval.validation: say which best is selectable, which an oracle
        rows.append((f"best by val (epoch {final['best_by_val_epoch']})", final["best_by_val"]))
        if final.get("best"):
            rows.append((f"oracle best (epoch {final['best_epoch']})", final["best"]))
    elif final.get("best"):
        rows.append((f"best (epoch {final['best_epoch']})", final["best"]))
    header = f"{'model':<22}" + "".join(f"{k:>9}" for k in METRIC_KEYS)
    lines = [
        f"Retrieval on {final.get('dataset', {}).get('name', '?')} — protocol {final['protocol']}, "
        f"{final['metric']} distance, headline = {final['reporting']} checkpoint",
        header,
        "-" * len(header),
    ]
    for name, metrics in rows:
        cells = "".join(
            f"{100 * metrics[k]:>8.2f}%" if isinstance(metrics.get(k), (int, float)) and math.isfinite(metrics[k])
            else f"{'n/a':>9}" for k in METRIC_KEYS
        )
        lines.append(f"{name:<22}{cells}")
    q = (final.get("final") or {}).get("queries")
    nm = (final.get("final") or {}).get("queries_without_match")
    if q is not None:
        lines.append(f"queries: {q} ({nm} without a valid gallery match, excluded from mAP/CMC)")
    return "\n".join(lines)


__all__ = ["METRIC_KEYS", "numeric_metrics", "build_final_report", "format_final_table"]
