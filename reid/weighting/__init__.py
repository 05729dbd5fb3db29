"""The example-weighting core: the only place example weights are computed (docs/methods.md §1-3).

* :mod:`reid.weighting.schemes` - ``w(p)`` by name (``get_scheme("dm", lam=0.5, beta=8.0)``;
  registry :data:`SCHEMES`);
  :mod:`reid.weighting.schemes_literature` adds the literature's CCE-direction losses (``sce``);
* :mod:`reid.weighting.log_probs` - stable ``log p_i`` / ``log(1 - p_i)`` from logits;
* :mod:`reid.weighting.example_weights` - a batch's weights ``w_i`` and ``w_i / Z`` (normaliser
  :data:`NORMALIZATIONS`: ``sum`` | ``n``), DM coefficients, pair weights for ranking losses;
* :mod:`reid.weighting.rescale` - Derivative-Manipulation gradient rescaling of cross entropy
  (:func:`weighted_cross_entropy`);
* :mod:`reid.weighting.targets` - cross entropy against a revised target (ProSelfLC, label
  smoothing, confidence penalty, bootstrapping) with its per-example weight;
* :mod:`reid.weighting.active_passive` - NCE + RCE (not along CCE's direction) with its weight;
* :mod:`reid.weighting.diagnostics` - emphasis mode / variance, per-batch summaries for logging.
"""

from reid.weighting.diagnostics import batch_summary, emphasis_mode, emphasis_variance
from reid.weighting.example_weights import (
    NORMALIZATIONS,
    NORMALIZE_CHOICES,
    ExampleWeights,
    example_weights,
    normalized_pair_weights,
    rescale_coefficients,
    weights_from_log_probs,
)
from reid.weighting.log_probs import StableLogProbs, stable_log_probs
from reid.weighting.rescale import WeightedCE, weighted_cross_entropy
from reid.weighting.targets import RevisedTargetCE, revised_target_cross_entropy
from reid.weighting.active_passive import nce_rce
from reid.weighting.schemes import SCHEMES, WeightScheme, describe_schemes, get_scheme
from reid.weighting import schemes_literature  # noqa: F401,E402 - registers sce in SCHEMES

__all__ = [
    "SCHEMES", "WeightScheme", "get_scheme", "describe_schemes",
    "NORMALIZATIONS", "NORMALIZE_CHOICES", "ExampleWeights", "StableLogProbs", "WeightedCE", "example_weights",
    "normalized_pair_weights", "rescale_coefficients", "stable_log_probs", "weighted_cross_entropy",
    "weights_from_log_probs",
    "batch_summary", "emphasis_mode", "emphasis_variance", "RevisedTargetCE", "revised_target_cross_entropy", "nce_rce",
]
