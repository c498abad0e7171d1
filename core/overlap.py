"""A label-free overlap score for tuning β_Aug: do the predicted clusters of a snapshot start to merge?

DCCS tunes β_Aug by eye (paper, supplement C): train with increasing β_Aug and keep the largest value whose t-SNE
map of z = (z_c, z_s) still shows separated clusters. This module puts a number on "separated". The grouping is the
predicted cluster of each point (argmax z_c); labels are never used. For a pair of clusters a, b it looks at each
point's k nearest neighbours that lie in a ∪ b and asks which share of them belongs to the other cluster, after
weighting every neighbour by one over its cluster's size (so that a large cluster does not look more mixed only
because it is large). Averaged over the pair this is 0 when no neighbourhood crosses from one cluster to the other
(a gap) and 1 when a and b are one cloud split at random. The score of an embedding is its worst pair's value,
because the tuning rule stops as soon as any two clusters start to merge.

    from core.overlap import overlap_score, snapshot_overlap, recommend
    report = snapshot_overlap(run.snapshot())              # in z space
    report = overlap_score(tsne_map, snap.pred, space="map")
    print(report.summary())
    recommend([1, 2, 3, 4], [0.01, 0.02, 0.09, 0.30])      # → value 2 (first overlap at 3)

Design, default threshold and limitations: docs/overlap-score.md. numpy, scipy and scikit-learn only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

DEFAULT_K = 15  # neighbours per point, as t-SNE's perplexity-30 neighbourhoods and the explorer's kNN check
DEFAULT_THRESHOLD = 0.05  # worst-pair score from which clusters count as overlapping (docs/overlap-score.md)
DEFAULT_ZC_WEIGHT = 1.0  # z exactly as the encoder outputs it, which is what the paper's t-SNE map is made of
MIN_CLUSTER_SIZE = 10  # smaller predicted clusters are left out of the pairs (too few points to judge)
SPACES = ("z", "map")


@dataclass(frozen=True)
class PairOverlap:
    """One pair of predicted clusters. `a_to_b`: size-balanced share of b among the neighbours (in a ∪ b) of a's
    points, averaged over a; 0 when apart, 0.5 when a and b are one cloud. `value` = min(1, a_to_b + b_to_a)."""

    a: int
    b: int
    value: float
    a_to_b: float
    b_to_a: float
    crossing: int  # kNN edges from a point of a to one of b, plus those from b to a (raw count)


@dataclass(frozen=True)
class OverlapReport:
    """The overlap of the predicted clusters of one embedding.

    `score` (in [0, 1]) is the value of the worst pair; `pairs` holds every scored pair, worst first, and `matrix`
    the same values as a symmetric array over the cluster ids in `clusters` (NaN on the diagonal). `mixing` is an
    overall view: the kNN edges that cross between any two scored clusters over the number expected if all their
    labels were shuffled (not size-balanced)."""

    score: float
    pairs: list[PairOverlap]
    clusters: np.ndarray  # cluster ids that were scored (at least min_cluster_size points)
    matrix: np.ndarray  # (len(clusters), len(clusters)) pair values
    sizes: dict[int, int]  # points per predicted cluster, all clusters
    ignored: list[int]  # clusters with fewer than min_cluster_size points
    mixing: float
    n_points: int
    k: int
    space: str
    zc_weight: float | None  # None on a map
    threshold: float = DEFAULT_THRESHOLD
    notes: list[str] = field(default_factory=list)

    @property
    def worst_pair(self) -> tuple[int, int]:
        return self.pairs[0].a, self.pairs[0].b

    @property
    def overlapping(self) -> bool:
        return is_overlapping(self.score, self.threshold)

    def summary(self, top: int = 3) -> str:
        """A few lines for a person: the verdict, the pairs that drive it, what was left out."""
        verdict = "overlapping" if self.overlapping else "separated"
        lines = [f"overlap {self.score:.3f}: {verdict} at threshold {self.threshold:g} ({self.space} space, "
                 f"{self.n_points} points, k={self.k}, {len(self.clusters)} clusters, overall mixing "
                 f"{self.mixing:.3f})"]
        for p in self.pairs[:top]:
            lines.append(f"  clusters {p.a}-{p.b}: {p.value:.3f} ({p.a}->{p.b} {p.a_to_b:.3f}, {p.b}->{p.a} "
                         f"{p.b_to_a:.3f}; {p.crossing} crossing neighbour edges)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class Recommendation:
    """The β_Aug to keep: `value` is the largest tried before the first overlapping one (None if the first
    overlaps); `first_overlap` the first overlapping value (None if none overlaps); `reason` says which case."""

    value: float | None
    first_overlap: float | None
    reason: str


# ----------------------------------------------------------------------------------------------------------
# the score
# ----------------------------------------------------------------------------------------------------------
def overlap_score(z, pred=None, *, space: str = "z", n_clusters: int | None = None, k: int = DEFAULT_K,
                  zc_weight: float = DEFAULT_ZC_WEIGHT, min_cluster_size: int = MIN_CLUSTER_SIZE,
                  threshold: float = DEFAULT_THRESHOLD) -> OverlapReport:
    """How much the predicted clusters of an embedding overlap (0 = separated, 1 = indistinguishable).

    space="z": z is (n, K + dim_zs) with z_c in its first `n_clusters` columns (required); pred defaults to
    argmax z_c, and z_c is multiplied by `zc_weight` first (1 = z as it is, what t-SNE is given). space="map": z is
    any embedding without z_c columns (a t-SNE or UMAP map) and `pred` is required.
    Invariant to a global scale, rotation and shift of the embedding (the neighbours do not change)."""
    x = _as_points(z)
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, not {space!r}")
    if space == "z":
        x, pred = _weighted_z(x, pred, n_clusters, zc_weight)
    elif pred is None:
        raise ValueError("space='map' needs pred (the predicted cluster of every point, argmax z_c): "
                         "a map no longer holds z_c")
    _check_threshold(threshold)
    labels, clusters, sizes = _groups(pred, len(x))
    k = _check_k(k, len(x))
    if isinstance(min_cluster_size, bool) or not isinstance(min_cluster_size, (int, np.integer)) \
            or min_cluster_size < 2:
        raise ValueError(f"min_cluster_size must be an integer ≥ 2, got {min_cluster_size!r}")
    keep = sizes >= min_cluster_size
    if keep.sum() < 2:
        raise ValueError(f"need at least 2 predicted clusters with {min_cluster_size} points or more, got sizes "
                         f"{dict(zip(clusters.tolist(), sizes.tolist()))}")
    counts = _neighbour_counts(_neighbours(x, k), labels, sizes)
    return _report(counts, labels, clusters, sizes, keep, k=k, space=space,
                   zc_weight=zc_weight if space == "z" else None, threshold=threshold)


def snapshot_overlap(snapshot, *, space: str = "z", map=None, **kwargs) -> OverlapReport:
    """overlap_score of a core.rundir.Snapshot: in z space from its z_c and z_s, or on `map`, a map of its z."""
    if space == "map":
        if map is None:
            raise ValueError("space='map' needs map=, the 2-D map of the snapshot's z")
        return overlap_score(map, snapshot.pred, space="map", **kwargs)
    z_c = np.asarray(snapshot.z_c, np.float64)
    return overlap_score(np.concatenate([z_c, np.asarray(snapshot.z_s, np.float64)], 1), snapshot.pred,
                         space=space, n_clusters=z_c.shape[1], **kwargs)


def _as_points(z) -> np.ndarray:
    """The embedding as a finite float64 (n, d) array (float16 snapshots would make ties and overflow)."""
    x = np.asarray(z, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"the embedding must be a 2-D array (points × dimensions), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("the embedding holds NaN or infinite values")
    return x


def _weighted_z(x: np.ndarray, pred, n_clusters: int | None, zc_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Derive pred from z_c when missing and weight z_c. In DCCS z_c is near one-hot, so its weight sets how much
    the cluster code itself, rather than the style code z_s, keeps the clusters apart."""
    if n_clusters is None:
        raise ValueError("space='z' needs n_clusters, the number of z_c columns at the start of z "
                         "(snapshot.z_c.shape[1]); snapshot_overlap(snapshot) fills it in")
    if not 2 <= n_clusters <= x.shape[1]:
        raise ValueError(f"n_clusters must be between 2 and the {x.shape[1]} columns of z, got {n_clusters}")
    if not (np.isfinite(zc_weight) and zc_weight >= 0):
        raise ValueError(f"zc_weight must be a finite number ≥ 0, got {zc_weight}")
    if pred is None:
        pred = x[:, :n_clusters].argmax(1)
    if zc_weight != 1.0:
        x = x.copy()
        x[:, :n_clusters] *= zc_weight
    return x, pred


