"""One albumentations draw for all frames of a clip: three ways, timed on the training pipeline
(printed by ``python tools/benchmark.py loader``; the reason :mod:`reid.data.transforms` uses
``additional_targets``)."""

from __future__ import annotations

import time

import cv2
import numpy as np

from reid.data.transforms import build_clip_transform


def compare_strategies(lengths=(4, 8), height=256, width=128, repeats=200, seed=0) -> list[dict]:
    """ms per clip of three ways to apply one albumentations draw to all T frames, same pipeline:
    ``additional_targets`` (what :mod:`reid.data.transforms` uses), the 2.x ``images=`` batch
    target (needs same-size frames: resized first with cv2), and ``ReplayCompose`` replay."""
    import albumentations as A

    ops_of = build_clip_transform(True, height=height, width=width)._ops
    rng = np.random.default_rng(seed)
    out = []
    for T in lengths:
        frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(T)]
        extra = {f"image{i}": "image" for i in range(1, T)}
        c_add = A.Compose(ops_of(), additional_targets=extra, is_check_shapes=False, seed=seed)
        c_rep = A.ReplayCompose(ops_of())
        c_img = A.Compose(ops_of()[1:], seed=seed)  # Resize done outside, per frame

        def additional_targets():
            res = c_add(image=frames[0], **{f"image{i}": frames[i] for i in range(1, T)})
            return [res["image"]] + [res[f"image{i}"] for i in range(1, T)]

        def images_target():
            stack = np.stack([f if f.shape[:2] == (height, width) else cv2.resize(f, (width, height)) for f in frames])
            return c_img(images=stack)["images"]

        def replay():
            first = c_rep(image=frames[0])
            return [first["image"]] + [A.ReplayCompose.replay(first["replay"], image=f)["image"] for f in frames[1:]]

        for name, fn in (("additional_targets", additional_targets), ("images", images_target), ("replay", replay)):
            for _ in range(10):
                fn()
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            out.append({"T": T, "strategy": name, "ms_per_clip": (time.perf_counter() - t0) / repeats * 1e3})
    return out


__all__ = ["compare_strategies"]
