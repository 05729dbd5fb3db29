"""reid: video person re-identification with example weighting.

The one idea: in gradient-based training the magnitude of a loss's derivative for an example is
that example's weight. ``reid.weighting`` designs that weight directly; every loss in
``reid.losses`` calls it. The package reads as the data path:
``reid.data`` -> ``reid.models`` -> ``reid.losses`` -> ``reid.engine`` -> ``reid.eval``.
"""

__version__ = "0.1.0"