def _groups(pred, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense labels 0..G-1, the original cluster ids and their sizes (ids may have gaps: empty clusters)."""
    pred = np.asarray(pred)
    if pred.shape != (n,):
        raise ValueError(f"pred must hold one cluster per point, shape ({n},), got {pred.shape}")
    if pred.dtype.kind not in "iub":
        if pred.dtype.kind != "f" or not np.all(np.isfinite(pred)) or np.any(pred != np.round(pred)):
            raise ValueError("pred must hold integer cluster ids")
        pred = pred.astype(np.int64)
    clusters, labels, sizes = np.unique(pred, return_inverse=True, return_counts=True)
    if len(clusters) < 2:
        raise ValueError(f"need at least 2 predicted clusters, all {n} points are in cluster {clusters.tolist()}")
    return labels.reshape(-1), clusters.astype(np.int64), sizes


def _check_k(k: int, n: int) -> int:
    """k as an int; a point needs k others to have k neighbours."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if n <= k:
        raise ValueError(f"need more points than k={k} neighbours, got {n} points")
    return int(k)


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """Each point's k nearest neighbours, itself left out, nearest first (exact; a k-d tree in 2-D)."""
    return NearestNeighbors(n_neighbors=k, n_jobs=1).fit(x).kneighbors(return_distance=False)


def _neighbour_counts(neigh: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """counts[i, c]: how many of point i's neighbours are in cluster c. A point of a cluster with fewer than k + 1
    points uses only its first (size − 1) neighbours, so that a small but separate cluster is not forced to reach
    into another."""
    n, k = neigh.shape
    used = np.arange(k)[None, :] < np.minimum(k, sizes[labels] - 1)[:, None]
    counts = np.zeros((n, len(sizes)), dtype=np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(n)[:, None], neigh.shape)[used], labels[neigh][used]), 1)
    return counts


