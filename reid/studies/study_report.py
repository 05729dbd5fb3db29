"""A study's report from its finished cells: ``runs.csv``, ``table.md``, ``verdicts.md`` and figures.

Three checkpoints per cell: **final** (the last evaluation, ProSelfLC's convention), **best by
val** (highest metric on the validation split carved from the training data with its noisy labels:
what a user can select on; absent without ``validation``), **best by test** (highest test metric:
an **oracle**, the IMAE/DM papers' convention; never a result a user could reach).

Seeds: each cell is mean ± std (population std, ``np.std``) over its seeds. Verdicts
(:func:`paired_verdicts`): against the study's ``baseline`` scheme, the per-seed difference
``scheme - baseline`` of the same seed and noise; "better" / "worse" only when every seed's
difference has the same sign and there are at least two seeds, else "inconclusive".
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

WHICH = ("final", "best_by_val", "best_by_test")
ROW_KEYS = ("test_acc", "noisy_fit", "clean_fit", "correction_rate", "train_acc", "epoch")
# direction of "better" for the verdicts: test metric up, noisy-subset fit down
VERDICT_KEYS = {"test_acc": +1, "noisy_fit": -1}


def scheme_name(record: dict) -> str:
    return record["scheme"].get("label") or record["scheme"]["name"]


def cell_rows(records: list[dict]) -> list[dict]:
    """One flat row per cell (``runs.csv``)."""
    rows = []
    for r in records:
        row = {"cell": r["id"], "scheme": scheme_name(r), "noise_kind": r["noise_kind"],
               "noise_rate": r["noise_rate"], "seed": r["seed"], "metric": r["metric_name"]}
        for which in WHICH:
            src = r.get(which) or (r.get("best") if which == "best_by_test" else None) or {}
            for k in ROW_KEYS:
                v = src.get(k)
                row[f"{which}_{k}"] = float("nan") if v is None else v
        row["onset_epoch"] = r.get("onset_epoch")
        row["noisy_fit_late_change"] = late_change(r.get("fit_history") or [], "noisy_fit")
        curves = r.get("curves") or {}
        for k in ("auc_p", "auc_w", "grad_share_noisy"):
            row[f"final_{k}"] = (curves.get(k) or [float("nan")])[-1]
        rows.append(row)
    return rows


def late_change(history: list[dict], key: str, tail: float = 0.2) -> float:
    """``key`` at the last evaluation minus ``key`` at the last evaluation at or before
    ``(1 - tail)`` of the run (nan with fewer than two evaluations): ~0 = a plateau, > 0 = still
    rising (e.g. the noisy-subset fit of a run that has not finished memorising)."""
    pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None and h.get("epoch") is not None]
    if len(pts) < 2:
        return float("nan")
    last_epoch, last = pts[-1]
    earlier = [v for e, v in pts[:-1] if e <= (1.0 - tail) * last_epoch] or [pts[0][1]]
    return float(last - earlier[-1])


def fmt(values, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of the finite values (one value: no std; none: n/a)."""
    v = np.asarray([x for x in values if x is not None], dtype=float) * scale
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def _groups(rows: list[dict]) -> list[tuple[str, str, float]]:
    return list(dict.fromkeys((r["scheme"], r["noise_kind"], r["noise_rate"]) for r in rows))


def paired_verdicts(rows: list[dict], baseline: str, which: str = "final") -> list[dict]:
    """Per (scheme != baseline, noise) and key of :data:`VERDICT_KEYS`: the per-seed paired
    differences (seeds both cells finished), their mean and std, and the verdict."""
    out = []
    for scheme, kind, rate in _groups(rows):
        if scheme == baseline:
            continue
        mine = {r["seed"]: r for r in rows if (r["scheme"], r["noise_kind"], r["noise_rate"]) == (scheme, kind, rate)}
        base = {r["seed"]: r for r in rows if (r["scheme"], r["noise_kind"], r["noise_rate"]) == (baseline, kind, rate)}
        seeds = sorted(set(mine) & set(base))
        for key, sign in VERDICT_KEYS.items():
            diffs = np.asarray([mine[s][f"{which}_{key}"] - base[s][f"{which}_{key}"] for s in seeds], dtype=float)
            diffs = diffs[np.isfinite(diffs)]
            if seeds and diffs.size == 0:
                continue  # the quantity does not exist here (e.g. no noisy subset under frame-only noise)
            if diffs.size < 2:
                verdict = f"inconclusive ({diffs.size} paired seed{'s' if diffs.size != 1 else ''})"
            elif np.all(diffs == 0):
                verdict = "no difference (equal on every seed)"
            elif np.all(sign * diffs > 0):
                verdict = "better"
            elif np.all(sign * diffs < 0):
                verdict = "worse"
            else:
                verdict = "inconclusive (not the same sign on every seed)"
            out.append({"scheme": scheme, "baseline": baseline, "noise_kind": kind, "noise_rate": rate,
                        "which": which, "key": key, "seeds": seeds, "diffs": diffs.tolist(), "verdict": verdict})
    return out


