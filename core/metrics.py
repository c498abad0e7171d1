"""Clustering metrics: ACC with Hungarian matching, NMI, ARI, the aligned confusion matrix, label-free statistics.

Labels are used only here, to evaluate; never to train or to tune.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def contingency(labels: np.ndarray, pred: np.ndarray, n_classes: int | None = None,
                n_clusters: int | None = None) -> np.ndarray:
    """counts[c, k] = number of images of class c put in cluster k."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    n_classes = n_classes or int(labels.max()) + 1
    n_clusters = n_clusters or int(pred.max()) + 1
    counts = np.zeros((n_classes, n_clusters), dtype=np.int64)
    np.add.at(counts, (labels, pred), 1)
    return counts


def hungarian_match(labels: np.ndarray, pred: np.ndarray, n_classes: int | None = None,
                    n_clusters: int | None = None) -> dict[int, int]:
    """The one-to-one map cluster → class that maximises the number of matched images."""
    counts = contingency(labels, pred, n_classes, n_clusters)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(k): int(c) for c, k in zip(rows, cols)}


def cluster_accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    """ACC: the fraction of images whose cluster maps to their class under the best one-to-one matching."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    counts = contingency(labels, pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def evaluate(labels: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI and ARI of a clustering against true labels."""
    return {
        "acc": cluster_accuracy(labels, pred),
        "nmi": float(normalized_mutual_info_score(labels, pred)),
        "ari": float(adjusted_rand_score(labels, pred)),
    }


def aligned_confusion(labels: np.ndarray, pred: np.ndarray, n_classes: int | None = None,
                      n_clusters: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Confusion matrix with rows = true classes and columns = clusters ordered by the Hungarian matching.

    Column j is the cluster matched to class j, so a perfect clustering is diagonal; clusters matched to no class
    (when there are more clusters than classes) follow, by size. Returns the matrix and the cluster of each column.
    """
    counts = contingency(labels, pred, n_classes, n_clusters)
    n_classes, n_clusters = counts.shape
    rows, cols = linear_sum_assignment(counts, maximize=True)
    matched = dict(zip(rows.tolist(), cols.tolist()))
    order = [matched[c] for c in range(n_classes) if c in matched]
    rest = sorted(set(range(n_clusters)) - set(order), key=lambda k: -counts[:, k].sum())
    order += rest
    return counts[:, order], order


def cluster_statistics(probs: np.ndarray) -> dict:
    """Label-free health of a clustering from the soft assignments z_c (N, K).

    sizes: images per cluster (argmax); empty: clusters with no image; size_entropy: entropy of the size
    distribution divided by log K (1 = perfectly balanced); mean_max_prob: average confidence.
    """
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    pred = probs.argmax(1)
    sizes = np.bincount(pred, minlength=k)
    share = sizes / max(len(pred), 1)
    nz = share[share > 0]
    entropy = float(-(nz * np.log(nz)).sum() / np.log(k)) if k > 1 else 1.0
    return {
        "sizes": sizes.tolist(),
        "empty": int((sizes == 0).sum()),
        "size_entropy": entropy,
        "mean_max_prob": float(probs.max(1).mean()) if len(probs) else float("nan"),
    }


def kmeans_baseline(data, seed: int = 0) -> dict | None:
    """k-means (10 restarts) on the raw pixels of an `ImageSet`: the floor a deep clustering method has to beat
    (None without labels)."""
    if data.labels is None:
        return None
    from sklearn.cluster import KMeans

    x = data.images.reshape(len(data), -1).float().numpy() / 255.0
    pred = KMeans(data.num_classes, n_init=10, random_state=seed).fit_predict(x)
    return evaluate(data.labels, pred)
