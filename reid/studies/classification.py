"""Noisy-label image classification: the controlled experiment behind the ReID robustness study.

Same network, same schedule, same noisy labels for every scheme; only the loss (= the example
weighting, docs/methods.md §1) changes. Per epoch it records test accuracy and the three-number
report (:func:`reid.studies.fit.fit_report`: noisy-subset fit against the noisy labels,
clean-subset fit, correction rate), computed in eval mode without augmentation, and the
distributions of ``p_i`` (probability of the *training* label) and ``w_i`` (the scheme's weight)
separately for clean and noisy examples.

Network (decision, identical for all schemes): three conv blocks ``conv3x3 - BN - ReLU - maxpool``,
a fully connected ``FC - BN - ReLU`` embedding (128-d), and a **cosine head** with a fixed scale
``s`` (logits ``s * cos(f, W_c)``). docs/methods.md §1 measured that with IMAE/DM and batch-sum
normalisation an unbounded linear head lets the logits grow without bound (the weight never
vanishes at ``p = 1``); the cosine head bounds ``|z| <= s`` for every scheme, so the comparison is not
confounded by one scheme diverging. ``head="linear"`` is available for comparison (with BN and
weight decay, as in the papers).

Noise: the same integer-label core as the tracklet noise (:func:`reid.data.noise.inject_label_noise`),
so ``symmetric`` means exactly what it means for ReID (uniform over the *other* C-1 classes,
exact count ``int(r N)``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from reid.data.idx import FASHION_MNIST_DIR, load_mnist_like
from reid.data.noise import NoiseItem, inject_label_noise
from reid.studies.fit import fit_report
from reid.studies.noise_hook import pw_histogram_record



class SchemeSpec(BaseModel):
    """A loss = weighting scheme: ``name`` in cce, mae, mse, gce, imae, dm, exponential, normal,
    beta (all through ``reid.losses.WeightedCrossEntropyLoss``) or proselflc
    (``reid.losses.ProSelfLCLoss``); ``params`` are passed on (e.g. ``{T: 8}`` for imae)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None  # display name in tables; defaults to name

    @property
    def display(self) -> str:
        return self.label or self.name


class ClassificationConfig(BaseModel):
    """One noisy-label classification run."""

    model_config = ConfigDict(extra="forbid")

    data_root: Path = FASHION_MNIST_DIR
    train_subset: int | None = 20000  # first stratified-random N training images (None: all)
    test_subset: int | None = None
    scheme: SchemeSpec = Field(default_factory=lambda: SchemeSpec(name="cce"))
    normalize: Literal["sum", "n"] = "sum"
    noise: list[NoiseItem] = Field(default_factory=list)
    noise_seed: int = 0
    seed: int = 0
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: int = 0
    widths: tuple[int, int, int] = (16, 32, 64)
    head: Literal["cosine", "linear"] = "cosine"
    cosine_scale: float = 16.0
    augment: bool = True  # per-image random horizontal flip + one random shift (<= 2 px) per batch; training only
    num_threads: int | None = None
    eval_batch_size: int = 1000


# ----------------------------------------------------------------------------- model
class CosineHead(nn.Module):
    """``z_c = s * <f / |f|, W_c / |W_c|>``: logits bounded by the fixed scale ``s``.

    Rows of ``W`` start at norm ~sqrt(dim) (standard normal): with a tiny initial norm the
    gradient through ``W / |W|`` (which scales as ``1/|W|``) makes the first epochs erratic."""

    def __init__(self, dim: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, dim))
        self.scale = scale

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(f, dim=1), F.normalize(self.weight, dim=1))


class SmallCNN(nn.Module):
    """3 x (conv3x3-BN-ReLU-maxpool2) (28 -> 14 -> 7 -> 3), flatten, FC-BN-ReLU embedding, head.

    Flatten + FC rather than global average pooling: with GAP this net learned Fashion-MNIST
    far more slowly (~66 % test after two epochs on 5k clean images vs ~83 % with the FC), and
    the FC gives the network the capacity to memorise noisy labels, which is what the study
    measures."""

    def __init__(self, num_classes: int, widths=(16, 32, 64), head: str = "cosine", scale: float = 16.0,
                 in_ch: int = 1, embed_dim: int = 128, image_size: int = 28):
        super().__init__()
        layers, c, side = [], in_ch, image_size
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c, side = w, side // 2
        self.features = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, embed_dim, bias=False),
                                   nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True))
        self.head = CosineHead(embed_dim, num_classes, scale) if head == "cosine" else nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(self.features(x)))


