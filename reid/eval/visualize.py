"""Ranked-list pictures and the HTML index that browses them (``reid eval --visualize N``).

Each PNG shows a query tracklet's frames on their own, apart from its ranked list (the query's
own gallery entry is left out: under ``official`` it is junk at rank 1 and says nothing), then its
top-k gallery tracklets framed by status:

* green ``match`` (a positive under the protocol), red ``wrong`` (another identity),
  orange ``distractor`` (pid 0: a negative the dataset marks as a distractor),
  grey ``junk`` (ignored by the protocol's scoring).

Every tile is captioned with its rank in the shown list, pid, camera and the score (cosine
similarity, or Euclidean distance). Match and junk are the protocol's own rules
(``Protocol.positive_mask`` / ``Protocol.junk_mask``), so a picture colours exactly what the
metrics score. Queries are drawn worst-first by AP by default (``order="best"``: highest first;
``"random"``: a seeded sample); queries without any valid match have no AP and come last.
``index.html`` beside the PNGs lists them in that order with their AP.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from reid.eval.features import resolve_protocol
from reid.eval.knn import knn_search
from reid.eval.self_index import check_query_gallery_index, self_index_from_features
from reid.protocols import Protocol

COLORS = {"match": (0, 170, 0), "wrong": (220, 0, 0), "junk": (150, 150, 150), "distractor": (240, 150, 0),
          "query": (40, 90, 220)}
ORDERS = ("worst", "best", "random")
DISTRACTOR_PID = 0  # MARS / Market-1501: pid 0 marks distractors


def _read_rgb(path: str, height: int, width: int) -> np.ndarray:
    import cv2

    from reid.data.frames import FrameReadError, read_frame

    try:
        img = read_frame(path)
    except FrameReadError:  # unreadable frame: a black tile rather than a crash in a diagnostic tool
        return np.zeros((height, width, 3), np.uint8)
    return cv2.resize(img, (width, height))


def _tile(frames: list[str], n: int, height: int, width: int, color, border: int = 4) -> np.ndarray:
    """``n`` evenly spaced frames side by side inside a coloured border."""
    picks = np.linspace(0, len(frames) - 1, num=min(n, len(frames))).round().astype(int) if frames else []
    imgs = [_read_rgb(frames[i], height, width) for i in picks] or [np.zeros((height, width, 3), np.uint8)]
    strip = np.concatenate(imgs, axis=1)
    out = np.empty((height + 2 * border, strip.shape[1] + 2 * border, 3), np.uint8)
    out[:] = color
    out[border:-border, border:-border] = strip
    return out


def save_ranked_list(query_frames: list[str], gallery_frames: list[list[str]], statuses: list[str],
                     out_path: str | Path, title: str = "", frames_per_tracklet: int = 3, height: int = 96,
                     width: int = 48, query_caption: str = "query", captions: list[str] | None = None) -> Path:
    """Write one PNG: the query (blue border) on the left, a gap, then the ranked gallery
    tracklets. ``statuses[i]`` (a key of :data:`COLORS`) frames ``gallery_frames[i]``;
    ``captions[i]`` is printed above it (default ``#i status``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captions = captions or [f"#{i + 1} {s}" for i, s in enumerate(statuses)]
    tiles = [_tile(query_frames, frames_per_tracklet, height, width, COLORS["query"])]
    tiles += [_tile(f, frames_per_tracklet, height, width, COLORS[s]) for f, s in zip(gallery_frames, statuses)]
    n = len(tiles)
    # column 1 is an empty spacer: the query stands apart from its list
    fig, axes = plt.subplots(1, n + 1, figsize=(1.3 * frames_per_tracklet * (n + 0.2) * width / 48, 3.4),
                             gridspec_kw={"width_ratios": [1, 0.2] + [1] * (n - 1)})
    axes = np.atleast_1d(axes)
    axes[1].axis("off")
    for ax, tile, caption in zip([axes[0], *axes[2:]], tiles, [query_caption, *captions]):
        ax.imshow(tile)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(caption, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9, y=1.08)  # above the three-line tile captions
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out_path


def ranked_statuses(protocol: str | Protocol, query_pid: int, query_camid: int, gallery_pids: np.ndarray,
                    gallery_camids: np.ndarray, is_self: np.ndarray | None = None) -> list[str]:
    """``"match"``, ``"junk"``, ``"distractor"`` (a pid-0 negative) or ``"wrong"`` for each
    listed gallery item of one query; ``is_self`` marks the query's own entry (junk)."""
    protocol = resolve_protocol(protocol)
    gallery_pids = np.asarray(gallery_pids)
    junk = protocol.junk_mask(query_pid, query_camid, gallery_pids, gallery_camids, is_self)
    match = protocol.positive_mask(query_pid, query_camid, gallery_pids, gallery_camids, is_self)
    distractor = gallery_pids == DISTRACTOR_PID
    return ["junk" if j else "match" if m else "distractor" if d else "wrong"
            for j, m, d in zip(junk.tolist(), match.tolist(), distractor.tolist())]


def order_queries(average_precision: np.ndarray, count: int, order: str = "worst", seed: int = 0) -> np.ndarray:
    """``count`` query indices: lowest AP first (``worst``), highest first (``best``) or a seeded
    random sample (``random``, ascending). Ties keep query order; queries without a match (NaN
    AP) come after every scored one."""
    if order not in ORDERS:
        raise ValueError(f"order {order!r}: must be one of {', '.join(ORDERS)}")
    ap = np.asarray(average_precision, dtype=np.float64)
    count = min(count, len(ap))
    if order == "random":
        return np.sort(np.random.default_rng(seed).choice(len(ap), size=count, replace=False))
    key = ap if order == "worst" else -ap
    key = np.where(np.isnan(ap), np.inf, key)
    return np.argsort(key, kind="stable")[:count]


def _display_scores(qf: np.ndarray, gf: np.ndarray, metric: str) -> np.ndarray:
    """What a tile prints: cosine similarity or Euclidean distance of one query to listed items."""
    q, g = qf.astype(np.float64), gf.astype(np.float64)
    if metric == "cosine":
        return g @ q / np.maximum(np.linalg.norm(g, axis=1) * np.linalg.norm(q), 1e-300)
    return np.linalg.norm(g - q[None, :], axis=1)


def write_index(out_dir: Path, entries: list[dict], title: str) -> Path:
    """``index.html``: one row per picture (position, query, pid, camera, AP, the image)."""
    rows = []
    for e in entries:
        ap = "no valid match" if np.isnan(e["ap"]) else f"{100 * e['ap']:.2f}%"
        name = html.escape(e["file"], quote=True)
        rows.append(f'<tr><td>{e["position"]}</td><td><a href="{name}">query {e["query"]}</a></td>'
                    f'<td>{e["pid"]}</td><td>{e["camid"]}</td><td>{ap}</td>'
                    f'<td><a href="{name}"><img src="{name}" height="90" loading="lazy"></a></td></tr>')
    text = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n"
            "<style>body{{font-family:sans-serif}} td{{padding:2px 8px}} tr:nth-child(even){{background:#f2f2f2}}"
            "</style></head>\n<body><h1>{t}</h1>\n<p>green match, red wrong identity, orange distractor (pid 0), "
            "grey junk (not scored); the query's own tracklet is not listed.</p>\n"
            "<table><tr><th>#</th><th>query</th><th>pid</th><th>camera</th><th>AP</th><th>ranked list</th></tr>\n"
            "{rows}\n</table></body></html>\n").format(t=html.escape(title), rows="\n".join(rows))
    path = out_dir / "index.html"
    path.write_text(text, encoding="utf-8")
    return path


