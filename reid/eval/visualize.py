"""Ranked-list pictures: a query tracklet's frames, then its top-k gallery tracklets, each framed
green (correct match), red (wrong identity) or grey (junk under the protocol: not scored).

Match and junk are the protocol's own rules (``Protocol.positive_mask`` / ``Protocol.junk_mask``),
so a picture colours exactly what the metrics score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid.eval.features import resolve_protocol
from reid.eval.knn import knn_search
from reid.protocols import Protocol

COLORS = {"match": (0, 170, 0), "wrong": (220, 0, 0), "junk": (150, 150, 150), "query": (40, 90, 220)}


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


def save_ranked_list(
    query_frames: list[str],
    gallery_frames: list[list[str]],
    statuses: list[str],
    out_path: str | Path,
    title: str = "",
    frames_per_tracklet: int = 3,
    height: int = 96,
    width: int = 48,
) -> Path:
    """Write one PNG: the query (blue border) then the ranked gallery tracklets.

    ``statuses[i]`` is ``"match"``, ``"wrong"`` or ``"junk"`` for ``gallery_frames[i]``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(gallery_frames) != len(statuses):
        raise ValueError(f"{len(gallery_frames)} gallery tracklets but {len(statuses)} statuses")
    tiles = [_tile(query_frames, frames_per_tracklet, height, width, COLORS["query"])]
    tiles += [_tile(f, frames_per_tracklet, height, width, COLORS[s]) for f, s in zip(gallery_frames, statuses)]
    fig, axes = plt.subplots(1, len(tiles), figsize=(1.3 * frames_per_tracklet * len(tiles) * width / 48, 3))
    axes = np.atleast_1d(axes)
    for i, (ax, tile) in enumerate(zip(axes, tiles)):
        ax.imshow(tile)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("query" if i == 0 else f"#{i} {statuses[i - 1]}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out_path


def ranked_statuses(protocol: str | Protocol, query_pid: int, query_camid: int, gallery_pids: np.ndarray,
                    gallery_camids: np.ndarray) -> list[str]:
    """``"match"``, ``"junk"`` or ``"wrong"`` for each listed gallery item of one query."""
    protocol = resolve_protocol(protocol)
    junk = protocol.junk_mask(query_pid, query_camid, gallery_pids, gallery_camids)
    match = protocol.positive_mask(query_pid, query_camid, gallery_pids, gallery_camids)
    return ["junk" if j else ("match" if m else "wrong") for j, m in zip(junk.tolist(), match.tolist())]


def visualize_queries(arrays: dict, query_paths, gallery_paths, out_dir, num_queries: int,
                      protocol: str | Protocol, metric: str = "cosine", topk: int = 10, seed: int = 0) -> list[Path]:
    """Ranked lists (FAISS top-k, ties by gallery index) for ``num_queries`` random queries."""
    protocol = resolve_protocol(protocol)
    qp, qc = arrays["query_pids"], arrays["query_camids"]
    gp, gc = arrays["gallery_pids"], arrays["gallery_camids"]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(qp), size=min(num_queries, len(qp)), replace=False))
    _, idx = knn_search(arrays["query_feats"][chosen], arrays["gallery_feats"], topk, metric)
    written = []
    for row, q in enumerate(chosen):
        statuses = ranked_statuses(protocol, qp[q], qc[q], gp[idx[row]], gc[idx[row]])
        written.append(save_ranked_list(
            query_paths[q], [gallery_paths[j] for j in idx[row]], statuses,
            Path(out_dir) / f"query_{q:05d}.png",
            title=f"query {q} (pid {qp[q]}, cam {qc[q]}) -- protocol {protocol.name}, {metric}",
        ))
    return written


__all__ = ["save_ranked_list", "ranked_statuses", "visualize_queries"]