def _directed_shares(counts: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """share[a, b]: for the points of a, the share of b among their neighbours in a ∪ b with each neighbour weighted
    by 1 / (its cluster's size), averaged over a's points weighted by how many neighbours they have in a ∪ b.

    Weighting by size undoes the head start of a large cluster: a point whose surroundings hold a and b at equal
    density counts as half-way whatever n_a / n_b is, so a pair scores the same at any size ratio (in expectation)."""
    g = len(sizes)
    share = np.zeros((g, g))
    for a in range(g):
        c = counts[labels == a].astype(np.float64)  # (n_a, g)
        own = c[:, [a]]
        w_other, w_own = c / sizes[None, :], own / sizes[a]
        balanced = np.divide(w_other, w_other + w_own, out=np.zeros_like(c), where=(w_other + w_own) > 0)
        in_pair = c + own
        total = in_pair.sum(0)
        share[a] = np.divide((in_pair * balanced).sum(0), total, out=np.zeros(g), where=total > 0)
    np.fill_diagonal(share, 0.0)
    return share


def _overall_mixing(counts: np.ndarray, labels: np.ndarray, sizes: np.ndarray, idx: np.ndarray) -> float:
    """Crossing edges among the kept clusters over the number expected if all their labels were shuffled."""
    mask = np.isin(labels, idx)
    sub = counts[mask][:, idx]
    own = counts[mask, labels[mask]]
    n_kept = sizes[idx].sum()
    expected = (sub.sum(1) * (n_kept - sizes[labels[mask]]) / (n_kept - 1)).sum()
    observed = sub.sum() - own.sum()
    return float(min(1.0, observed / expected)) if expected > 0 else 0.0


def _report(counts, labels, clusters, sizes, keep, *, k, space, zc_weight, threshold) -> OverlapReport:
    """Pair values over the kept clusters, worst first, and the overall mixing."""
    share = _directed_shares(counts, labels, sizes)
    value = np.minimum(1.0, share + share.T)
    edges = np.zeros((len(sizes), len(sizes)), dtype=np.int64)
    np.add.at(edges, labels, counts)
    crossing = edges + edges.T
    idx = np.flatnonzero(keep)
    matrix = value[np.ix_(idx, idx)]
    np.fill_diagonal(matrix, np.nan)
    pairs = [PairOverlap(int(clusters[i]), int(clusters[j]), float(value[i, j]), float(share[i, j]),
                         float(share[j, i]), int(crossing[i, j])) for m, i in enumerate(idx) for j in idx[m + 1:]]
    pairs.sort(key=lambda p: (-p.value, p.a, p.b))
    ignored = [int(c) for c in clusters[~keep]]
    notes = [f"clusters {ignored} have fewer points than the minimum and are not scored"] if ignored else []
    return OverlapReport(score=pairs[0].value, pairs=pairs, clusters=clusters[idx], matrix=matrix,
                         sizes={int(c): int(s) for c, s in zip(clusters, sizes)}, ignored=ignored,
                         mixing=_overall_mixing(counts, labels, sizes, idx), n_points=len(labels), k=k,
                         space=space, zc_weight=zc_weight, threshold=threshold, notes=notes)


# ----------------------------------------------------------------------------------------------------------
# the rule
# ----------------------------------------------------------------------------------------------------------
def is_overlapping(score, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """True when a score (or an OverlapReport) reaches the threshold: the clusters have started to merge."""
    value = _score_value(score)
    _check_threshold(threshold)
    return value >= threshold


def recommend(values: Sequence[float], scores: Sequence, threshold: float = DEFAULT_THRESHOLD) -> Recommendation:
    """The paper's rule on scores: given β_Aug values in increasing order and their scores (numbers or
    OverlapReports), keep the largest value before the first overlapping one. Later values that score as separated
    again do not count: the rule stops at the first overlap, as a person raising β_Aug would."""
    values = [float(v) for v in values]
    scores = [_score_value(s) for s in scores]
    _check_threshold(threshold)
    if not values:
        raise ValueError("recommend needs at least one β value and its score")
    if len(values) != len(scores):
        raise ValueError(f"{len(values)} β values but {len(scores)} scores: give one score per value")
    if not all(np.isfinite(values)) or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"β values must be finite and strictly increasing, got {values}")
    first = next((i for i, s in enumerate(scores) if s >= threshold), None)
    if first is None:
        return Recommendation(values[-1], None, f"no overlap up to β = {values[-1]:g} (largest score "
                              f"{max(scores):.3f} < {threshold:g}); larger values may still be separated")
    if first == 0:
        return Recommendation(None, values[0], f"already overlapping at the smallest β = {values[0]:g} "
                              f"(score {scores[0]:.3f} ≥ {threshold:g}); try smaller values")
    return Recommendation(values[first - 1], values[first], f"clusters start to overlap at β = {values[first]:g} "
                          f"(score {scores[first]:.3f} ≥ {threshold:g}); keep β = {values[first - 1]:g}")


def _score_value(score) -> float:
    """A score as a float in [0, 1]; accepts an OverlapReport."""
    value = score.score if isinstance(score, OverlapReport) else score
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"a score must be a number in [0, 1] or an OverlapReport, got {score!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"a score must lie in [0, 1], got {value}")
    return value


def _check_threshold(threshold: float) -> None:
    """A threshold of 0 would call everything overlapping, one above 1 nothing."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