def visualize_queries(arrays: dict, query_paths, gallery_paths, out_dir, num_queries: int,
                      protocol: str | Protocol, metric: str = "cosine", topk: int = 10, seed: int = 0,
                      order: str = "worst", report=None) -> list[Path]:
    """Ranked lists (FAISS top-k, ties by gallery index) of ``num_queries`` queries chosen by
    ``order`` from ``report.average_precision`` (computed here when ``report`` is None), plus
    ``index.html``. Returns the PNG paths in index order."""
    protocol = resolve_protocol(protocol)
    qp, qc = np.asarray(arrays["query_pids"]), np.asarray(arrays["query_camids"])
    gp, gc = np.asarray(arrays["gallery_pids"]), np.asarray(arrays["gallery_camids"])
    qf, gf = np.asarray(arrays["query_feats"]), np.asarray(arrays["gallery_feats"])
    if report is None and order != "random":
        from reid.eval.metrics import evaluate

        report = evaluate(qf, gf, qp, qc, gp, gc, protocol=protocol, metric=metric,
                          query_gallery_index=arrays.get("query_gallery_index"))
    ap = report.average_precision if report is not None else np.full(len(qp), np.nan)
    chosen = order_queries(ap, num_queries, order, seed)
    if arrays.get("query_gallery_index") is not None:
        self_index = check_query_gallery_index(arrays["query_gallery_index"], qp, qc, gp, gc)
    else:
        self_index = self_index_from_features(np.ascontiguousarray(qf, np.float32),
                                              np.ascontiguousarray(gf, np.float32), qp, qc, gp, gc)
    # one extra item so the list still holds topk entries once the query's own entry is dropped
    _, idx = knn_search(qf[chosen], gf, min(topk + 1, len(gf)), metric)
    out_dir = Path(out_dir)
    written, entries = [], []
    for position, (row, q) in enumerate(zip(idx, chosen), start=1):
        listed = np.array([j for j in row if j != self_index[q]][:topk], dtype=np.int64)
        statuses = ranked_statuses(protocol, qp[q], qc[q], gp[listed], gc[listed])
        scores = _display_scores(qf[q], gf[listed], metric)
        label = "sim" if metric == "cosine" else "dist"
        captions = [f"#{r} {s}\npid {gp[j]} cam {gc[j]}\n{label} {v:.3f}"
                    for r, (j, s, v) in enumerate(zip(listed.tolist(), statuses, scores.tolist()), start=1)]
        ap_text = "no valid match" if np.isnan(ap[q]) else f"AP {100 * ap[q]:.1f}%"
        name = f"{position:03d}_query_{int(q):05d}.png"
        written.append(save_ranked_list(
            query_paths[q], [gallery_paths[j] for j in listed], statuses, out_dir / name,
            title=f"query {q} -- protocol {protocol.name}, {metric}", captions=captions,
            query_caption=f"query {q}\npid {qp[q]} cam {qc[q]}\n{ap_text}",
        ))
        entries.append({"position": position, "query": int(q), "pid": int(qp[q]), "camid": int(qc[q]),
                        "ap": float(ap[q]), "file": name})
    write_index(out_dir, entries, f"ranked lists -- protocol {protocol.name}, {metric}, order {order}")
    return written


__all__ = ["COLORS", "ORDERS", "save_ranked_list", "ranked_statuses", "order_queries", "write_index",
           "visualize_queries"]