def _noise(kind: str, rate: float) -> str:
    return "clean" if rate == 0 else f"{kind} {rate:g}"


def table_lines(study, rows: list[dict], metric: str) -> list[str]:
    seeds = sorted({r["seed"] for r in rows})
    has_val = any(np.isfinite(r["best_by_val_test_acc"]) for r in rows)
    lines = [f"# Study `{study.name}`", "",
             f"Test {metric} / noisy-subset fit (against the *noisy* labels; lower = more robust) / clean-subset "
             f"fit, in %, mean ± std over seeds {seeds}" + (" (one seed: no std)." if len(seeds) == 1 else "."),
             "**final** = last evaluation; **best by val** = highest metric on the validation split held out from "
             "the training data with its noisy labels" + ("" if has_val else " (not configured: n/a)") +
             "; **best by test** = highest test metric, an **oracle** (selected on the test set; the IMAE/DM "
             "papers' convention), not a result.",
             f"Onset = first evaluation epoch whose noisy-subset fit exceeds {study.memorisation_threshold:g} "
             "(per seed; '-' = not within the run). AUC_p / AUC_w = P(noisy example has lower p / lower w "
             "than a clean one) at the last evaluation; share = the noisy examples' share of the batch's total "
             "gradient magnitude in the last epoch. Δ late = noisy fit at the end minus at 80 % of the run "
             "(~0: plateau; > 0: still memorising).", "",
             "| scheme | noise | final: test / noisy fit / clean fit | best by val: test / noisy fit (epoch) "
             "| best by test (oracle): test (epoch) | onset | Δ late | AUC_p / AUC_w / share |",
             "|---|---|---|---|---|---|---|---|"]
    for scheme, kind, rate in _groups(rows):
        sel = [r for r in rows if (r["scheme"], r["noise_kind"], r["noise_rate"]) == (scheme, kind, rate)]

        def col(which, keys):
            return " / ".join(fmt([r[f"{which}_{k}"] for r in sel]) for k in keys)

        val = col("best_by_val", ("test_acc", "noisy_fit")) + f" ({fmt([r['best_by_val_epoch'] for r in sel], 1, 0)})"
        oracle = fmt([r["best_by_test_test_acc"] for r in sel]) + f" ({fmt([r['best_by_test_epoch'] for r in sel], 1, 0)})"
        onset = ", ".join("-" if r["onset_epoch"] is None else str(r["onset_epoch"]) for r in sel)
        det = " / ".join(fmt([r[f"final_{k}"] for r in sel], 1, 2) for k in ("auc_p", "auc_w", "grad_share_noisy"))
        late = fmt([r["noisy_fit_late_change"] for r in sel])
        lines.append(f"| {scheme} | {_noise(kind, rate)} | {col('final', ('test_acc', 'noisy_fit', 'clean_fit'))} "
                     f"| {val} | {oracle} | {onset} | {late} | {det} |")
    return lines


def verdict_lines(verdicts: list[dict], metric: str) -> list[str]:
    if not verdicts:
        return []
    base, which = verdicts[0]["baseline"], verdicts[0]["which"]
    title = {"final": "final checkpoint", "best_by_val": "checkpoint chosen on the validation split"}.get(which, which)
    lines = ["", f"## Paired verdicts against `{base}` ({title})", "",
             "Per seed, scheme minus baseline (same seed, same noisy labels), in points; a verdict only where "
             "every seed agrees in sign (and at least two seeds).", "",
             "| scheme | noise | quantity | per-seed difference | mean ± std | verdict |", "|---|---|---|---|---|---|"]
    names = {"test_acc": f"test {metric}", "noisy_fit": "noisy fit (lower better)"}
    for v in verdicts:
        per = ", ".join(f"{100 * d:+.1f}" for d in v["diffs"]) or "-"
        lines.append(f"| {v['scheme']} | {_noise(v['noise_kind'], v['noise_rate'])} | {names[v['key']]} | {per} "
                     f"| {fmt(v['diffs'])} | {v['verdict']} |")
    return lines


def measured_weights(records: list[dict], out: Path, seed: int) -> dict:
    """display -> ``(p, w)`` pooled over every evaluation of the trajectories of ``seed``'s first
    noisy cell per scheme (classification: ``cells/<id>/trajectories.npz``; reid: ``.../run/``)."""
    import numpy as np

    measured = {}
    for r in records:
        name = scheme_name(r)
        if r["seed"] != seed or r["noise_rate"] <= 0 or name in measured:
            continue
        for path in (out / "cells" / r["id"] / "trajectories.npz", out / "cells" / r["id"] / "run" / "trajectories.npz"):
            if path.is_file():
                with np.load(path) as t:
                    if t["p"].size:
                        measured[name] = (t["p"].reshape(-1), t["w"].reshape(-1))
                break
    return measured


