"""reid: video person re-identification with example weighting.

The one idea: in gradient-based training the magnitude of a loss's derivative for an example is
that example's weight. ``reid.weighting`` designs that weight directly; every loss in
``reid.losses`` calls it. The package reads as the data path:
``reid.data`` -> ``reid.models`` -> ``reid.losses`` -> ``reid.engine`` -> ``reid.eval``.
"""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

# keep equal to ``[project] version`` in pyproject.toml (tests/test_package_metadata.py checks)
_SOURCE_VERSION = "0.1.0"

try:
    # the installed distribution's metadata is the truth for a wheel install
    __version__ = _distribution_version("reid")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = _SOURCE_VERSION
