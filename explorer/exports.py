"""Getting the clusters out of the page: tables and image archives of a selection or a cluster of the probe, and
the cluster of every image of the run's data set (through `core.predict`). No UI library here: the export panel
(`explorer.export_panel`) only offers these as downloads.

Columns of every table: `index` (the image's index in the data set), `name` (its file name inside the folder or
zip, or its index when the data set has none), `cluster` (its number), `cluster_name` (the name a person gave it,
or empty), `confidence` (the largest entry of z_c) and `label` (the true class, when the data set has labels; used
for evaluation only).
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pandas as pd

from core.rundir import Probe, Run, Snapshot

from . import images, viewdata

MAX_ZIP_IMAGES = 2_000  # a zip of a selection holds at most this many images (a larger one is a data set: predict)
COLUMNS = ["index", "name", "cluster", "cluster_name", "confidence", "label"]


def probe_table(snapshot: Snapshot, probe: Probe, rows, cluster_names: dict[int, str] | None = None) -> pd.DataFrame:
    """The given probe rows, in the order given, as a table of the columns above."""
    rows = np.asarray(list(rows), dtype=np.int64)
    rows = rows[(rows >= 0) & (rows < min(len(snapshot.pred), len(probe.indices)))]
    names = cluster_names or {}
    clusters = snapshot.pred[rows].astype(np.int64)
    frame = pd.DataFrame({
        "index": probe.indices[rows].astype(np.int64),
        "name": [probe.name_of(r) for r in rows],
        "cluster": clusters,
        "cluster_name": [names.get(int(c), "") for c in clusters],
        "confidence": snapshot.confidence[rows].astype(float).round(6),
    })
    classes = viewdata.class_names_of(probe)
    labels = snapshot.labels if snapshot.labels is not None and len(snapshot.labels) else probe.labels
    if classes and labels is not None:
        frame["label"] = [classes[labels[r]] if labels[r] < len(classes) else str(labels[r]) for r in rows]
    frame.attrs["rows"] = rows
    return frame


def selection_table(snapshot: Snapshot, probe: Probe, selected, cluster_names=None) -> pd.DataFrame:
    """The selected images, most confident first (the order of the selection grid)."""
    rows = np.asarray(list(selected), dtype=np.int64)
    rows = rows[(rows >= 0) & (rows < len(snapshot.pred))]
    rows = rows[np.argsort(-snapshot.confidence[rows].astype(np.float32), kind="stable")]
    return probe_table(snapshot, probe, rows, cluster_names)


def cluster_table(snapshot: Snapshot, probe: Probe, cluster: int, cluster_names=None) -> pd.DataFrame:
    """The probe images in one cluster, most confident first."""
    return selection_table(snapshot, probe, np.flatnonzero(snapshot.pred == int(cluster)), cluster_names)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


def images_zip(frame: pd.DataFrame, probe: Probe, limit: int = MAX_ZIP_IMAGES) -> bytes:
    """A zip of the table's images as PNG files, one folder per cluster (`c3/000123_name.png`), with the table
    itself as `images.csv`; at most `limit` images (ValueError beyond: export the table or predict instead)."""
    if len(frame) > limit:
        raise ValueError(f"{len(frame):,} images are selected; a zip holds at most {limit:,}: select fewer, or "
                         "download the table")
    rows = frame.attrs.get("rows")
    if rows is None:
        raise ValueError("the table does not come from probe_table")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # PNGs are compressed already
        files = []
        for r, index, name, cluster in zip(rows, frame["index"], frame["name"], frame["cluster"]):
            stem = _safe(str(name).rsplit(".", 1)[0]) if str(name) != str(index) else ""
            path = f"c{cluster}/{int(index):06d}{'_' + stem if stem else ''}.png"
            z.writestr(path, images.png_bytes(probe.images[r]))
            files.append(path)
        z.writestr("images.csv", csv_bytes(frame.assign(file=files)))
    return buf.getvalue()


def every_image_table(run: Run, checkpoint: str | int = "latest", progress: bool = False) -> pd.DataFrame:
    """The cluster of every image of the run's data set, from a checkpoint (`Run.predict`), with the columns above
    (`index` is the row number)."""
    result = run.predict(checkpoint=checkpoint, progress=progress)
    names = run.cluster_names()
    clusters = result["cluster"].astype(np.int64)
    frame = pd.DataFrame({
        "index": np.arange(len(clusters)), "name": result["name"], "cluster": clusters,
        "cluster_name": [names.get(int(c), "") for c in clusters],
        "confidence": result["confidence"].astype(float).round(6),
    })
    if "label" in result:
        frame["label"] = result["label"]
    return frame
