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

# Lazy top-level exports (PEP 562): ``import reid`` stays instant and imports no torch; the
# attribute loads its module on first use. name -> module defining it.
_LAZY_EXPORTS = {"FeatureExtractor": "reid.engine.extractor"}


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'reid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_EXPORTS])
