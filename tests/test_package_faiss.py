"""One faiss build is installed and imported (faiss-cpu and the GPU wheels write the same ``faiss``
module, docs/install.md), and the GPU code path is taken only when ``faiss.get_num_gpus() > 0``."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")
from reid.eval import knn  # noqa: E402

FAISS_DISTRIBUTIONS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu11", "faiss-gpu-cu12", "faiss-gpu-cu13")


def _installed() -> dict[str, metadata.Distribution]:
    out = {}
    for name in FAISS_DISTRIBUTIONS:
        try:
            out[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def test_exactly_one_faiss_build_is_installed_and_it_owns_the_imported_module():
    installed = _installed()
    assert len(installed) == 1, (
        f"faiss builds installed together: {sorted(installed)}; they overwrite each other's files. "
        "Keep one (docs/install.md, GPU)")
    (dist,) = installed.values()
    owned = {Path(dist.locate_file(f)).resolve() for f in dist.files or () if f.name == "__init__.py"}
    assert Path(faiss.__file__).resolve() in owned


def _search(monkeypatch, gpus: int, has_resources: bool) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: gpus)
    if has_resources:
        monkeypatch.setattr(faiss, "StandardGpuResources", lambda: object(), raising=False)
    else:
        monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)

    def to_gpu(resources, device, index):  # stands in for the GPU copy: record, search on CPU
        calls.append(f"gpu:{device}")
        return index

    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    rng = np.random.default_rng(0)
    scores, idx = knn.knn_search(rng.normal(size=(3, 8)).astype("float32"),
                                 rng.normal(size=(10, 8)).astype("float32"), k=4)
    assert idx.shape == (3, 4) and np.isfinite(scores).all()
    return calls


@pytest.mark.parametrize("gpus, has_resources, expected", [(0, True, []), (0, False, []), (2, False, []),
                                                            (1, True, ["gpu:0"])])
def test_gpu_path_only_when_faiss_sees_a_gpu(monkeypatch, gpus, has_resources, expected):
    assert _search(monkeypatch, gpus, has_resources) == expected
    assert knn.faiss_uses_gpu() is bool(expected)


def test_forcing_gpu_without_one_is_refused(monkeypatch):
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    with pytest.raises(RuntimeError, match="GPU"):
        knn.knn_search(np.ones((2, 4), "float32"), np.ones((5, 4), "float32"), k=2, use_gpu=True)
