"""Data of the classification study: an IDX image set (Fashion-MNIST layout), a class-balanced
subset, noisy training labels, tensors, and the training-time augmentation.

Noise: the same integer-label core as the tracklet noise (:func:`reid.data.noise.inject_label_noise`),
so ``symmetric`` means exactly what it means for ReID (uniform over the *other* C-1 classes,
exact count ``int(r N)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from reid.data.holdout import holdout_fraction
from reid.data.idx import load_mnist_like
from reid.data.noise import inject_label_noise

# fixed subset seeds: the same images for every scheme and seed of a study
TRAIN_SUBSET_SEED, TEST_SUBSET_SEED = 12345, 54321
# Fashion-MNIST training-set pixel mean / std (after scaling to [0, 1])
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530


@dataclass
class NoisyImageSplits:
    """Training images with noisy labels (``noisy_labels``; ``true_labels`` and ``noisy_mask`` say
    what the noise did) and the clean test set. Images are normalised ``[N, 1, H, W]`` float32."""

    train_images: torch.Tensor
    train_labels: torch.Tensor  # the (noisy) labels training sees, int64
    noisy_labels: np.ndarray
    true_labels: np.ndarray
    noisy_mask: np.ndarray
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    val_images: torch.Tensor | None = None  # held out from training, with their (noisy) training labels
    val_labels: torch.Tensor | None = None


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


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, H, W]`` -> normalised float32 ``[N, 1, H, W]``."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    return (x - PIXEL_MEAN) / PIXEL_STD


def load_noisy_splits(cfg) -> NoisyImageSplits:
    """The subsets of ``cfg`` (a :class:`~reid.studies.classification.ClassificationConfig`:
    ``data_root``, ``train_subset``, ``test_subset``, ``noise``, ``noise_seed``) with the noise applied."""
    xtr_all, ytr_all = load_mnist_like(cfg.data_root, "train")
    xte_all, yte_all = load_mnist_like(cfg.data_root, "test")
    tr_idx = stratified_subset(ytr_all, cfg.train_subset, seed=TRAIN_SUBSET_SEED)
    te_idx = stratified_subset(yte_all, cfg.test_subset, seed=TEST_SUBSET_SEED)
    num_classes = int(max(ytr_all.max(), yte_all.max()) + 1)
    true = ytr_all[tr_idx]
    noise = inject_label_noise(true, num_classes, cfg.noise, cfg.noise_seed)
    images, noisy, mask = xtr_all[tr_idx], noise.noisy_labels, noise.noisy_mask
    val_images = val_labels = None
    if getattr(cfg, "validation", None) is not None:
        # carved after the noise: validation labels are as noisy as the user's training labels
        keep, val = holdout_fraction(noisy, cfg.validation.fraction, cfg.validation.seed,
                                     key="classification.validation.fraction")
        val_images, val_labels = to_tensor(images[val]), torch.from_numpy(noisy[val])
        images, noisy, mask, true = images[keep], noisy[keep], mask[keep], true[keep]
    return NoisyImageSplits(
        train_images=to_tensor(images),
        train_labels=torch.from_numpy(noisy),
        noisy_labels=noisy,
        true_labels=true,
        noisy_mask=mask,
        val_images=val_images,
        val_labels=val_labels,
        test_images=to_tensor(xte_all[te_idx]),
        test_labels=torch.from_numpy(yte_all[te_idx]),
        num_classes=num_classes,
    )


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-image random horizontal flip, then one random shift of at most 2 px for the whole batch
    (padding with the batch minimum, i.e. the background)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (2, 2, 2, 2), mode="constant", value=float(x.min()))
    dy, dx = (int(v) for v in torch.randint(0, 5, (2,), generator=gen))
    return pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    """Eval-mode logits of ``x`` in chunks of ``batch`` (no augmentation). Leaves the model in eval
    mode; the training loop puts it back in train mode at the start of each epoch."""
    model.eval()
    return torch.cat([model(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def make_synthetic_idx(out_dir: Path, n_train: int = 600, n_test: int = 200, num_classes: int = 4, seed: int = 0) -> Path:
    """A tiny learnable MNIST-layout dataset: each class is a fixed random 28x28 pattern plus
    pixel noise. For CI smoke studies where Fashion-MNIST is not installed."""
    from reid.data.idx import write_idx

    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "t10k-labels-idx1-ubyte").is_file():
        return out_dir
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0, 255, size=(num_classes, 28, 28))
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % num_classes
        x = np.clip(protos[y] + rng.normal(0, 60, size=(n, 28, 28)), 0, 255).astype(np.uint8)
        write_idx(out_dir / f"{split}-images-idx3-ubyte", x)
        write_idx(out_dir / f"{split}-labels-idx1-ubyte", y.astype(np.uint8))
    return out_dir


__all__ = ["make_synthetic_idx", "NoisyImageSplits", "stratified_subset", "to_tensor", "load_noisy_splits", "augment", "predict"]
