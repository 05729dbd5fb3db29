"""Clip-consistent augmentation: one random parameter draw applied to every frame of a clip.

A video ReID clip shows one person moving; flipping frame 1 but not frame 2, or cropping them
at different offsets, would invent motion that is not there and hurt temporal models. So the
training transform draws its random parameters (crop offset, flip, erasing box, colour jitter)
**once per clip** and applies them to all ``T`` frames.

Training pipeline (the "strong baseline" recipe of Luo et al., "Bag of Tricks and A Strong
Baseline for Deep Person Re-identification", CVPRW 2019):

1. resize to ``height x width`` (bilinear);
2. zero-pad ``pad`` pixels on each side, random ``height x width`` crop;
3. horizontal flip with probability ``flip_p``;
4. optional colour jitter (brightness/contrast/saturation ``color_jitter``, hue ``color_jitter/4``);
5. normalise, ``x' = (x / 255 - mean) / std`` per channel;
6. random erasing with probability ``erasing_p`` (Zhong et al., "Random Erasing Data
   Augmentation", AAAI 2020): area fraction in ``[0.02, 0.4]``, aspect ratio in ``[0.3, 3.3]``,
   filled with 0 *after* normalisation, i.e. with the dataset mean pixel as in the paper's ReID
   setting;
7. to a ``FloatTensor [T, 3, H, W]``.

Test pipeline: resize + normalise only (deterministic).

How one draw reaches all frames: albumentations' ``additional_targets`` (``image1..image{T-1}``
declared as extra images of one ``Compose``, so every target gets the parameters drawn once).
Alternatives measured with the same pipeline by ``python tools/benchmark.py loader`` (its
"one draw" table; figures in docs/benchmarks.md): the 2.x ``images=`` batch target was 1.3-1.4x
slower and ``ReplayCompose`` + ``replay`` 3-10x slower for ``T`` = 4 and 8 on 256x128 frames.
``additional_targets`` also accepts frames of different sizes (the resize is inside the
pipeline). One ``Compose`` per distinct clip length is built lazily and cached.

Randomness: the callable accepts an optional ``rng`` (``np.random.Generator``). When given, the
albumentations random state is reset from it before the draw, so a clip's augmentation is a pure
function of that generator; :class:`reid.data.datasets.TrainClipDataset` passes one derived from
``(seed, epoch, index)``, which keeps DataLoader workers deterministic and distinct (without it,
forked workers would share one albumentations state and repeat each other's draws).
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import albumentations as A
import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Random erasing ranges of Zhong et al. (sl=0.02, sh=0.4, r1=0.3 -> r in [0.3, 1/0.3]).
ERASING_SCALE = (0.02, 0.4)
ERASING_RATIO = (0.3, 3.3)


def _check_frames(frames: Sequence[np.ndarray]) -> None:
    if len(frames) == 0:
        raise ValueError("clip transform: got an empty clip (0 frames)")
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            desc = f"{type(f).__name__} {getattr(f, 'shape', '')} {getattr(f, 'dtype', '')}"
            raise ValueError(f"clip transform: frame {i} must be an HxWx3 uint8 RGB array, got {desc}")


class ClipTransform:
    """Callable ``(frames: list[np.ndarray HxWx3 uint8 RGB], rng=None) -> FloatTensor [T,3,H,W]``.

    Built by :func:`build_clip_transform`; picklable, so it can be sent to DataLoader workers.
    """

    def __init__(
        self,
        train: bool,
        height: int,
        width: int,
        pad: int,
        flip_p: float,
        erasing_p: float,
        color_jitter: float,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"clip transform: height and width must be >= 1, got {height}x{width}")
        if pad < 0:
            raise ValueError(f"clip transform: pad must be >= 0, got {pad}")
        for name, prob in (("flip_p", flip_p), ("erasing_p", erasing_p)):
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"clip transform: {name} must be in [0, 1], got {prob}")
        if color_jitter < 0:
            raise ValueError(f"clip transform: color_jitter must be >= 0, got {color_jitter}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"clip transform: mean/std need 3 values with std > 0, got mean={mean}, std={std}")
        self.train = train
        self.height, self.width, self.pad = int(height), int(width), int(pad)
        self.flip_p, self.erasing_p, self.color_jitter = float(flip_p), float(erasing_p), float(color_jitter)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self._composes: dict[int, A.Compose] = {}

    def __repr__(self) -> str:
        if not self.train:
            return f"ClipTransform(test, {self.height}x{self.width}, resize + normalise)"
        return (
            f"ClipTransform(train, {self.height}x{self.width}, pad={self.pad}, flip_p={self.flip_p}, "
            f"erasing_p={self.erasing_p}, color_jitter={self.color_jitter})"
        )

    # -- training ----------------------------------------------------------------------------
    def _ops(self) -> list:
        H, W = self.height, self.width
        ops: list = [A.Resize(H, W, interpolation=cv2.INTER_LINEAR)]
        if self.pad > 0:
            ops += [
                A.PadIfNeeded(H + 2 * self.pad, W + 2 * self.pad, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(H, W),
            ]
        if self.flip_p > 0:
            ops.append(A.HorizontalFlip(p=self.flip_p))
        if self.color_jitter > 0:
            cj = self.color_jitter
            ops.append(A.ColorJitter(brightness=cj, contrast=cj, saturation=cj, hue=min(cj / 4, 0.5), p=1.0))
        ops.append(A.Normalize(mean=tuple(self.mean), std=tuple(self.std), max_pixel_value=255.0))
        if self.erasing_p > 0:
            ops.append(A.Erasing(scale=ERASING_SCALE, ratio=ERASING_RATIO, fill=0, p=self.erasing_p))
        return ops

    def _compose_for(self, length: int) -> A.Compose:
        comp = self._composes.get(length)
        if comp is None:
            extra = {f"image{i}": "image" for i in range(1, length)}
            # shape checks off: frames of one tracklet may differ in size before the Resize
            comp = A.Compose(self._ops(), additional_targets=extra, is_check_shapes=False)
            self._composes[length] = comp
        return comp

    def _train(self, frames: Sequence[np.ndarray], rng: np.random.Generator | None) -> np.ndarray:
        comp = self._compose_for(len(frames))
        if rng is not None:
            # one seed from the caller's generator drives both albumentations streams
            seed = int(rng.integers(0, 2**63 - 1))
            comp.set_random_state(np.random.default_rng(seed), random.Random(seed))
        inputs = {"image": frames[0]}
        inputs.update({f"image{i}": f for i, f in enumerate(frames[1:], start=1)})
        out = comp(**inputs)
        return np.stack([out["image"]] + [out[f"image{i}"] for i in range(1, len(frames))])

    # -- test --------------------------------------------------------------------------------
    def _test(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        H, W = self.height, self.width
        resized = [f if f.shape[:2] == (H, W) else cv2.resize(f, (W, H), interpolation=cv2.INTER_LINEAR) for f in frames]
        clip = np.stack(resized).astype(np.float32)
        clip *= 1.0 / 255.0
        clip -= self.mean
        clip /= self.std
        return clip

    def __call__(self, frames: Sequence[np.ndarray], rng: np.random.Generator | None = None) -> torch.Tensor:
        _check_frames(frames)
        clip = self._train(frames, rng) if self.train else self._test(frames)
        # [T,H,W,3] -> [T,3,H,W]; contiguous so the collate stack is a plain memcpy
        return torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2), dtype=np.float32))


def build_clip_transform(
    train: bool,
    height: int = 256,
    width: int = 128,
    pad: int = 10,
    flip_p: float = 0.5,
    erasing_p: float = 0.5,
    color_jitter: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[..., torch.Tensor]:
    """Clip transform ``frames -> FloatTensor [T, 3, height, width]`` (normalised).

    ``train=True``: resize, pad + random crop, flip, optional colour jitter, normalise, random
    erasing -- one parameter draw for the whole clip (module docstring). ``train=False``: resize +
    normalise only; ``pad``, ``flip_p``, ``erasing_p`` and ``color_jitter`` are ignored.

    The returned callable takes ``(frames, rng=None)``; pass an ``np.random.Generator`` for a
    reproducible draw.
    """
    return ClipTransform(train, height, width, pad, flip_p, erasing_p, color_jitter, mean, std)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ClipTransform", "build_clip_transform"]
