"""Small images for the views: PNG encoding, data URIs for tooltips, tiled sprites for grids and galleries."""

from __future__ import annotations

import base64
import io

import numpy as np


def to_hwc(image: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 → (H, W) for grey or (H, W, 3) for colour."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    return np.ascontiguousarray(image, dtype=np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    arr = to_hwc(image)
    buf = io.BytesIO()
    Image.fromarray(arr, "L" if arr.ndim == 2 else "RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def data_uris(images: np.ndarray) -> list[str]:
    """One PNG data URI per image of an (N, C, H, W) uint8 array (for hover tooltips)."""
    return [data_uri(img) for img in images]


def tile(images: np.ndarray, ncols: int, pad: int = 1, fill: int = 255) -> np.ndarray:
    """Arrange (N, C, H, W) images in a grid with `ncols` columns; returns (H', W') or (H', W', 3) uint8."""
    images = np.asarray(images, dtype=np.uint8)
    n, c, h, w = images.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), fill, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y:y + h, x:x + w] = images[i].transpose(1, 2, 0)
    return grid[:, :, 0] if c == 1 else grid
