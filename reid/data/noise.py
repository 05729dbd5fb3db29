"""Noisy-identity injection on the training split (docs/methods.md §5). The configuration types
live in :mod:`reid.data.noise_config`, the manifest in :mod:`reid.data.noise_manifest`.

Video ReID labels are identities, so noise is injected at two granularities:

* **label noise** -- whole tracklets get a wrong training label:

  - ``symmetric``: the new label is drawn uniformly from the *other* ``C - 1`` classes (the true
    label is never kept); exactly ``int(rate * N)`` examples, chosen with a seeded generator.
  - ``pairflip``: every class ``a`` has one fixed partner ``partner[a] != a``, taken from a seeded
    random permutation cycle ``perm[0] -> perm[1] -> ... -> perm[C-1] -> perm[0]`` (the classic
    "pair / asymmetric" noise with a random rather than ``a -> a+1`` pairing, so the partner is
    not an artefact of how pids happen to be sorted); exactly ``int(rate * N)`` examples flipped.
  - ``tracklet_swap``: pairs of examples of *different* classes exchange their labels (an identity
    swap, as a tracker would make); ``int(rate * N)`` rounded down to an even number of examples,
    i.e. ``int(rate * N) // 2`` pairs.

* **frame noise** (tracklets only) -- ``outlier_frames``: exactly ``int(rate * F)`` frames, where
  ``F`` is the number of frames of the tracklets whose label is still clean, are chosen uniformly
  (seeded) and replaced by a frame of another identity (``source="other_identity"``: a random frame
  of a random training tracklet with a different true pid) or by a background crop
  (``source="background"``: a synthetic person-free texture written under the *run's* output
  directory, never into the dataset). The tracklet keeps its label: this is the "wrong person /
  background inside a correct tracklet" noise that set-based aggregation has to suppress.

Combination rules (documented contract):

1. Items are applied **in the order listed** in ``NoiseConfig.items``; each kind appears at most once.
2. A tracklet is relabelled **at most once**: every label-noise kind draws only from examples that
   no earlier item relabelled. Rates are fractions of the *whole* training split ``N`` (so
   ``symmetric 0.2 + pairflip 0.2`` relabels 40 % of it), and their sum must be <= 1.
3. ``outlier_frames`` only touches tracklets whose label is clean after all label-noise items,
   wherever it is listed, so the noisy and clean subsets stay cleanly separated for the
   three-number report.

What changes and what is kept (decision): only ``Tracklet.label`` (the training label the trainer
and the PK sampler consume) is changed; ``Tracklet.pid`` keeps the **true** pid, so every noisy
tracklet stays auditable and the clean/noisy split can be recomputed from the data alone
(``label != pid_to_label[pid]``). Training code must therefore use ``label``, never ``pid``.
Frames are paths, so outlier frames are path substitutions. Query and gallery are never touched:
``apply_noise`` only ever receives the training list.

Every change is recorded in a :class:`NoiseManifest` (row, position in the training list, true and
noisy label and pid, frame substitutions with their donor). ``manifest.save(path)`` writes JSON;
``apply_manifest(train, NoiseManifest.load(path))`` rebuilds exactly the same noisy split and
refuses (naming the file and the row) when the training split does not match the one it was made on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

# NOISE_KINDS, NoiseConfig, NoiseItem and NoiseManifest are also this module's public names:
# the trainer config, the studies and users import them from here
from reid.data.noise_config import LABEL_NOISE_KINDS, NOISE_KINDS, NoiseConfig, NoiseItem
from reid.data.noise_manifest import FrameChange, LabelChange, NoiseManifest, train_fingerprint
from reid.data.tracklet import DatasetError, Tracklet


# ----------------------------------------------------------------------------- integer core
@dataclass
class LabelNoiseResult:
    """Result of :func:`inject_label_noise` on an integer label vector."""

    noisy_labels: np.ndarray  # int64 [N]
    kind_of: np.ndarray  # object [N]: "" for clean examples, else the kind that relabelled it
    partner: dict[int, int] | None = None  # pairflip class -> partner, when pairflip was used
    swap_pairs: list[tuple[int, int]] = field(default_factory=list)  # tracklet_swap index pairs

    @property
    def noisy_mask(self) -> np.ndarray:
        return self.kind_of != ""


def _item_rng(seed: int, item_index: int, kind: str) -> np.random.Generator:
    # One independent stream per item, keyed by its kind too, so adding an item at the end of the
    # list never changes what the earlier items drew.
    kind_key = int.from_bytes(hashlib.sha256(kind.encode()).digest()[:4], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), item_index, kind_key]))


def pairflip_partners(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``partner[a]``: the fixed class every flipped example of class ``a`` moves to.

    A seeded random permutation cycle: ``perm[i] -> perm[(i + 1) % C]``. No fixed points (C >= 2)."""
    if num_classes < 2:
        raise ValueError("pairflip noise needs at least 2 classes")
    perm = rng.permutation(num_classes)
    partner = np.empty(num_classes, dtype=np.int64)
    partner[perm] = np.roll(perm, -1)
    return partner


