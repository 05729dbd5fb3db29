"""Frames that travel as ``uint8`` pixels and are normalised on the model's device.

Why: a normalised float32 clip is 4x the bytes of its pixels, and making and moving those floats
was most of the loader's CPU cost: per 256x128 frame, decode + augment took 0.48 ms CPU with
uint8 output against 0.81 ms with the float output, and the whole in-process loader 0.52 ms
against 1.36 ms (one process, same clips, 2026-12-01; ``python tools/benchmark.py loader`` has
the raw uint8 / raw float / loader rows). So the datasets (:mod:`reid.data.datasets`) hand over
the augmented pixels, the DataLoader moves a quarter of the bytes (pinned on CUDA), and the video
model's first op (:meth:`reid.models.video_model.VideoReIDModel.encode_frames`, on whatever device
it runs) turns them into the float input the backbone always got:

    x' = (x * (1/255) - mean) / std          per channel, float32, mean/std = DEVICE_MEAN/DEVICE_STD

in the operation order of the test transform (``ClipTransform`` with ``train=False``), so test
frames are equal **bit for bit** to the CPU path on the same pixels. The training transform
normalised with albumentations' lookup table ``(x - 255 mean) * (1 / (255 std))``, which differs
from this formula by at most 7.2e-7 (611 of the 768 table entries differ in the last bit).

Layout: a uint8 clip is stored ``[T, H, W, 3]`` (the decoder's and albumentations' layout, so
filling it is a plain copy per frame, no transpose on the CPU) and handed over as the view
``[T, 3, H, W]`` (``permute``), the shape every consumer expects. The device-side normalisation
reads any strides and writes the contiguous float tensor the backbone got before.

Random erasing. The float pipeline erased *after* normalisation with 0, i.e. with the ImageNet
mean pixel ``255 * mean = (123.675, 116.28, 103.53)``. A uint8 pixel cannot hold that, so the uint8
pipeline erases with the nearest uint8 pixel, :data:`ERASING_FILL` = ``(124, 116, 104)``, which
normalises to ``(+0.00557, -0.00490, +0.00819)`` instead of 0 (every other pixel unchanged). The
box is the same: same albumentations ``Erasing`` op, same position in the pipeline, same random
draws (``Normalize`` draws nothing), so a given generator erases the same rectangle of the same
clips with the same probability (``erasing_p``), area in ``[0.02, 0.4]`` and aspect in
``[0.3, 3.3]`` as before (tested).

Only a :class:`~reid.data.transforms.ClipTransform` whose mean/std are :data:`DEVICE_MEAN` /
:data:`DEVICE_STD` has a uint8 variant (:func:`uint8_variant`); the datasets keep the float path
(normalised on the CPU, as before) for any other transform.
"""

from __future__ import annotations

import functools
import random
from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from reid.data.transforms import (
    ERASING_RATIO,
    ERASING_SCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipTransform,
    _check_frames,
)

# the normalisation uint8 frames get on the device (the one the datasets' transforms use by default)
DEVICE_MEAN = IMAGENET_MEAN
DEVICE_STD = IMAGENET_STD
# random erasing on uint8 pixels: the uint8 pixel nearest to the mean pixel 255 * DEVICE_MEAN
ERASING_FILL = tuple(int(round(255.0 * m)) for m in DEVICE_MEAN)  # (124, 116, 104)


@functools.lru_cache(maxsize=16)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``1/255``, mean and std as float32 tensors on ``device`` (made once per device: no host
    copy, hence no synchronisation, per call). Normal tensors even if first asked for under
    ``torch.inference_mode`` (an inference tensor could not be used in a training step later)."""
    with torch.inference_mode(False), torch.no_grad():
        scale = torch.tensor(np.float32(1.0 / 255.0), device=device)
        mean = torch.tensor(np.asarray(DEVICE_MEAN, np.float32), device=device).view(3, 1, 1)
        std = torch.tensor(np.asarray(DEVICE_STD, np.float32), device=device).view(3, 1, 1)
    return scale, mean, std


def normalize_frames(frames: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 pixels ``[..., 3, H, W]`` (any strides) -> float32 ``(x * (1/255) - mean) / std`` on
    the same device, contiguous (or ``channels_last`` for 4-D input when asked). The operation
    order is the test transform's, so the result equals it bit for bit on the same pixels."""
    if frames.dtype != torch.uint8:
        raise TypeError(f"normalize_frames expects uint8 pixels, got {frames.dtype}")
    if frames.dim() < 3 or frames.shape[-3] != 3:
        raise ValueError(f"normalize_frames expects frames [..., 3, H, W], got {tuple(frames.shape)}")
    scale, mean, std = _constants(frames.device)
    fmt = torch.channels_last if channels_last and frames.dim() == 4 else torch.contiguous_format
    out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device, memory_format=fmt)
    out.copy_(frames)  # the only pass that reads the (possibly permuted) uint8 layout
    return out.mul_(scale).sub_(mean).div_(std)


def new_frame_buffer(shape: Sequence[int], shared: bool) -> torch.Tensor:
    """An uninitialised uint8 buffer (``[..., H, W, 3]``); in shared memory when ``shared`` (inside
    a DataLoader worker: the batch then reaches the main process without the copy the queue makes
    of a private tensor)."""
    if not shared:
        return torch.empty(tuple(shape), dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))  # allocated in shared memory, no copy
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(tuple(shape))


