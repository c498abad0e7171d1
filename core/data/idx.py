"""Reader for the IDX files MNIST and Fashion-MNIST are distributed in (optionally gzipped)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file into an array; a clear DataError for a truncated or foreign file."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (incomplete header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header < expected:
        raise DataError(f"{path} is truncated: expected {expected} data bytes, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape)


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four MNIST-style IDX files in `folder` (plain or .gz, also under raw/), or None if any is missing."""
    found = {}
    for candidate in (folder, folder / "raw"):
        for key, stem in IDX_FILES.items():
            for name in (stem, stem + ".gz"):
                if (candidate / name).is_file() and key not in found:
                    found[key] = candidate / name
    return found if len(found) == 4 else None


def load_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Train and test IDX files joined (train first), as the papers use them: images (N, 28, 28), labels (N,)."""
    files = find_idx_files(folder)
    if files is None:
        raise DataError(f"{folder} does not hold the four IDX files ({', '.join(IDX_FILES.values())})")
    images = np.concatenate([read_idx(files["train_images"]), read_idx(files["test_images"])])
    labels = np.concatenate([read_idx(files["train_labels"]), read_idx(files["test_labels"])])
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"IDX files in {folder} do not match: {images.shape} images, {labels.shape} labels")
    return images.astype(np.uint8), labels.astype(np.int64)
