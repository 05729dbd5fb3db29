"""Retrieval evaluation: exact mAP / CMC / mINP under a named protocol (``reid.protocols``:
``official`` = MARS MATLAB, ``torchreid``,
``single_camera``), FAISS kNN, k-reciprocal re-ranking, ranked-list
visualisation.

``reid.eval.extract`` (feature extraction from a model) is imported on its own, so that scoring
pre-computed features never imports the model stack. Importing this package imports numpy only:
torch is imported by the scorer's GEMM when it first runs, scipy and FAISS only for re-ranking and
kNN, matplotlib and OpenCV only for visualisation (``tests/test_cli_startup.py``), so that
``reid eval --help`` and a small ``--features`` run do not pay for them. The modules and their
import order are listed in :mod:`reid.eval.metrics`.
"""

from reid.eval.features import METRICS, EvaluationInputError
from reid.eval.metrics import evaluate
from reid.eval.report import RetrievalReport, format_report
from reid.eval.self_index import query_gallery_index
from reid.protocols import PROTOCOLS

__all__ = ["evaluate", "format_report", "RetrievalReport", "EvaluationInputError", "PROTOCOLS", "METRICS",
           "query_gallery_index"]
