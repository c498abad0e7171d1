"""One entry point from a data-set name or path to an `ImageSet` (uint8 images, optional labels and class names).

Names: `digits` (scikit-learn, embedded), `mnist`, `fashion-mnist`, `cifar10`, `stl10`. Anything else is a path:
an `.npz` with `images`/`labels`, a folder of MNIST IDX files, or an image folder / `.zip` of one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError
from .cache import default_cache_dir
from .folder import load_image_folder
from .idx import find_idx_files, load_idx_folder
from .imageset import ImageSet
from .named import load_cifar10, load_digits_set, load_mnist_like, load_npz, load_stl10

NAMED_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "stl10")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
            "cifar-10": "cifar10", "stl-10": "stl10"}

__all__ = ["ImageSet", "load_dataset", "NAMED_DATASETS", "resize_images", "default_data_root"]


def default_data_root() -> Path:
    """Where torchvision copies live: `$DCX_DATA`, else `<cache>/datasets`."""
    return Path(os.environ["DCX_DATA"]) if os.environ.get("DCX_DATA") else default_cache_dir() / "datasets"


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 (N, C, H, W) tensor to size×size (antialiased when shrinking), in chunks to bound memory."""
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for chunk in images.split(4096):
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < max(chunk.shape[-2:]))
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def load_dataset(
    dataset: str,
    data_path: str | Path | None = None,
    *,
    download: bool = False,
    image_size: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> ImageSet:
    """Turn a data-set name or path into an ImageSet.

    `image_size` resizes every image to a square of that side (needed for folders of mixed sizes, and to fit an
    encoder); without it, mixed sizes are refused with a message naming them.
    """
    if not isinstance(dataset, str) or not dataset.strip():
        raise DataError("no data set given: pass a name (" + ", ".join(NAMED_DATASETS) + ") or a path")
    if image_size is not None and (int(image_size) != image_size or image_size < 8):
        raise DataError(f"image size must be a whole number of pixels of at least 8, got {image_size}")
    key = _ALIASES.get(dataset.lower(), dataset.lower())
    folder_kw = dict(image_size=image_size, cache_dir=default_cache_dir() / "decoded" if cache else None,
                     progress=progress)
    root = default_data_root()
    if key == "digits":
        if data_path is not None:
            raise DataError("digits ships inside scikit-learn: it takes no data path")
        data = load_digits_set()
    elif key in ("mnist", "fashion-mnist"):
        data = load_mnist_like(key, _path(data_path), root, download)
    elif key == "cifar10":
        data = load_cifar10(_path(data_path), root, download, **folder_kw)
    elif key == "stl10":
        data = load_stl10(_path(data_path), root, download, **folder_kw)
    else:
        if data_path is not None:
            raise DataError(f"unknown data set '{dataset}'. Known names: {', '.join(NAMED_DATASETS)}; "
                            "or pass the path itself as the data set")
        path = Path(dataset).expanduser()
        if not path.exists():
            raise DataError(
                f"unknown data set '{dataset}': it is not one of {', '.join(NAMED_DATASETS)} and no file or "
                "folder of that name exists"
            )
        if path.suffix == ".npz":
            data = load_npz(path, path.stem)
        elif path.is_dir() and find_idx_files(path) is not None:
            images, labels = load_idx_folder(path)
            data = ImageSet(torch.from_numpy(images[:, None].copy()), labels, None, name=path.name, source=str(path))
        else:
            data = load_image_folder(path, **folder_kw)
    if image_size is not None and data.size != (image_size, image_size):
        data.images = resize_images(data.images, int(image_size))
        data.info["resized_to"] = [int(image_size), int(image_size)]
    return data


def _path(p):
    return None if p is None else Path(p).expanduser()
