"""The example-weighting core: the only place example weights are computed (docs/methods.md §1-3).

* :mod:`reid.weighting.schemes` - ``w(p)`` by name (``get_scheme("dm", lam=0.5, beta=8.0)``);
* :mod:`reid.weighting.rescale` - Derivative-Manipulation gradient rescaling of cross entropy,
  generic per-example and pair weights for ranking losses;
* :mod:`reid.weighting.diagnostics` - emphasis mode / variance, per-batch summaries for logging.
"""

from reid.weighting.diagnostics import batch_summary, emphasis_mode, emphasis_variance
from reid.weighting.rescale import (
    NORMALIZE_CHOICES,
    ExampleWeights,
    StableLogProbs,
    WeightedCE,
    example_weights,
    normalized_pair_weights,
    rescale_coefficients,
    stable_log_probs,
    weighted_cross_entropy,
    weights_from_log_probs,
)
from reid.weighting.schemes import SCHEMES, WeightScheme, describe_schemes, get_scheme

__all__ = [
    "SCHEMES", "WeightScheme", "get_scheme", "describe_schemes",
    "NORMALIZE_CHOICES", "ExampleWeights", "StableLogProbs", "WeightedCE", "example_weights",
    "normalized_pair_weights", "rescale_coefficients", "stable_log_probs", "weighted_cross_entropy",
    "weights_from_log_probs",
    "batch_summary", "emphasis_mode", "emphasis_variance",
]
