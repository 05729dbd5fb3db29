"""FAISS top-k lists against torch.topk and against a stable full sort (ties by gallery index);
the installed faiss build, and when its GPU path is taken (checked on CPU with fakes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.errors import UserError
from reid.eval.knn import FaissGpuUnavailableError, faiss_uses_gpu, knn_search


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_faiss_topk_equals_torch_topk(metric):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(20, 12)).astype(np.float32)
    g = rng.normal(size=(300, 12)).astype(np.float32)
    scores, idx = knn_search(q, g, k=15, metric=metric, use_gpu=False)
    qt, gt = torch.from_numpy(q), torch.from_numpy(g)
    if metric == "cosine":
        s = torch.nn.functional.normalize(qt, dim=1) @ torch.nn.functional.normalize(gt, dim=1).T
    else:
        s = -torch.cdist(qt, gt) ** 2
    ref_s, ref_i = torch.topk(s, 15, dim=1)
    np.testing.assert_array_equal(idx, ref_i.numpy())
    np.testing.assert_allclose(scores, ref_s.numpy(), rtol=1e-4, atol=1e-4)


def test_ties_are_broken_by_gallery_index_across_the_k_boundary():
    rng = np.random.default_rng(1)
    pool = rng.integers(-2, 3, size=(4, 6)).astype(np.float32)
    g = pool[rng.integers(0, 4, 200)]  # 200 rows, only 4 distinct: huge tie groups
    q = pool[:3] + 0.0
    scores, idx = knn_search(q, g, k=10, metric="euclidean")
    exact = -((q[:, None, :] - g[None]) ** 2).sum(-1)
    for r in range(len(q)):
        expected = sorted(range(len(g)), key=lambda j: (-exact[r, j], j))[:10]
        assert idx[r].tolist() == expected
    assert (np.diff(scores, axis=1) <= 0).all()


def test_k_is_clipped_and_errors_are_clear():
    g = np.eye(3, dtype=np.float32)
    _, idx = knn_search(g, g, k=10)
    assert idx.shape == (3, 3)
    with pytest.raises(ValueError, match="equal D"):
        knn_search(np.ones((2, 4)), g, k=1)


# ---------------------------------------------------------------------------------------------
# the faiss build and the GPU code path (no GPU needed)

FAISS_BUILDS = {"faiss-cpu", "faiss-gpu", "faiss-gpu-cu11", "faiss-gpu-cu12", "faiss-gpu-cu13"}


def test_import_faiss_resolves_to_the_one_installed_build():
    """faiss-cpu and the faiss-gpu wheels all install the module ``faiss`` over each other:
    exactly one of them may provide it, ``import faiss`` must load that one's files, and the
    build must have the API ``reid.eval.knn`` calls (GPU classes only in a GPU build)."""
    from importlib import metadata
    from pathlib import Path

    import faiss

    providers = {name.lower().replace("_", "-") for name in metadata.packages_distributions().get("faiss", [])}
    if not providers:
        pytest.skip("faiss was not installed by pip (no distribution metadata, e.g. conda)")
    assert len(providers) == 1, f"several faiss builds installed over each other: {sorted(providers)}"
    (build,) = providers
    assert build in FAISS_BUILDS, build
    dist = metadata.distribution(build)
    installed = {Path(dist.locate_file(f)).resolve() for f in dist.files or []}
    assert Path(faiss.__file__).resolve() in installed, (faiss.__file__, build)
    assert dist.version.split("+")[0].split(".")[:2] == faiss.__version__.split(".")[:2]
    for api in ("IndexFlatIP", "IndexFlatL2", "get_num_gpus"):
        assert callable(getattr(faiss, api)), api
    assert isinstance(faiss.get_num_gpus(), int)
    if build == "faiss-cpu":
        assert not hasattr(faiss, "StandardGpuResources") and not faiss_uses_gpu()
    else:
        assert hasattr(faiss, "StandardGpuResources") and hasattr(faiss, "index_cpu_to_gpu")


class _FakeGpuResources:
    pass


@pytest.fixture
def fake_gpu_faiss(monkeypatch):
    """faiss with fake GPU pieces: ``index_cpu_to_gpu`` records its call and hands back the CPU
    index (so searches still run, on CPU). Returns (set_num_gpus, calls)."""
    import faiss

    calls = []

    def index_cpu_to_gpu(resources, device, index):
        calls.append((type(resources), device, type(index).__name__))
        return index

    monkeypatch.setattr(faiss, "StandardGpuResources", _FakeGpuResources, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", index_cpu_to_gpu, raising=False)

    def set_num_gpus(n: int):
        monkeypatch.setattr(faiss, "get_num_gpus", lambda: n)

    return set_num_gpus, calls


@pytest.mark.parametrize("num_gpus", [0, 1, 2])
@pytest.mark.parametrize("metric, index", [("cosine", "IndexFlatIP"), ("euclidean", "IndexFlatL2")])
def test_gpu_path_is_taken_only_when_faiss_sees_a_gpu(fake_gpu_faiss, num_gpus, metric, index):
    set_num_gpus, calls = fake_gpu_faiss
    rng = np.random.default_rng(2)
    q, g = rng.normal(size=(6, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    set_num_gpus(0)
    ref = knn_search(q, g, k=5, metric=metric)
    assert calls == []
    set_num_gpus(num_gpus)
    assert faiss_uses_gpu() is (num_gpus > 0)
    got = knn_search(q, g, k=5, metric=metric)  # automatic choice
    assert calls == ([(_FakeGpuResources, 0, index)] if num_gpus else [])
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    calls.clear()
    knn_search(q, g, k=5, metric=metric, use_gpu=False)  # forcing CPU never touches the GPU
    assert calls == []


def test_a_cpu_build_never_takes_the_gpu_path(monkeypatch):
    """Without ``StandardGpuResources`` (a CPU build) even a GPU count > 0 means CPU."""
    import faiss

    monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    assert not faiss_uses_gpu()
    g = np.eye(4, dtype=np.float32)
    assert knn_search(g, g, k=1)[1].ravel().tolist() == [0, 1, 2, 3]
    with pytest.raises(FaissGpuUnavailableError, match="CPU-only build.*use_gpu=None") as err:
        knn_search(g, g, k=1, use_gpu=True)
    assert isinstance(err.value, UserError) and isinstance(err.value, RuntimeError)


def test_forcing_the_gpu_without_one_is_a_clear_user_error(fake_gpu_faiss):
    set_num_gpus, calls = fake_gpu_faiss
    set_num_gpus(0)
    g = np.eye(4, dtype=np.float32)
    with pytest.raises(FaissGpuUnavailableError, match=r"sees no GPU \(faiss.get_num_gpus\(\) = 0\)"):
        knn_search(g, g, k=1, use_gpu=True)
    assert calls == []


def test_searches_wider_than_the_gpu_limit_run_on_cpu(fake_gpu_faiss, monkeypatch):
    """A long tie widens the search past FAISS-GPU's k limit (2048): those searches go to a CPU
    index, the narrow ones stay on the GPU, and the list is the exact stable top-k."""
    import faiss

    import reid.eval.knn as knn

    set_num_gpus, calls = fake_gpu_faiss
    set_num_gpus(1)
    widths = []

    class FakeGpuIndex:  # the CPU index behind a GPU-like k limit
        def __init__(self, index):
            self.index = index

        def add(self, x):
            self.index.add(x)

        def search(self, q, k):
            assert k <= knn.GPU_MAX_K, f"k={k} beyond the GPU limit"
            widths.append(k)
            return self.index.search(q, k)

    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, index: FakeGpuIndex(index))
    monkeypatch.setattr(knn, "GPU_MAX_K", 16)
    g = np.zeros((100, 4), np.float32)
    g[:, 0] = 1.0  # 100 identical items: every search ties past any width
    g[7, 1] = 0.5  # one distinct item, ranked after the tie for the query below
    q = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    scores, idx = knn_search(q, g, k=3, metric="euclidean")
    assert idx.tolist() == [[0, 1, 2]] and scores.tolist() == [[0.0, 0.0, 0.0]]
    assert widths == [4, 8, 16]  # then 32, 64, 100 on the CPU index