def inject_label_noise(
    labels: np.ndarray | list[int],
    num_classes: int,
    items: list[NoiseItem] | list[dict],
    seed: int,
) -> LabelNoiseResult:
    """Apply the label-noise items (symmetric, pairflip, tracklet_swap) to integer labels.

    Shared by the tracklet path (:func:`apply_noise`) and the image-classification study, so both
    inject exactly the same noise. ``outlier_frames`` items are ignored here (frame-level only).
    Exact counts: ``int(rate * N)`` per item (``tracklet_swap``: rounded down to even), drawn
    only from examples no earlier item relabelled.
    """
    items = [it if isinstance(it, NoiseItem) else NoiseItem.model_validate(it) for it in items]
    true = np.asarray(labels, dtype=np.int64)
    if true.ndim != 1:
        raise ValueError(f"labels must be a 1-D vector, got shape {true.shape}")
    n = true.shape[0]
    if n and (true.min() < 0 or true.max() >= num_classes):
        bad = int(np.flatnonzero((true < 0) | (true >= num_classes))[0])
        raise ValueError(f"label {int(true[bad])} at index {bad} is outside [0, {num_classes})")
    noisy = true.copy()
    kind_of = np.full(n, "", dtype=object)
    result = LabelNoiseResult(noisy_labels=noisy, kind_of=kind_of)

    for item_index, item in enumerate(items):
        if item.kind not in LABEL_NOISE_KINDS:
            continue
        rng = _item_rng(seed, item_index, item.kind)
        count = int(item.rate * n)
        if item.kind == "tracklet_swap":
            count -= count % 2
        if count == 0:
            continue
        available = np.flatnonzero(kind_of == "")
        if count > available.size:
            raise ValueError(
                f"noise item {item.kind} rate={item.rate}: needs {count} clean examples but only "
                f"{available.size} remain after the earlier items"
            )
        if item.kind == "symmetric":
            if num_classes < 2:
                raise ValueError("symmetric noise needs at least 2 classes")
            chosen = rng.choice(available, size=count, replace=False)
            # offset uniform in 1..C-1: uniform over the other C-1 classes, never the true one
            offsets = rng.integers(1, num_classes, size=count)
            noisy[chosen] = (true[chosen] + offsets) % num_classes
        elif item.kind == "pairflip":
            partner = pairflip_partners(num_classes, rng)
            chosen = rng.choice(available, size=count, replace=False)
            noisy[chosen] = partner[true[chosen]]
            result.partner = {int(a): int(b) for a, b in enumerate(partner)}
        else:  # tracklet_swap
            pairs = _draw_swap_pairs(available, true, count // 2, rng)
            for a, b in pairs:
                noisy[a], noisy[b] = true[b], true[a]
            result.swap_pairs.extend(pairs)
            chosen = np.asarray([i for pair in pairs for i in pair], dtype=np.int64)
        kind_of[chosen] = item.kind
    return result


def _draw_swap_pairs(
    available: np.ndarray, labels: np.ndarray, num_pairs: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Draw ``num_pairs`` disjoint pairs of examples with different labels from ``available``.

    Walk a seeded shuffle; each example pairs with the oldest still-unpaired example of another
    class (a queue per class), which succeeds whenever enough examples of >= 2 classes exist."""
    order = rng.permutation(available)
    waiting: dict[int, list[int]] = {}
    pairs: list[tuple[int, int]] = []
    for idx in order:
        lab = int(labels[idx])
        partner_class = next((c for c, q in waiting.items() if c != lab and q), None)
        if partner_class is None:
            waiting.setdefault(lab, []).append(int(idx))
            continue
        other = waiting[partner_class].pop(0)
        pairs.append((other, int(idx)))
        if len(pairs) == num_pairs:
            return pairs
    raise ValueError(
        f"tracklet_swap: could only form {len(pairs)} of {num_pairs} pairs of different identities "
        "from the remaining clean examples (too few identities left)"
    )


# ----------------------------------------------------------------------------- tracklet API
def _label_to_pid(train: list[Tracklet]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, t in enumerate(train):
        if t.label < 0:
            raise DatasetError(
                f"training tracklet at index {i} (row {t.row}, pid {t.pid}) has no training label; "
                "call assign_train_labels first"
            )
        prev = out.setdefault(t.label, t.pid)
        if prev != t.pid:
            raise DatasetError(
                f"training label {t.label} maps to pids {prev} and {t.pid} (index {i}, row {t.row}): "
                "noise must be applied to a clean split"
            )
    return out


def write_background_crops(out_dir: str | os.PathLike, count: int, seed: int, height: int = 256, width: int = 128) -> list[str]:
    """Write ``count`` person-free background crops (smooth random colour fields plus a few
    horizontal "floor/wall" bands and sensor noise) as PNG under ``out_dir``; return their paths.

    Synthetic on purpose: the dataset directory is never written to, and the crops contain no
    person, which is what a detector's false-positive box on a wall or pavement looks like."""
    import cv2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB6]))
    paths = []
    for k in range(count):
        coarse = rng.uniform(40, 215, size=(4, 2, 3)).astype(np.float32)
        img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        for _ in range(int(rng.integers(1, 4))):
            y0 = int(rng.integers(0, height - 8))
            img[y0 : y0 + int(rng.integers(4, 40))] *= float(rng.uniform(0.6, 1.2))
        img += rng.normal(0, 6, size=img.shape).astype(np.float32)
        p = out / f"background_{k:04d}.png"
        cv2.imwrite(str(p), np.clip(img, 0, 255).astype(np.uint8)[:, :, ::-1])
        paths.append(str(p.resolve()))
    return paths


