"""The map numerics: exact neighbours, landmark placement and the t-SNE of many points (explorer/projection.py)."""

import math

import numpy as np
import pytest
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors

from explorer.projection import landmark_indices, nearest, neighbours, place, tsne_update


def test_nearest_matches_scikit_learn_and_leaves_the_point_itself_out():
    x = np.random.default_rng(0).normal(size=(700, 12)).astype(np.float32)
    q = np.random.default_rng(1).normal(size=(90, 12)).astype(np.float32)
    idx, dist = nearest(q, x, 7, chunk=32)  # several chunks
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=7, algorithm="brute").fit(x).kneighbors(q)
    assert (idx == ref_idx).all()
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-4)

    own, _ = nearest(x, x, 5, skip_self=True, chunk=100)
    assert not (own == np.arange(700)[:, None]).any()
    ref = NearestNeighbors(n_neighbors=6, algorithm="brute").fit(x).kneighbors(x, return_distance=False)[:, 1:]
    assert (own == ref).all()
    assert (neighbours(x, 5) == np.sort(ref, 1)).all()


def test_a_placed_point_goes_to_the_gaussian_weighted_mean_of_its_nearest_landmarks():
    # codes on a line: landmarks at 0 and 2 (map positions (0, 0) and (10, 0)), a point at 0.5.
    x = np.array([[0.0], [2.0], [0.5]], np.float32)
    y = place(x, np.array([0, 1]), np.array([[0.0, 0.0], [10.0, 0.0]]), k=2)
    # squared distances 0.25 and 2.25; weights exp(-(d² - d²_min) / (2 d²_min)) = 1 and exp(-4)
    w = math.exp(-4.0)
    np.testing.assert_allclose(y, [[0, 0], [10, 0], [10 * w / (1 + w), 0]], atol=1e-9)


def test_landmarks_are_the_same_for_every_snapshot_and_only_when_there_are_more_points():
    a, b = landmark_indices(5000, 300, seed=0), landmark_indices(5000, 300, seed=0)
    assert (a == b).all() and len(np.unique(a)) == 300 and (np.diff(a) > 0).all()
    assert landmark_indices(300, 300) is None and landmark_indices(5000, 0) is None


def test_a_map_of_many_points_through_landmarks_keeps_the_groups_apart_and_warm_starts():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 3000)
    centres = rng.normal(0, 6, (4, 20))
    x = (centres[labels] + rng.normal(0, 1, (3000, 20))).astype(np.float32)
    y, check = tsne_update(x, None, None, landmarks=600)
    assert y.shape == (3000, 2) and check.shape == (600, 15)
    assert silhouette_score(y, labels) > 0.6  # every point, the 2,400 placed ones included
    # the next snapshot (slightly moved codes) starts from this map: its points stay where they were
    x2 = x + rng.normal(0, 0.05, x.shape).astype(np.float32)
    y2, check2 = tsne_update(x2, y, check, landmarks=600)
    assert silhouette_score(y2, labels) > 0.6
    spread = np.linalg.norm(y - y.mean(0), axis=1).mean()
    assert np.median(np.linalg.norm(y2 - y, axis=1)) < 0.2 * spread


@pytest.mark.parametrize("n", [3, 8, 9])
def test_tiny_maps_do_not_fail(n):
    x = np.random.default_rng(0).normal(size=(n, 5)).astype(np.float32)
    y, _ = tsne_update(x, None, None)
    assert y.shape == (n, 2) and np.isfinite(y).all()