# ----------------------------------------------------------------------------- loss
class CoreWeightedCE(nn.Module):
    """Weighted cross entropy straight from the weighting core
    (:func:`reid.weighting.weighted_cross_entropy`), publishing per-example ``p`` and ``w`` in
    ``last_stats``. Used when ``reid.losses`` does not provide ``WeightedCrossEntropyLoss``; the
    math is the core's either way."""

    def __init__(self, scheme: str, normalize: str = "sum", **params: Any) -> None:
        super().__init__()
        from reid.weighting import get_scheme

        self.scheme = get_scheme(scheme, **params)
        self.normalize = normalize
        self.last_stats: dict = {}

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from reid.weighting import weighted_cross_entropy

        out = weighted_cross_entropy(logits, labels, self.scheme, normalize=self.normalize)
        self.last_stats = {"p": out.weights.p.detach(), "w": out.weights.w.detach()}
        return out.loss


def build_scheme_loss(spec: SchemeSpec, normalize: str, num_classes: int):
    """The loss module for a scheme: ``reid.losses.ProSelfLCLoss`` for proselflc, else
    ``reid.losses.WeightedCrossEntropyLoss`` (falling back to :class:`CoreWeightedCE`)."""
    import reid.losses as losses

    if spec.name == "proselflc":
        # ProSelfLC is mean-reduced cross entropy toward the corrected target (its own convention);
        # `normalize` applies to the weighting schemes only.
        return losses.ProSelfLCLoss(num_classes=num_classes, **spec.params)
    if hasattr(losses, "WeightedCrossEntropyLoss"):
        return losses.WeightedCrossEntropyLoss(scheme=spec.name, normalize=normalize, **spec.params)
    return CoreWeightedCE(spec.name, normalize, **spec.params)


def _per_example_pw(loss_module, logits: torch.Tensor, labels: torch.Tensor, spec: SchemeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-example ``p_i`` and ``w_i`` of the last forward: from ``loss.last_stats`` when the loss
    publishes per-example tensors, else ``p_i`` from the logits and ``w_i = w(p_i)`` from
    ``reid.weighting`` (identical by definition for the weighted-CE schemes)."""
    stats = getattr(loss_module, "last_stats", None) or {}
    p = stats.get("p")
    w = stats.get("w")
    n = labels.shape[0]
    if not (torch.is_tensor(p) and p.numel() == n):
        p = torch.softmax(logits.detach().double(), dim=1).gather(1, labels[:, None]).squeeze(1)
    if not (torch.is_tensor(w) and w.numel() == n):
        from reid.weighting import get_scheme

        name = "cce" if spec.name == "proselflc" else spec.name
        params = {} if spec.name == "proselflc" else spec.params
        w = get_scheme(name, **params).w(p.double().clamp(0, 1))
    return p.detach().float().cpu().numpy().reshape(-1), w.detach().float().cpu().numpy().reshape(-1)


# ----------------------------------------------------------------------------- data
def stratified_subset(labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Indices of a class-balanced random subset of ``size`` examples (all when None)."""
    if size is None or size >= labels.shape[0]:
        return np.arange(labels.shape[0])
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = size // classes.size
    out = [rng.permutation(np.flatnonzero(labels == c))[:per] for c in classes]
    idx = np.concatenate(out)
    rest = np.setdiff1d(np.arange(labels.shape[0]), idx)
    idx = np.concatenate([idx, rng.permutation(rest)[: size - idx.size]])
    return np.sort(idx)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    return (x - 0.2860) / 0.3530  # Fashion-MNIST train mean / std


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (2, 2, 2, 2), mode="constant", value=float(x.min()))
    dy, dx = (int(v) for v in torch.randint(0, 5, (2,), generator=gen))
    return pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def _lr_at(cfg: ClassificationConfig, step: int, total: int) -> float:
    warm = cfg.warmup_epochs * total / max(cfg.epochs, 1)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.lr_schedule == "constant":
        return cfg.lr
    frac = (step - warm) / max(total - warm, 1)
    if cfg.lr_schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * frac))
    return cfg.lr * (0.1 ** int(frac * 3))  # step: x0.1 at 1/3 and 2/3 of training


