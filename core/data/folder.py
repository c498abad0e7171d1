"""Image folders and .zip files of them: `root/<class>/*.png|jpg` (labels from folder names) or a flat folder.

Decoding uses PIL once, at load time, in a thread pool; the result is cached as uint8 so that the next run of the
same files starts in a second. Nothing here is on the training hot path.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..cpu_budget import cores
from ..errors import DataError
from .cache import load_cached, save_cached
from .imageset import ImageSet

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _list_folder(root: Path) -> list[tuple[str, callable]]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                entries.append((rel, full.read_bytes))
    return entries


def _list_zip(path: Path) -> tuple[list[tuple[str, callable]], zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a readable .zip file: {e}") from None
    names = sorted(
        n
        for n in archive.namelist()
        if not n.endswith("/")
        and PurePosixPath(n).suffix.lower() in IMAGE_EXTENSIONS
        and not PurePosixPath(n).name.startswith(".")
        and "__MACOSX" not in n
    )
    return [(n, (lambda n=n: archive.read(n))) for n in names], archive


def _strip_common_root(relpaths: list[str]) -> list[PurePosixPath]:
    """Drop a single top-level folder shared by every file (`cifar10/...` inside the zip)."""
    paths = [PurePosixPath(p) for p in relpaths]
    while paths and all(len(p.parts) > 1 for p in paths) and len({p.parts[0] for p in paths}) == 1:
        paths = [PurePosixPath(*p.parts[1:]) for p in paths]
    return paths


def labels_from_paths(relpaths: list[str], source: str) -> tuple[np.ndarray | None, list[str] | None]:
    """Class = the folder an image sits in; a flat folder has no labels. Mixed layouts are refused."""
    paths = _strip_common_root(relpaths)
    depth_one = [len(p.parts) == 1 for p in paths]
    if all(depth_one):
        return None, None
    if any(depth_one):
        flat = next(p for p, d in zip(relpaths, depth_one) if d)
        raise DataError(
            f"{source}: some images sit in class folders and some at the top level (e.g. {flat}); "
            "put every image in a class folder, or none of them"
        )
    class_of = [p.parent.name for p in paths]
    class_names = sorted(set(class_of))
    index = {c: i for i, c in enumerate(class_names)}
    return np.array([index[c] for c in class_of], dtype=np.int64), class_names


def _decode(name: str, data: bytes, image_size: int | None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            grey = img.mode in ("L", "1", "I", "I;16", "F", "LA")
            img = img.convert("L" if grey else "RGB")
            if image_size is not None and img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR, reducing_gap=None)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot decode image {name}: {e}") from None
    return arr


def _stack(arrays: list[np.ndarray], names: list[str], source: str) -> np.ndarray:
    sizes = {}
    for a, n in zip(arrays, names):
        sizes.setdefault(a.shape[:2], n)
    if len(sizes) > 1:
        examples = "; ".join(f"{h}x{w} (e.g. {n})" for (h, w), n in list(sizes.items())[:3])
        raise DataError(
            f"{source}: images have different sizes: {examples}. Pass an image size (--image-size 32) "
            "to resize them all, or use images of one size"
        )
    channels = {1 if a.ndim == 2 else 3 for a in arrays}
    if len(channels) > 1:  # a few grey images among colour ones: promote them to RGB
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    batch = np.stack(arrays)
    if batch.ndim == 3:
        batch = batch[:, None]
    else:
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch)


def _cache_key(path: Path, image_size: int | None) -> str:
    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{image_size}|v1"
    if path.is_dir():  # a folder's mtime misses edits inside class folders: fold in every file's stamp
        for dirpath, _, files in os.walk(path):
            for name in sorted(files):
                s = (Path(dirpath) / name).stat()
                text += f"|{name}:{s.st_size}:{s.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load_image_folder(
    path: Path,
    *,
    image_size: int | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    workers: int | None = None,
    name: str | None = None,
) -> ImageSet:
    """Load a folder or .zip of images into an ImageSet (see the module docstring for the layout)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    source = str(path)
    key = _cache_key(path, image_size) if cache_dir else None
    if key:
        cached = load_cached(cache_dir, key)
        if cached is not None:
            images, labels, class_names, names = cached
            return ImageSet(images, labels, class_names, name=name or path.stem, source=source, names=names)

    archive = None
    if path.is_dir():
        entries = _list_folder(path)
    elif path.suffix.lower() == ".zip":
        entries, archive = _list_zip(path)
    else:
        raise DataError(f"{path} is neither a folder nor a .zip of images")
    if not entries:
        raise DataError(
            f"{path} holds no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} files)"
        )
    relpaths = [rel for rel, _ in entries]
    labels, class_names = labels_from_paths(relpaths, source)

    from tqdm.auto import tqdm

    def work(entry):
        rel, read = entry
        try:
            data = read()
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:  # a damaged member
            raise DataError(f"cannot read {rel} in {path}: {e}") from None
        return _decode(f"{rel} (in {path})", data, image_size)

    workers = workers or min(8, max(2, cores()))
    try:
        with ThreadPoolExecutor(workers) as pool:
            arrays = list(
                tqdm(
                    pool.map(work, entries, chunksize=256),
                    total=len(entries),
                    desc=f"decoding {path.name}",
                    unit="img",
                    disable=not progress or len(entries) < 2000,
                )
            )
    finally:
        if archive is not None:
            archive.close()
    images = _stack(arrays, [f"{rel}" for rel in relpaths], source)
    if key:
        save_cached(cache_dir, key, images, labels, class_names, relpaths)
    return ImageSet(torch.from_numpy(images), labels, class_names, name=name or path.stem, source=source,
                    names=relpaths)
