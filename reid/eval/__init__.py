"""Retrieval evaluation: exact mAP / CMC / mINP under the ``official`` (MARS MATLAB) and
``torchreid`` protocols, FAISS kNN, k-reciprocal re-ranking, ranked-list visualisation.

``reid.eval.extract`` (feature extraction from a model) is imported on its own, so that scoring
pre-computed features never imports the model stack.
"""

from reid.eval.metrics import (
    METRICS,
    PROTOCOLS,
    EvaluationInputError,
    RetrievalReport,
    evaluate,
    format_report,
)

__all__ = ["evaluate", "format_report", "RetrievalReport", "EvaluationInputError", "PROTOCOLS", "METRICS"]
