"""Shared fixtures.

``mars_info_dir``: the real MARS index files in ``../shared/data/mars-info`` (numbers only, no
images). Tests using it skip cleanly, with a reason, when the folder is absent (e.g. a clone
outside this workspace). Override with ``REID_MARS_INFO=/path/to/info``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _mars_info_candidates() -> list[Path]:
    env = os.environ.get("REID_MARS_INFO")
    out = [Path(env)] if env else []
    out.append(REPO_ROOT.parent / "shared" / "data" / "mars-info")
    return out


@pytest.fixture(scope="session")
def mars_info_dir() -> Path:
    for cand in _mars_info_candidates():
        if (cand / "tracks_test_info.mat").is_file():
            return cand
    pytest.skip("real MARS index files not found (set REID_MARS_INFO or place ../shared/data/mars-info)")


@pytest.fixture(scope="session", autouse=True)
def _limit_threads():
    # Two cores on CI: keep torch from oversubscribing when DataLoader workers also run.
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    yield


@pytest.fixture(scope="session")
def tiny_synthetic_mars(tmp_path_factory) -> Path:
    """A tiny synthetic dataset in the exact MARS layout (generated once per test session)."""
    from reid.data.synthetic import make_synthetic_mars

    out = tmp_path_factory.mktemp("synthetic") / "mars"
    make_synthetic_mars(out, ids_train=6, ids_test=6, cameras=3, seed=0, tiny=True)
    return out
