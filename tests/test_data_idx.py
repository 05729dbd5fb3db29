"""IDX loader: round-trip (raw and gzip), clear errors, the real Fashion-MNIST files when present."""

import gzip

import numpy as np
import pytest

from reid.data.idx import FASHION_MNIST_DIR, IDXError, load_mnist_like, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if dtype == np.uint8:
        arr = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / f"a-idx3{suffix}", arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, arr)


def test_header_is_big_endian(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((258,), np.int32))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 1]) and raw[4:8] == bytes([0, 0, 1, 2])


def test_bad_magic_names_the_file(tmp_path):
    p = tmp_path / "labels.idx"
    p.write_bytes(bytes([0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 5]))
    with pytest.raises(IDXError, match=r"labels\.idx.*bad magic"):
        read_idx(p)
    g = tmp_path / "bad.gz"
    with gzip.open(g, "wb") as f:
        f.write(b"PK\x03\x04junk")
    with pytest.raises(IDXError, match="bad.gz"):
        read_idx(g)


def test_size_mismatch_and_truncation(tmp_path):
    p = write_idx(tmp_path / "img", np.zeros((4, 2, 2), np.uint8))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(IDXError, match="size mismatch"):
        read_idx(p)
    q = tmp_path / "short"
    q.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(IDXError, match="short"):
        read_idx(q)


def test_load_mnist_like_checks_counts(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    x, y = load_mnist_like(tmp_path, "train")
    assert x.shape == (5, 28, 28) and y.dtype == np.int64 and list(y) == [0, 1, 2, 3, 4]
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    with pytest.raises(IDXError, match="5 images but .* 4 labels"):
        load_mnist_like(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_mnist_like(tmp_path / "nowhere", "train")


def test_real_fashion_mnist():
    if not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
    x, y = load_mnist_like(FASHION_MNIST_DIR, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.array_equal(np.bincount(y), np.full(10, 1000))
