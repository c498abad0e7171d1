"""The named data sets of the papers, each from whatever form the user has it in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .idx import find_idx_files, load_idx_folder
from .imageset import ImageSet

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def load_digits_set(size: int = 28) -> ImageSet:
    """scikit-learn's 1,797 8×8 digits (values 0–16), upsampled bilinearly to size×size uint8."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8)
    return ImageSet(images, d.target, MNIST_CLASSES, name="digits", source="sklearn.datasets.load_digits",
                    info={"upsampled_from": [8, 8]})


def load_npz(path: Path, name: str, class_names: list[str] | None = None) -> ImageSet:
    """An .npz with `images` (N,H,W | N,H,W,C | N,C,H,W; uint8, or floats in [0, 1]) and optional `labels`."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if magic != b"PK\x03\x04":  # an .npz is a zip of .npy arrays
        raise DataError(f"{path} is not an .npz archive (a NumPy .npz file, as written by numpy.savez, is a zip "
                        "of arrays)")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "images" not in f:
                raise DataError(f"{path} has no 'images' array (found: {', '.join(f.files) or 'nothing'})")
            images = f["images"]
            labels = f["labels"] if "labels" in f else None
            if "class_names" in f:
                class_names = [str(c) for c in f["class_names"]]
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - a cut or damaged archive fails in zipfile, zlib or numpy's reader
        raise DataError(f"cannot read {path}: it is damaged or cut short ({type(e).__name__}: {e})") from None
    images = _to_uint8(images, path)
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    elif images.ndim != 4:
        raise DataError(f"{path}: 'images' must have 3 or 4 dimensions, got shape {images.shape}")
    return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), labels, class_names, name=name,
                    source=str(path))


def _to_uint8(images: np.ndarray, path) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating) and images.size and images.min() >= 0 and images.max() <= 1:
        return np.round(images * 255).astype(np.uint8)
    raise DataError(f"{path}: 'images' must be uint8 (0–255) or floats in [0, 1], got {images.dtype}")


def _has_images(folder: Path) -> bool:
    from .folder import IMAGE_EXTENSIONS

    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.rglob("*"))


def _torchvision_error(name: str, root: Path, err: Exception) -> DataError:
    return DataError(
        f"{name} not found under {root} ({err}). Pass --data-path to a copy you have, or --download to fetch it"
    )


def load_mnist_like(name: str, data_path: Path | None, root: Path, download: bool) -> ImageSet:
    """MNIST or Fashion-MNIST, train and test joined (70,000 images): .npz, IDX folder, or torchvision's copy."""
    classes = FASHION_CLASSES if name == "fashion-mnist" else MNIST_CLASSES
    if data_path is not None:
        data_path = Path(data_path)
        if not data_path.exists():
            raise DataError(f"{name}: no such file or folder: {data_path}")
        if data_path.suffix == ".npz":
            return load_npz(data_path, name, classes)
        if data_path.is_dir() and find_idx_files(data_path) is not None:
            images, labels = load_idx_folder(data_path)
            return ImageSet(torch.from_numpy(images[:, None].copy()), labels, classes, name=name,
                            source=str(data_path))
        root = data_path
    import torchvision

    cls = torchvision.datasets.FashionMNIST if name == "fashion-mnist" else torchvision.datasets.MNIST
    try:
        parts = [cls(str(root), train=t, download=download) for t in (True, False)]
    except (RuntimeError, OSError) as e:
        raise _torchvision_error(name, root, e) from None
    images = torch.cat([p.data for p in parts])[:, None].contiguous()
    labels = torch.cat([p.targets for p in parts]).numpy()
    return ImageSet(images, labels, classes, name=name, source=f"torchvision:{root}")


def _as_image_folder(name: str, data_path: Path | None, torchvision_marker: str, folder_kw: dict):
    """An ImageSet when `data_path` is an image folder or .zip (not torchvision's own copy), else None."""
    from .folder import load_image_folder

    if data_path is None:
        return None
    if not data_path.exists():
        raise DataError(f"{name}: no such file or folder: {data_path}")
    if data_path.suffix == ".zip" or (data_path.is_dir() and not (data_path / torchvision_marker).exists()
                                      and _has_images(data_path)):
        return load_image_folder(data_path, name=name, **folder_kw)
    return None


def _torchvision_parts(name: str, root: Path, make):
    try:
        return [make(str(root), split) for split in ("train", "test")]
    except (RuntimeError, OSError) as e:
        raise _torchvision_error(name, root, e) from None


def _colour_set(name: str, data_path: Path | None, root: Path, marker: str, make, convert, classes,
                folder_kw: dict) -> ImageSet:
    """A colour set from an image folder/zip at `data_path`, else torchvision's copy: `make(root, split)` reads a
    split, `convert(parts)` gives (uint8 N×3×H×W array, labels)."""
    folder = _as_image_folder(name, data_path, marker, folder_kw)
    if folder is not None:
        return folder
    root = data_path or root
    images, labels = convert(_torchvision_parts(name, root, make))
    return ImageSet(torch.from_numpy(images), labels, classes, name=name, source=f"torchvision:{root}")


def load_cifar10(data_path: Path | None, root: Path, download: bool, **folder_kw) -> ImageSet:
    """CIFAR-10, train and test joined (60,000): an image folder/zip, or torchvision's python batches."""
    import torchvision

    return _colour_set(
        "cifar10", data_path, root, "cifar-10-batches-py",
        lambda r, split: torchvision.datasets.CIFAR10(r, train=split == "train", download=download),
        lambda parts: (np.concatenate([p.data for p in parts]).transpose(0, 3, 1, 2).copy(),
                       np.concatenate([np.asarray(p.targets) for p in parts])), CIFAR10_CLASSES, folder_kw)


def load_stl10(data_path: Path | None, root: Path, download: bool, **folder_kw) -> ImageSet:
    """STL-10 train and test joined (13,000 images, the unlabelled split left out, as in the papers)."""
    import torchvision

    return _colour_set(
        "stl10", data_path, root, "stl10_binary",
        lambda r, split: torchvision.datasets.STL10(r, split=split, download=download),
        lambda parts: (np.concatenate([p.data for p in parts]), np.concatenate([p.labels for p in parts])),
        STL10_CLASSES, folder_kw)
