"""A small on-disk cache of decoded data sets (uint8 arrays in .npz), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..io import atomic_write_bytes


def default_cache_dir() -> Path:
    """`$DCX_CACHE`, else `$XDG_CACHE_HOME/deep-cluster-explorer`, else `~/.cache/deep-cluster-explorer`."""
    if os.environ.get("DCX_CACHE"):
        return Path(os.environ["DCX_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "deep-cluster-explorer"


def load_cached(cache_dir: Path, key: str):
    path = Path(cache_dir) / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            images = f["images"]
            labels = f["labels"] if f["has_labels"] else None
            class_names = json.loads(str(f["class_names"])) if f["has_labels"] else None
            names = json.loads(str(f["names"])) if "names" in f.files else None
        if names is None:  # written before file names were kept: rebuild
            return None
        return images, labels, class_names, names
    except Exception:  # a damaged cache entry is rebuilt, never trusted
        return None


def save_cached(cache_dir: Path, key: str, images, labels, class_names, names) -> None:
    import io

    buf = io.BytesIO()
    np.savez(
        buf,
        images=images,
        labels=labels if labels is not None else np.zeros(0, np.int64),
        has_labels=np.array(labels is not None),
        class_names=np.array(json.dumps(class_names or [])),
        names=np.array(json.dumps(list(names))),
    )
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(cache_dir) / f"{key}.npz", buf.getvalue())
    except OSError:
        pass  # caching is an optimisation: a read-only home must not stop training
