"""What each view is given, computed from a run directory without any UI library: curves, embeddings, confusion
matrix, cluster sizes, galleries, selections. The views (`explorer.views`) only draw these."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.metrics import aligned_confusion, hungarian_match
from core.rundir import Probe, Snapshot

# The engine's own curve panels; a method adds its panels before them (config.json's "method" description), and a
# method panel with one of these titles adds its curves to it.
ENGINE_PANELS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Accuracy (labels used for evaluation only)", [("acc", "ACC"), ("nmi", "NMI"), ("ari", "ARI")]),
    ("Cluster health", [("mean_max_prob", "mean max probability"), ("size_entropy", "cluster-size entropy")]),
]
SPACES = ("Z", "Z_c", "Z_s")
COLOUR_BY = ("cluster", "label", "confidence")


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing); NaNs are carried through."""
    values = np.asarray(values, dtype=float)
    if weight <= 0 or len(values) == 0:
        return values
    out = np.empty_like(values)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(values):
        if np.isnan(v):
            out[i] = np.nan
            continue
        acc = weight * acc + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out[i] = acc / norm
    return out


def panels(method: dict | None) -> list[tuple[str, list[tuple[str, str]]]]:
    """The curve panels of a run, as (title, [(record key, label), ...]): its method's, then the engine's."""
    groups = [(str(title), [(str(k), str(label)) for k, label in keys])
              for title, keys in (method or {}).get("curve_groups", [])]
    engine = {title for title, _ in ENGINE_PANELS}
    out = [g for g in groups if g[0] not in engine]
    for title, keys in ENGINE_PANELS:
        out.append((title, keys + [k for t, ks in groups if t == title for k in ks]))
    return out


def curve_labels(panel_list) -> dict[str, str]:
    return {key: label for _, keys in panel_list for key, label in keys}


