"""Random streams of the synthetic generator: one independent ``np.random.Generator`` per object.

Every identity, camera and tracklet draws from its own stream keyed by ``(seed, stream tag,
index...)``, so a result never depends on the order in which objects are generated, nor on how
tracklets are spread over worker processes.
"""

from __future__ import annotations

import numpy as np

# Stream tags: each kind of object gets its own family of streams. The values are part of the
# output (they seed the streams): changing one changes every generated file.
SPLIT_STREAM, IDENTITY_STREAM, CAMERA_STREAM, PLAN_STREAM, RENDER_STREAM = 1, 2, 3, 4, 5
# (6 was reserved for the preview, which renders through the tracklet streams instead)

# Appearance families (the ``family`` key of a person): real ids, distractor people, passers-by /
# junk fragments.
REAL_ID_FAMILY, DISTRACTOR_FAMILY, PASSER_FAMILY = 0, 1, 2


def rng_stream(seed: int, *key: int) -> np.random.Generator:
    """The stream of ``(seed, tag, index...)``: ``default_rng([seed, *key])``, each entry taken
    modulo 2**32."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(k) & 0xFFFFFFFF for k in key]])


__all__ = [
    "SPLIT_STREAM", "IDENTITY_STREAM", "CAMERA_STREAM", "PLAN_STREAM", "RENDER_STREAM",
    "REAL_ID_FAMILY", "DISTRACTOR_FAMILY", "PASSER_FAMILY", "rng_stream",
]
