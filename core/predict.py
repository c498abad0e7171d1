"""Getting the clusters out: the cluster of every image of a run's data set, or of any other images of the same
size, from one of the run's checkpoints (`python -m core predict`, `Run(path).predict(...)`).

The result is a mapping of equal-length numpy arrays — `name` (the file name inside the folder or zip, or the
image's index), `cluster`, `confidence` (the largest entry of z_c), `label` (when the data has labels; evaluation
only), and with `with_z` the columns of z_c and z_s — which `pandas.DataFrame(result)` takes as it is.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from .data import ImageSet, load_dataset
from .errors import DataError, UserError
from .io import unwritable
from .rundir import Run


def _as_imageset(data, image_size: int | None) -> ImageSet:
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, (str, Path)):
        from .data import NAMED_DATASETS

        if str(data) not in NAMED_DATASETS and not Path(data).expanduser().exists():
            raise DataError(f"no such file or folder: {data}")
        return load_dataset(str(data), image_size=image_size, progress=True)
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if array.dtype != np.uint8:
        raise DataError(f"images must be uint8 (0–255), got {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]
    return ImageSet(torch.from_numpy(np.ascontiguousarray(array)), name="images")


def predict(run: str | Path | Run, data=None, *, checkpoint: str | int = "latest", image_size: int | None = None,
            with_z: bool = False, batch_size: int = 1024, device: str = "auto",
            progress: bool = False) -> dict[str, np.ndarray]:
    """Cluster every image of `data` (default: the run's own data set; else a path to an image folder, .zip or
    .npz, an ImageSet, or a uint8 array N×C×H×W or N×H×W) with the run's checkpoint."""
    from tqdm.auto import tqdm

    from .evaluate import load_trained

    run = run if isinstance(run, Run) else Run(run)
    if data is None:
        method, cfg, images, _ = load_trained(run, checkpoint, device=device)
    else:
        method, cfg, _, _ = load_trained(run, checkpoint, device=device, data=False)
        images = _as_imageset(data, image_size if image_size is not None else cfg.image_size)
    want = run.config.get("dataset", {})
    shape = (want.get("channels"), want.get("height"), want.get("width"))
    got = (images.channels, *images.size)
    if None not in shape and got != shape:
        raise DataError(f"the run was trained on {shape[0]}-channel {shape[1]}×{shape[2]} images, these are "
                        f"{got[0]}-channel {got[1]}×{got[2]}" + ("; resize them with --image-size "
                                                                 f"{shape[1]}" if got[0] == shape[0] else ""))
    dev = next(method.parameters()).device
    z_c, z_s = [], []
    chunks = list(images.images.split(batch_size))
    for chunk in tqdm(chunks, desc=f"clustering {images.name}", unit="batch", disable=not progress or len(chunks) < 4):
        a, b = method.embed(chunk.to(dev), batch_size=batch_size)
        z_c.append(a.float().cpu().numpy())
        z_s.append(b.float().cpu().numpy())
    z_c, z_s = np.concatenate(z_c), np.concatenate(z_s)
    out = {"name": np.array(images.names if images.names is not None else [str(i) for i in range(len(images))]),
           "cluster": z_c.argmax(1).astype(np.int64), "confidence": z_c.max(1)}
    if images.labels is not None:
        names = images.class_names
        out["label"] = np.array([names[i] if names and i < len(names) else str(i) for i in images.labels])
    if with_z:
        out.update({f"z_c_{k}": z_c[:, k] for k in range(z_c.shape[1])})
        out.update({f"z_s_{k}": z_s[:, k] for k in range(z_s.shape[1])})
    return out


def check_output(path: str | Path) -> Path:
    """The file to write, checked before any work: a .csv or .npz in a folder that exists."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise UserError(f"{path} is a folder: give a file name ending in .csv or .npz")
    if path.suffix not in (".csv", ".npz"):
        raise UserError(f"the output must be a .csv or .npz file, got {path.name or path}")
    if not path.parent.is_dir():
        raise UserError(f"the folder {path.parent} does not exist")
    why = unwritable(path.parent)
    if why:
        raise UserError(f"cannot write {path}: the folder {path.parent} {why}")
    return path


def write(result: dict[str, np.ndarray], path: str | Path) -> Path:
    """A .csv (one row per image) or, for a path ending in .npz, the arrays (written atomically)."""
    from .io import atomic_savez, atomic_write_bytes

    path = check_output(path)
    try:
        if path.suffix == ".npz":
            atomic_savez(path, **result)
            return path
        columns = list(result)
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(columns)
        for row in zip(*(result[c] for c in columns)):
            w.writerow([f"{v:.6g}" if isinstance(v, (float, np.floating)) else v for v in row])
        atomic_write_bytes(path, buf.getvalue().encode())
    except OSError as e:  # a full disk (nothing is left behind: the write is atomic)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path
