"""Embedding-level classification heads as pytorch-metric-learning losses, weighted by the core.

Both own their classifier, a :mod:`reid.models.heads` module (``loss.classifier``; its weight
matrix is ``loss.W``, shape ``[num_classes, embedding_size]``, initialised ``N(0, 1 / embedding_size)``;
give the loss's parameters to the optimizer), so the model and the loss compute logits with one
implementation. They are PML ``BaseMetricLossFunction``s so they run
wherever a PML loss runs, with these semantics:

* ``indices_tuple`` (miner output) is ignored: a classification loss uses every example's label,
  and the weighting core, not a miner, decides each example's influence;
* reducers: ``compute_loss`` returns per-example (``"element"``) losses scaled by ``N`` so that
  PML's default ``MeanReducer`` returns exactly the core's normalised sum
  ``sum_i c_i CE_i`` (and its DM gradient); other reducers act on those per-example terms;
* ``ref_emb`` / ``CrossBatchMemory``: not meaningful (classification has no reference set);
  passing ``ref_emb`` raises.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import common_functions as c_f

from reid.errors import UserError
from reid.losses._common import make_stats, split_pml_kwargs
from reid.models.heads import CosineClassifier, LinearClassifier
from reid.weighting import NORMALIZATIONS, get_scheme, weighted_cross_entropy


class HeadArgumentError(UserError, ValueError):
    """A bad argument to a classification head."""


class _WeightedHead(BaseMetricLossFunction):
    def __init__(self, embedding_size: int, num_classes: int, scheme, normalize: str,
                 label_smoothing: float, params: dict) -> None:
        if "distance" in params:
            raise HeadArgumentError(
                f"{type(self).__name__}: distance= is not used by a classification head (its logits come from "
                "its own classifier, not from pairwise distances); remove it, or use a ranking loss "
                "(RankedListLoss, InstanceCrossEntropyLoss, BatchHardTripletLoss) for a distance")
        pml_kwargs, scheme_params = split_pml_kwargs(params)
        super().__init__(**pml_kwargs)
        if embedding_size < 1 or num_classes < 2:
            raise ValueError(f"{type(self).__name__}: need embedding_size >= 1 and num_classes >= 2; "
                             f"got {embedding_size}, {num_classes}")
        self.scheme = get_scheme(scheme, **scheme_params)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"{type(self).__name__}: normalize={normalize!r}; valid: 'sum', 'n'")
        self.normalize = normalize
        self.label_smoothing = float(label_smoothing)
        self.embedding_size = int(embedding_size)
        self.num_classes = int(num_classes)
        self.last_stats: dict = {}

    @property
    def init_std(self) -> float:
        """Std of the initial class weights, ``1 / sqrt(embedding_size)`` (unit-norm rows on average)."""
        return 1.0 / math.sqrt(self.embedding_size)

    @property
    def W(self) -> torch.nn.Parameter:
        """The class-weight matrix ``[num_classes, embedding_size]`` (``classifier.weight``)."""
        return self.classifier.weight

    @property
    def weight_scheme(self):
        """The :class:`reid.weighting.WeightScheme` whose ``w(p)`` weights the examples."""
        return self.scheme

    def get_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        c_f.ref_not_supported(embeddings, labels, ref_emb, ref_labels)
        if embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"{type(self).__name__}: built for embedding_size={self.embedding_size}, "
                             f"got embeddings of shape {tuple(embeddings.shape)}")
        logits = self.get_logits(embeddings, labels)
        out = weighted_cross_entropy(logits, labels, self.scheme, self.normalize, self.label_smoothing,
                                     reduction="none")
        self.last_stats = make_stats(out.weights.p, out.weights.w, loss=float(out.loss.detach().sum()),
                                     logit_abs_max=float(logits.detach().abs().max()))
        n = embeddings.shape[0]
        return {"loss": {"losses": out.loss * n, "indices": c_f.torch_arange_from_size(embeddings),
                         "reduction_type": "element"}}


class LinearClassifierLoss(_WeightedHead):
    """Linear identity classifier ``z = e W^T (+ b)`` (:class:`reid.models.heads.LinearClassifier`)
    with weighted cross entropy (``scheme``, ``normalize``, ``label_smoothing`` as in
    :class:`reid.losses.WeightedCrossEntropyLoss`; remaining ``**params`` are scheme parameters or
    PML kwargs such as ``reducer``). ``bias=True`` adds ``b`` (``loss.b``, initialised to 0).

    Caution (docs/methods.md §1): with IMAE/DM the derivative magnitude does not vanish for fitted
    examples (``w(1) = 1``) and batch-sum normalisation keeps the total push at one unit, so an
    unbounded linear head's logits keep growing (~3e4 in a measured run). The loss stays finite
    (the core never forms ``0 * inf``), but prefer :class:`CosineClassifierLoss` for DM/IMAE, or
    use BN and weight decay as the papers did.
    """

    def __init__(self, embedding_size: int, num_classes: int, scheme="cce", normalize: str = "sum",
                 label_smoothing: float = 0.0, bias: bool = False, **params) -> None:
        super().__init__(embedding_size, num_classes, scheme, normalize, label_smoothing, params)
        self.classifier = LinearClassifier(embedding_size, num_classes, init_std=self.init_std, bias=bias)

    @property
    def b(self) -> torch.nn.Parameter | None:
        return self.classifier.bias

    def get_logits(self, embeddings, labels):
        return self.classifier(embeddings)


class CosineClassifierLoss(_WeightedHead):
    """Cosine classifier ``z_ij = scale * (cos(e_i, W_j) - margin * [j = y_i])`` (NormFace /
    CosFace's additive cosine margin; the cosines come from
    :class:`reid.models.heads.CosineClassifier`) with weighted cross entropy.

    Why this is the stable head for DM/IMAE (docs/methods.md §1): the logits are bounded by
    ``+-scale``, so ``p_i`` cannot reach 1 and the weights' non-vanishing push on fitted examples
    cannot inflate the logits; in the measured noisy-label run the cosine head stayed stable
    where a linear head's logits grew to ~3e4. ``scale`` sets the sharpest achievable ``p``: with
    ``C`` classes ``p_max = 1 / (1 + (C-1) exp(-2 scale))``; 16 suits hundreds of identities, 30
    thousands.
    """

    def __init__(self, embedding_size: int, num_classes: int, scale: float = 16.0, margin: float = 0.0,
                 scheme="cce", normalize: str = "sum", label_smoothing: float = 0.0, **params) -> None:
        super().__init__(embedding_size, num_classes, scheme, normalize, label_smoothing, params)
        if scale <= 0:
            raise ValueError(f"CosineClassifierLoss: scale={scale} must be > 0")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"CosineClassifierLoss: margin={margin} must be in [0, 1)")
        self.classifier = CosineClassifier(embedding_size, num_classes, scale, init_std=self.init_std)
        self.margin = float(margin)

    @property
    def scale(self) -> float:
        return self.classifier.scale

    def get_logits(self, embeddings, labels):
        cos = self.classifier.cosine(embeddings)
        if self.margin > 0:
            cos = cos - self.margin * F.one_hot(labels, self.num_classes).to(cos.dtype)
        return self.scale * cos