# ----------------------------------------------------------------------------- run
def run_classification(cfg: ClassificationConfig, out_dir: Path | None = None, progress: bool = True, log=None) -> dict:
    """Train one scheme on noisy labels; return per-epoch history and best/final numbers.

    Returns a dict with ``history`` (per epoch: ``test_acc``, ``noisy_fit``, ``clean_fit``,
    ``correction_rate``, ``train_acc``, ``lr``, clean/noisy histograms of ``p_i`` and ``w_i``),
    ``best`` (the epoch of highest test accuracy and its numbers, the DM/IMAE papers' convention)
    and ``final`` (last epoch, ProSelfLC's convention). Writes ``history.json`` in ``out_dir``."""
    from tqdm import tqdm

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    xtr_all, ytr_all = load_mnist_like(cfg.data_root, "train")
    xte_all, yte_all = load_mnist_like(cfg.data_root, "test")
    tr_idx = stratified_subset(ytr_all, cfg.train_subset, seed=12345)  # same subset for every scheme/seed
    te_idx = stratified_subset(yte_all, cfg.test_subset, seed=54321)
    num_classes = int(max(ytr_all.max(), yte_all.max()) + 1)
    true = ytr_all[tr_idx]
    noise = inject_label_noise(true, num_classes, cfg.noise, cfg.noise_seed)
    noisy, mask = noise.noisy_labels, noise.noisy_mask
    xtr, xte = _to_tensor(xtr_all[tr_idx]), _to_tensor(xte_all[te_idx])
    ytr, yte = torch.from_numpy(noisy), torch.from_numpy(yte_all[te_idx])
    n = xtr.shape[0]

    model = SmallCNN(num_classes, cfg.widths, cfg.head, cfg.cosine_scale)
    loss_fn = build_scheme_loss(cfg.scheme, cfg.normalize, num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    history: list[dict] = []
    step = 0
    t0 = time.time()
    epochs = tqdm(range(cfg.epochs), desc=f"{cfg.scheme.display}", disable=not progress, leave=False)
    for epoch in epochs:
        model.train()
        perm = torch.randperm(n, generator=gen)
        ps, ws, idxs, losses = [], [], [], []
        for b in range(steps_per_epoch):
            bi = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = xtr[bi]
            if cfg.augment:
                x = _augment(x, gen)
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step, total_steps)
            if hasattr(loss_fn, "set_progress"):
                loss_fn.set_progress(step, total_steps)
            logits = model(x)
            loss = loss_fn(logits, ytr[bi])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"scheme {cfg.scheme.display}: non-finite loss at epoch {epoch} step {step} "
                    f"(max |logit| {logits.detach().abs().max().item():.3g})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            p, w = _per_example_pw(loss_fn, logits, ytr[bi], cfg.scheme)
            ps.append(p), ws.append(w), idxs.append(bi.numpy()), losses.append(float(loss.detach()))
            step += 1
        p_all, w_all, i_all = np.concatenate(ps), np.concatenate(ws), np.concatenate(idxs)
        nm = mask[i_all]
        test_acc = float((predict(model, xte, cfg.eval_batch_size).argmax(1) == yte).float().mean())
        train_pred = predict(model, xtr, cfg.eval_batch_size).argmax(1).numpy()
        rec = {
            "epoch": epoch + 1,
            "lr": _lr_at(cfg, step - 1, total_steps),
            "loss": float(np.mean(losses)),
            "test_acc": test_acc,
            **fit_report(train_pred, noisy, true, mask),
            # p_i / w_i seen during this epoch's training steps, clean vs noisy (same record as NoiseHook)
            **pw_histogram_record(epoch + 1, p_all, w_all, nm),
            "seconds": time.time() - t0,
        }
        history.append(rec)
        epochs.set_postfix(test=f"{test_acc:.3f}", noisy_fit=f"{rec['noisy_fit']:.3f}", clean_fit=f"{rec['clean_fit']:.3f}")
        if log is not None:
            log(f"    {cfg.scheme.display} epoch {epoch + 1}/{cfg.epochs}: loss {rec['loss']:.4f} test {test_acc:.4f} "
                f"noisy_fit {rec['noisy_fit']:.4f} clean_fit {rec['clean_fit']:.4f} ({rec['seconds']:.0f}s)")

    keys = ("test_acc", "noisy_fit", "clean_fit", "correction_rate", "train_acc")
    best_rec = max(history, key=lambda r: r["test_acc"])
    result = {
        "scheme": cfg.scheme.display,
        "config": cfg.model_dump(mode="json"),
        "num_train": n,
        "num_noisy": int(mask.sum()),
        "num_test": int(xte.shape[0]),
        "history": history,
        "best": {"epoch": best_rec["epoch"], **{k: best_rec[k] for k in keys}},
        "final": {"epoch": history[-1]["epoch"], **{k: history[-1][k] for k in keys}},
        "seconds": time.time() - t0,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "history.json").write_text(json.dumps(result, indent=1))
    return result


__all__ = ["SchemeSpec", "ClassificationConfig", "SmallCNN", "CosineHead", "run_classification", "stratified_subset", "build_scheme_loss"]
