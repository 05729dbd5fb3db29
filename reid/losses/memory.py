"""``CrossBatchMemory`` that accepts this package's ranking losses.

PML's ``CrossBatchMemory`` checks the wrapped loss's class name against a fixed list. Our ranking
losses honour ``ref_emb`` / ``ref_labels`` and the pair ``indices_tuple`` the wrapper builds
(which removes each embedding's comparison with its own enqueued copy), so they are added here:
``RankedListLoss`` (ranked list over the memory), ``InstanceCrossEntropyLoss`` (matching
distribution over the memory, as NT-Xent in XBM) and ``BatchHardTripletLoss`` (hardest pairs
within the memory). The classification heads are not accepted: they have no reference set.
"""

from __future__ import annotations

from pytorch_metric_learning.losses import CrossBatchMemory as _PMLCrossBatchMemory

REID_MEMORY_LOSSES = ["RankedListLoss", "InstanceCrossEntropyLoss", "BatchHardTripletLoss"]


class CrossBatchMemory(_PMLCrossBatchMemory):
    """PML ``CrossBatchMemory`` that also accepts :data:`REID_MEMORY_LOSSES`."""

    @staticmethod
    def supported_losses():
        return _PMLCrossBatchMemory.supported_losses() + REID_MEMORY_LOSSES