def as_chw(hwc: torch.Tensor) -> torch.Tensor:
    """``[..., H, W, 3]`` -> the view ``[..., 3, H, W]`` (no copy)."""
    return hwc.movedim(-1, -3)


class Uint8ClipTransform(ClipTransform):
    """The uint8 variant of a :class:`ClipTransform`: the same pipeline without ``Normalize``,
    random erasing filled with :data:`ERASING_FILL` (module docstring); same random draws.

    ``fill(frames, out, rng)`` writes the clip into ``out`` (``[T, H, W, 3]`` uint8, e.g. a slot of
    a batch buffer); calling it returns ``uint8 [T, 3, H, W]`` (a view of a ``[T, H, W, 3]`` buffer).
    """

    @classmethod
    def of(cls, transform: ClipTransform) -> "Uint8ClipTransform":
        return cls(transform.train, transform.height, transform.width, transform.pad, transform.flip_p,
                   transform.erasing_p, transform.color_jitter, tuple(transform.mean), tuple(transform.std))

    def __repr__(self) -> str:
        return "Uint8" + super().__repr__().replace("normalise", "uint8")

    def _ops(self) -> list:
        ops = []
        for op in super()._ops():
            if isinstance(op, A.Normalize):
                continue  # done on the device (normalize_frames)
            if isinstance(op, A.Erasing):  # fill 0 after normalisation = the mean pixel before it
                op = A.Erasing(scale=ERASING_SCALE, ratio=ERASING_RATIO, fill=ERASING_FILL, p=self.erasing_p)
            ops.append(op)
        return ops

    def fill(self, frames: Sequence[np.ndarray], out: np.ndarray, rng: np.random.Generator | None = None) -> None:
        _check_frames(frames)
        if out.shape != (len(frames), self.height, self.width, 3) or out.dtype != np.uint8:
            raise ValueError(f"Uint8ClipTransform.fill: out must be uint8 {(len(frames), self.height, self.width, 3)}, "
                             f"got {out.dtype} {out.shape}")
        if not self.train:
            for f, dst in zip(frames, out):
                if f.shape[:2] == (self.height, self.width):
                    dst[...] = f
                else:  # the test transform's resize, written straight into the buffer
                    cv2.resize(f, (self.width, self.height), dst=dst, interpolation=cv2.INTER_LINEAR)
            return
        comp = self._compose_for(len(frames))
        if rng is not None:  # as ClipTransform._train: one seed drives both albumentations streams
            seed = int(rng.integers(0, 2**63 - 1))
            comp.set_random_state(np.random.default_rng(seed), random.Random(seed))
        res = comp(image=frames[0], **{f"image{i}": f for i, f in enumerate(frames[1:], start=1)})
        out[0] = res["image"]
        for i in range(1, len(frames)):
            out[i] = res[f"image{i}"]

    def __call__(self, frames: Sequence[np.ndarray], rng: np.random.Generator | None = None, *,
                 out: torch.Tensor | None = None, shared: bool = False) -> torch.Tensor:
        """The clip written into ``out`` (``[T, H, W, 3]``), or into a new buffer (in shared
        memory when ``shared``), returned as the ``[T, 3, H, W]`` view."""
        if out is None:
            out = new_frame_buffer((len(frames), self.height, self.width, 3), shared=shared)
        self.fill(frames, out.numpy(), rng)
        return as_chw(out)


def resolve_uint8(transform, uint8: bool | None, who: str) -> Uint8ClipTransform | None:
    """A dataset's ``uint8=`` argument: the uint8 variant of ``transform`` (``None``: when it has
    one; ``True``: it must have one, else a ValueError naming ``who``), or None for the float path
    (``False``, or no variant)."""
    if uint8 is False:
        return None
    variant = uint8_variant(transform)
    if variant is None and uint8:
        raise ValueError(f"{who}: uint8=True needs a reid.data.transforms.ClipTransform normalised with the "
                         f"ImageNet mean/std (reid.data.uint8_frames.DEVICE_MEAN/DEVICE_STD), got {transform!r}")
    return variant


def uint8_variant(transform) -> Uint8ClipTransform | None:
    """The uint8 variant of ``transform``, or None when it has none (not a ``ClipTransform``, or
    normalised with other constants than :data:`DEVICE_MEAN` / :data:`DEVICE_STD`)."""
    if isinstance(transform, Uint8ClipTransform):
        return transform
    if not isinstance(transform, ClipTransform):
        return None
    same = (np.array_equal(transform.mean, np.asarray(DEVICE_MEAN, np.float32))
            and np.array_equal(transform.std, np.asarray(DEVICE_STD, np.float32)))
    return Uint8ClipTransform.of(transform) if same else None


__all__ = [
    "DEVICE_MEAN",
    "DEVICE_STD",
    "ERASING_FILL",
    "Uint8ClipTransform",
    "as_chw",
    "new_frame_buffer",
    "normalize_frames",
    "resolve_uint8",
    "uint8_variant",
]