def apply_noise(
    train: list[Tracklet],
    cfg: NoiseConfig,
    num_classes: int,
    background_dir: str | os.PathLike | None = None,
) -> tuple[list[Tracklet], NoiseManifest]:
    """Inject ``cfg``'s noise into the training tracklets; return the noisy list and its manifest.

    Args:
        train: the clean training split (labels assigned, ``label == pid_to_label[pid]``).
        cfg: what to inject (order and combination rules in the module docstring). If
            ``cfg.manifest`` is set, that manifest is re-applied instead (the rest of ``cfg``
            must then describe the same noise; only the manifest is used).
        num_classes: number of training identities ``C``.
        background_dir: where ``outlier_frames`` with ``source="background"`` writes its crops
            (the run's output directory); required for that source only.

    The input list is not modified; ``Tracklet.pid`` keeps the true pid.
    """
    if cfg.manifest is not None:
        manifest = NoiseManifest.load(cfg.manifest)
        return apply_manifest(train, manifest, manifest_path=cfg.manifest), manifest

    label_to_pid = _label_to_pid(train)
    if label_to_pid and max(label_to_pid) >= num_classes:
        raise DatasetError(f"training labels reach {max(label_to_pid)} but num_classes={num_classes}")
    true_labels = np.asarray([t.label for t in train], dtype=np.int64)
    res = inject_label_noise(true_labels, num_classes, cfg.items, cfg.seed)
    manifest = NoiseManifest(
        config=cfg.model_dump(mode="json"),
        num_classes=num_classes,
        num_train=len(train),
        train_fingerprint=train_fingerprint(train),
        pairflip_partner=res.partner,
    )
    swap_partner = {a: b for a, b in res.swap_pairs} | {b: a for a, b in res.swap_pairs}
    for i in np.flatnonzero(res.noisy_mask):
        i = int(i)
        t = train[i]
        nl = int(res.noisy_labels[i])
        manifest.label_changes.append(
            LabelChange(
                index=i, row=t.row, kind=str(res.kind_of[i]), true_label=int(t.label), noisy_label=nl,
                true_pid=int(t.pid), noisy_pid=int(label_to_pid.get(nl, -1)),
                swapped_with=swap_partner.get(i),
            )
        )

    frame_items = [(k, it) for k, it in enumerate(cfg.items) if it.kind == "outlier_frames"]
    for item_index, item in frame_items:
        rng = _item_rng(cfg.seed, item_index, item.kind)
        source = item.source or "other_identity"
        manifest.frame_changes.extend(
            _draw_outlier_frames(train, res.noisy_mask, item.rate, source, rng, cfg.seed, background_dir, manifest)
        )
    return apply_manifest(train, manifest), manifest