def write_report(study, records: list[dict], out: Path, failed=()) -> None:
    """``runs.csv``, ``table.md`` (with the verdicts when ``study.baseline`` is set) and the figures."""
    from reid.studies.plots import (plot_emphasis_densities, plot_final_p_histograms, plot_metric_vs_rate,
                                    plot_weight_curves)
    from reid.studies.plots_trajectories import plot_detection_curves

    out = Path(out)
    rows = cell_rows(records)
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    metric = {"test_acc": "accuracy"}.get(records[0]["metric_name"], records[0]["metric_name"])
    lines = table_lines(study, rows, metric)
    if study.baseline:
        lines += verdict_lines(paired_verdicts(rows, study.baseline), metric)
        if any(np.isfinite(r["best_by_val_test_acc"]) for r in rows):
            lines += verdict_lines(paired_verdicts(rows, study.baseline, "best_by_val"), metric)
    if failed:
        lines += ["", f"Not in the table (failed; see their cell_error.json, rerun to retry): {', '.join(failed)}"]
    (out / "table.md").write_text("\n".join(lines) + "\n")

    plot_rows = [{**r, "final": r["final_test_acc"], "best": r["best_by_test_test_acc"]} for r in rows]
    plot_metric_vs_rate(plot_rows, "final", out / "metric_vs_rate_final.png", ylabel=f"test {metric} (final)")
    plot_metric_vs_rate(plot_rows, "best", out / "metric_vs_rate_best.png", ylabel=f"test {metric} (best by test, oracle)")
    done = {scheme_name(r) for r in records}
    plot_weight_curves([(s.display, s.name, s.params) for s in study.schemes if s.display in done], out / "weight_curves.png")
    seed0 = sorted({r["seed"] for r in rows})[0]
    measured = measured_weights(records, out, seed0)
    if measured:
        plot_emphasis_densities([(s.display, s.name, s.params) for s in study.schemes if s.display in done],
                                measured, out / "emphasis_densities.png",
                                title=f"emphasis densities: analytic and measured (seed {seed0}, all evaluations)")
    hists, curves = {}, {}
    for r in records:
        if r["seed"] == seed0 and r["noise_rate"] > 0:
            key = f"{scheme_name(r)} {r['noise_kind']} {r['noise_rate']:g}"
            if r.get("histogram_final"):
                hists.setdefault(key, r["histogram_final"])
            if r.get("curves"):
                curves.setdefault(key, r["curves"])
    if hists:
        plot_final_p_histograms(hists, out / "p_histograms_final.png", title=f"clean vs noisy $p_i$, last epoch, seed {seed0}")
    if curves:
        plot_detection_curves(curves, out / "detection_curves.png", title=f"noisy-subset detection and gradient share, seed {seed0}")


DOC_FIGURES = ("emphasis_densities.png", "detection_curves.png", "metric_vs_rate_final.png",
               "p_histograms_final.png", "weight_curves.png")


def splice_into_doc(doc: Path, study_name: str, out: Path, command: str) -> Path:
    """Put a finished study's ``table.md`` and figures into a markdown document, between
    ``<!-- begin study:NAME -->`` and ``<!-- end study:NAME -->`` (appended when the markers are
    absent; the rest of the document is kept). Figures are copied to ``img/NAME/`` beside the
    document, so docs/robustness.md is regenerated from study outputs, never edited by hand."""
    import shutil

    doc, out = Path(doc), Path(out)
    img_dir = doc.parent / "img" / study_name
    img_dir.mkdir(parents=True, exist_ok=True)
    table = (out / "table.md").read_text().strip().splitlines()
    body = [f"<!-- begin study:{study_name} -->", "", "```bash", command, "```", ""]
    body += ["#" + line if line.startswith("#") else line for line in table]  # one heading level down
    for name in DOC_FIGURES:
        if (out / name).is_file():
            shutil.copyfile(out / name, img_dir / name)
            body += ["", f"![{study_name}: {name[:-4].replace('_', ' ')}](img/{study_name}/{name})"]
    body += ["", f"<!-- end study:{study_name} -->"]
    text = doc.read_text() if doc.is_file() else ""
    begin, end = f"<!-- begin study:{study_name} -->", f"<!-- end study:{study_name} -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + "\n".join(body) + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    doc.write_text(text)
    return doc


__all__ = ["splice_into_doc", "late_change", "measured_weights", "cell_rows", "paired_verdicts", "table_lines", "verdict_lines", "write_report", "fmt", "WHICH"]