def curve_frame(records: list[dict], metrics: list[str], x: str = "step", smoothing: float = 0.0,
                labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Long table (x, value, metric label) of the given metrics over the training records, smoothed."""
    rows = []
    for m in metrics:
        pts = [(r[x], r[m]) for r in records if r.get(m) is not None and r.get(x) is not None]
        if not pts:
            continue
        xs, vs = np.array(pts, dtype=float).T
        rows.append(pd.DataFrame({"x": xs, "value": smooth(vs, smoothing), "metric": (labels or {}).get(m, m)}))
    if not rows:
        return pd.DataFrame({"x": pd.Series(dtype=float), "value": pd.Series(dtype=float),
                             "metric": pd.Series(dtype=str)})
    return pd.concat(rows, ignore_index=True)


def curve_groups(records: list[dict], panel_list) -> list[tuple[str, list[str]]]:
    """The panels that have data in this run, with the keys that have data."""
    present = {k for r in records for k, v in r.items() if v is not None}
    return [(title, [k for k, _ in keys if k in present]) for title, keys in panel_list
            if any(k in present for k, _ in keys)]


def setting_changes(set_records: list[dict], x: str = "step") -> pd.DataFrame:
    """Where β_Aug (or another live setting) was changed: the vertical rules on the curves."""
    rows = [{"x": r.get(x, r.get("step")), "setting": r.get("setting"), "value": r.get("value")}
            for r in set_records if r.get(x, r.get("step")) is not None]
    return pd.DataFrame(rows, columns=["x", "setting", "value"])


def eta_text(step: int, total: int | None, seconds: float | None) -> str:
    """"about 4 min left" for a run at `step` of `total` that has trained `seconds` so far ("" when unknown)."""
    if not total or not seconds or not step or step >= total or seconds <= 0:
        return ""
    left = (total - step) * seconds / step
    if left < 60:
        return f"about {max(1, round(left))} s left"
    if left < 3600:
        return f"about {round(left / 60)} min left"
    return f"about {left / 3600:.1f} h left"


def cluster_label(cluster: int, names: dict[int, str] | None = None) -> str:
    """How a cluster is shown everywhere (legend, confusion axis, gallery, selection, exports): "c3", or "c3 · name"
    once a person has named it."""
    name = (names or {}).get(int(cluster))
    return f"c{cluster} · {name}" if name else f"c{cluster}"


def cluster_labels(k: int, names: dict[int, str] | None = None) -> list[str]:
    return [cluster_label(c, names) for c in range(k)]


def space(snapshot: Snapshot, name: str) -> np.ndarray:
    """The latent space a projection is computed from: Z = (z_c, z_s), Z_c or Z_s."""
    if name == "Z":
        return snapshot.z
    if name == "Z_c":
        return snapshot.z_c
    if name == "Z_s":
        return snapshot.z_s
    raise ValueError(f"unknown space {name!r}; choose one of {', '.join(SPACES)}")


def class_names_of(probe: Probe | None) -> list[str] | None:
    if probe is None or probe.labels is None:
        return None
    names = probe.class_names or [str(i) for i in range(int(probe.labels.max()) + 1)]
    return names


def embedding_frame(xy: np.ndarray, snapshot: Snapshot, probe: Probe | None = None,
                    thumbs: list[str] | None = None, names: dict[int, str] | None = None) -> pd.DataFrame:
    """One row per probe image: map position, cluster, confidence, true label name (when known), thumbnail."""
    n = len(snapshot.pred)
    shown = np.array(cluster_labels(snapshot.z_c.shape[1], names), dtype=object)
    frame = pd.DataFrame({
        "x": xy[:, 0].astype(float), "y": xy[:, 1].astype(float), "row": np.arange(n),
        "cluster": shown[snapshot.pred.astype(np.int64)], "confidence": snapshot.confidence.astype(float),
    })
    names = class_names_of(probe)
    labels = snapshot.labels if snapshot.labels is not None else (probe.labels if probe is not None else None)
    frame["label"] = [names[c] if names and c < len(names) else str(c) for c in labels] if labels is not None \
        else "unknown"
    if probe is not None:
        frame["index"] = probe.indices[:n]
    if thumbs is not None:
        frame["thumb"] = thumbs[:n]
    return frame


@dataclass
class ConfusionView:
    matrix: np.ndarray  # rows: classes; columns: clusters in matched order
    class_names: list[str]
    cluster_names: list[str]  # "c3" (or "c3 · name") etc., in column order
    clusters: list[int] | None = None  # the cluster ids in column order

    def frame(self) -> pd.DataFrame:
        rows = [{"cluster": c, "class": r, "count": int(self.matrix[i, j])}
                for i, r in enumerate(self.class_names) for j, c in enumerate(self.cluster_names)]
        return pd.DataFrame(rows)


def confusion_view(snapshot: Snapshot, probe: Probe | None = None,
                   names: dict[int, str] | None = None) -> ConfusionView | None:
    """Confusion matrix aligned by Hungarian matching, or None when the run has no labels."""
    if snapshot.labels is None or len(snapshot.labels) == 0:
        return None
    classes = class_names_of(probe) or [str(i) for i in range(int(snapshot.labels.max()) + 1)]
    k = snapshot.z_c.shape[1]
    matrix, order = aligned_confusion(snapshot.labels, snapshot.pred, len(classes), k)
    return ConfusionView(matrix, list(classes), [cluster_label(c, names) for c in order], [int(c) for c in order])


def selection_counts(snapshot: Snapshot, rows, probe: Probe | None = None,
                     cluster_names: dict[int, str] | None = None) -> str:
    """How a selection splits: "by cluster: c3 12 · c0 5 · by label: 7 10 · 1 7", largest first."""
    rows = np.asarray(list(rows), dtype=np.int64)
    rows = rows[(rows >= 0) & (rows < len(snapshot.pred))]
    if not len(rows):
        return ""

    def split(values, name_of):
        ids, n = np.unique(values, return_counts=True)
        order = np.argsort(-n, kind="stable")
        return " · ".join(f"{name_of(int(ids[i]))} {int(n[i])}" for i in order)

    text = "by cluster: " + split(snapshot.pred[rows], lambda c: cluster_label(c, cluster_names))
    classes = class_names_of(probe)
    if snapshot.labels is not None and len(snapshot.labels) and classes:
        text += " — by label: " + split(snapshot.labels[rows], lambda k: classes[k] if k < len(classes) else str(k))
    return text


def nearest(snapshot: Snapshot, space_name: str, row: int, k: int = 16) -> np.ndarray:
    """The `k` probe rows nearest to `row` in a latent space (Euclidean), nearest first, `row` itself left out."""
    x = space(snapshot, space_name).astype(np.float32)
    if not 0 <= row < len(x):
        return np.zeros(0, np.int64)
    d = ((x - x[row]) ** 2).sum(1)
    d[row] = np.inf
    k = min(k, len(x) - 1)
    part = np.argpartition(d, k - 1)[:k] if k > 0 else np.zeros(0, np.int64)
    return part[np.argsort(d[part], kind="stable")].astype(np.int64)


def cell_rows(snapshot: Snapshot, view: ConfusionView, cluster: str, class_name: str) -> np.ndarray:
    """The probe rows counted in one cell of the confusion matrix (by the names on its axes)."""
    try:
        c = view.clusters[view.cluster_names.index(cluster)]
        k = view.class_names.index(class_name)
    except (ValueError, TypeError, IndexError):
        return np.zeros(0, np.int64)
    return np.flatnonzero((snapshot.pred == c) & (snapshot.labels == k))


def cluster_sizes(snapshot: Snapshot, names: dict[int, str] | None = None) -> pd.DataFrame:
    k = snapshot.z_c.shape[1]
    sizes = np.bincount(snapshot.pred.astype(np.int64), minlength=k)
    return pd.DataFrame({"cluster": cluster_labels(k, names), "size": sizes})


def cluster_order(snapshot: Snapshot) -> list[int]:
    """Clusters in the order of the classes they match (when labels exist), else by id: rows of the gallery."""
    k = snapshot.z_c.shape[1]
    if snapshot.labels is None:
        return list(range(k))
    match = hungarian_match(snapshot.labels, snapshot.pred, int(snapshot.labels.max()) + 1, k)
    by_class = sorted(match, key=lambda c: match[c])
    return by_class + [c for c in range(k) if c not in match]


def gallery(snapshot: Snapshot, per_cluster: int = 10) -> list[tuple[int, np.ndarray, int]]:
    """For each cluster, (cluster, its members' probe rows with the highest probability of that cluster best
    first (paper's Fig. 4), its size in the probe). An empty cluster has no rows: it shows no other cluster's
    images."""
    out = []
    z = snapshot.z_c.astype(np.float32)
    for c in cluster_order(snapshot):
        members = np.flatnonzero(snapshot.pred == c)
        rows = members[np.argsort(-z[members, c], kind="stable")][:per_cluster]
        out.append((c, rows, len(members)))
    return out


def selection(snapshot: Snapshot, rows, probe: Probe | None = None, limit: int | None = 100,
              cluster_names: dict[int, str] | None = None, offset: int = 0) -> pd.DataFrame:
    """The selected probe rows, most confident first, from place `offset` on (up to `limit` of them), with
    cluster, confidence and label."""
    rows = np.asarray(list(rows), dtype=np.int64)
    rows = rows[(rows >= 0) & (rows < len(snapshot.pred))]
    rows = rows[np.argsort(-snapshot.confidence[rows], kind="stable")]
    rows = rows[offset:offset + limit] if limit is not None else rows[offset:]
    names = class_names_of(probe)
    labels = snapshot.labels
    return pd.DataFrame({
        "row": rows, "cluster": [cluster_label(c, cluster_names) for c in snapshot.pred[rows]],
        "confidence": snapshot.confidence[rows].astype(float),
        "label": [names[labels[r]] if names and labels is not None else "" for r in rows],
    })