def _draw_outlier_frames(
    train: list[Tracklet],
    relabelled: np.ndarray,
    rate: float,
    source: str,
    rng: np.random.Generator,
    seed: int,
    background_dir: str | os.PathLike | None,
    manifest: NoiseManifest,
) -> list[FrameChange]:
    clean_idx = np.flatnonzero(~relabelled)
    lengths = np.asarray([len(train[i].frames) for i in clean_idx], dtype=np.int64)
    total = int(lengths.sum())
    count = int(rate * total)
    if count == 0:
        return []
    # global frame slots of the clean tracklets, numbered 0..total-1; pick exactly `count`
    slots = np.sort(rng.choice(total, size=count, replace=False))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    owner = np.searchsorted(starts, slots, side="right") - 1
    positions = slots - starts[owner]

    backgrounds: list[str] = []
    if source == "background":
        if background_dir is None:
            raise ValueError("outlier_frames with source='background' needs background_dir (the run's output dir)")
        n_bg = int(min(count, 64))
        backgrounds = write_background_crops(Path(background_dir), n_bg, seed)
        manifest.background_dir = str(Path(background_dir).resolve())
    pids = np.asarray([t.pid for t in train])
    changes = []
    for o, pos in zip(owner, positions):
        i = int(clean_idx[o])
        t = train[i]
        if source == "background":
            repl = backgrounds[int(rng.integers(len(backgrounds)))]
            donor, donor_pid = None, None
        else:
            candidates = np.flatnonzero(pids != t.pid)
            if candidates.size == 0:
                raise ValueError("outlier_frames: every training tracklet has the same pid; no donor identity")
            donor = int(rng.choice(candidates))
            dframes = train[donor].frames
            repl = dframes[int(rng.integers(len(dframes)))]
            donor_pid = int(train[donor].pid)
        changes.append(
            FrameChange(index=i, row=t.row, position=int(pos), original=t.frames[int(pos)], replacement=repl,
                        source=source, donor_index=donor, donor_pid=donor_pid)
        )
    return changes


def apply_manifest(
    train: list[Tracklet], manifest: NoiseManifest, manifest_path: str | os.PathLike | None = None
) -> list[Tracklet]:
    """Re-apply a manifest to the clean training split; exactly reproduces the noisy split.

    Raises :class:`DatasetError` naming the manifest file and the offending row when the split
    is not the one the manifest was made on."""
    where = str(manifest_path) if manifest_path is not None else "noise manifest"
    if len(train) != manifest.num_train:
        raise DatasetError(f"{where}: made for {manifest.num_train} training tracklets, got {len(train)}")
    out = list(train)
    for c in manifest.label_changes:
        t = out[c.index]
        if t.row != c.row or t.label != c.true_label or t.pid != c.true_pid:
            raise DatasetError(
                f"{where}: label change for index {c.index} expects row {c.row}, label {c.true_label}, "
                f"pid {c.true_pid}; the training split has row {t.row}, label {t.label}, pid {t.pid}"
            )
        out[c.index] = replace(t, label=c.noisy_label)
    by_index: dict[int, list[FrameChange]] = {}
    for c in manifest.frame_changes:
        by_index.setdefault(c.index, []).append(c)
    for i, changes in by_index.items():
        t = out[i]
        frames = list(t.frames)
        for c in changes:
            if t.row != c.row or c.position >= len(frames) or frames[c.position] != c.original:
                raise DatasetError(
                    f"{where}: frame change for row {c.row} position {c.position} expects frame "
                    f"{c.original!r}; the training split does not have it"
                )
            frames[c.position] = c.replacement
        out[i] = replace(t, frames=tuple(frames))
    if train_fingerprint(train) != manifest.train_fingerprint:
        # every change matched, yet the split differs elsewhere: still refuse, it is not the same split
        raise DatasetError(f"{where}: the training split differs from the one this manifest was made on")
    return out


__all__ = [
    "NOISE_KINDS", "NoiseItem", "NoiseConfig", "NoiseManifest",
    "LabelNoiseResult", "inject_label_noise", "pairflip_partners", "apply_noise", "apply_manifest",
    "write_background_crops",
]