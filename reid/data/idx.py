"""IDX file format (MNIST, Fashion-MNIST), plain or gzip-compressed.

Format (LeCun, http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``0x00 0x00 <dtype>
<ndim>``, then ``ndim`` big-endian uint32 dimension sizes, then the data in row-major,
big-endian order. dtype codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64. Files ending in ``.gz`` are decompressed transparently.

Fashion-MNIST on Debian/Ubuntu: ``apt-get install dataset-fashion-mnist`` puts the four files in
``/usr/share/datasets/fashion-mnist/``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from reid.errors import UserError

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {np.dtype(v).newbyteorder("=") if v.itemsize > 1 else v: k for k, v in IDX_DTYPES.items()}

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


class IDXError(UserError, ValueError):
    """An IDX file is malformed; the message names the file."""


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a native-endian numpy array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: IDX file not found")
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # truncated / not-actually-gzip
        raise IDXError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4:
        raise IDXError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise IDXError(
            f"{path}: bad magic number 0x{raw[:4].hex()} (expected 0x0000<dtype><ndim> with dtype in "
            f"{{{', '.join(hex(k) for k in IDX_DTYPES)}}}); not an IDX file"
        )
    dtype = IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: header declares {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        raise IDXError(
            f"{path}: size mismatch: header shape {shape} of {dtype} needs {expected} data bytes, file has {got}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as IDX (gzip-compressed when ``path`` ends in ``.gz``)."""
    path = Path(path)
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=") if arr.dtype.itemsize > 1 else arr.dtype
    code = _CODE_OF.get(native)
    if code is None:
        raise ValueError(f"{path}: dtype {arr.dtype} has no IDX code (use one of uint8, int8, int16, int32, float32, float64)")
    if arr.ndim > 255:
        raise ValueError(f"{path}: {arr.ndim} dimensions > 255")
    payload = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload += np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as f:
        f.write(payload)
    return path


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"{root}: neither {stem}.gz nor {stem} found (Fashion-MNIST: `apt-get install dataset-fashion-mnist` "
        f"installs it in {FASHION_MNIST_DIR})"
    )


def load_mnist_like(root: str | os.PathLike = FASHION_MNIST_DIR, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 28, 28]`` and labels ``int64 [N]`` of an MNIST-layout folder.

    ``split``: ``"train"`` (``train-images-idx3-ubyte``) or ``"test"`` (``t10k-...``)."""
    root = Path(root)
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    img_path = _find(root, f"{prefix}-images-idx3-ubyte")
    lab_path = _find(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3:
        raise IDXError(f"{img_path}: expected 3 dimensions [N, H, W], got shape {images.shape}")
    if labels.ndim != 1:
        raise IDXError(f"{lab_path}: expected 1 dimension [N], got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise IDXError(f"{img_path} has {images.shape[0]} images but {lab_path} has {labels.shape[0]} labels")
    return images, labels.astype(np.int64)


__all__ = ["read_idx", "write_idx", "load_mnist_like", "IDXError", "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES"]
