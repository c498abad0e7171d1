"""Metrics on cases whose answers are known."""

import numpy as np
import pytest

from core.metrics import (aligned_confusion, cluster_accuracy, cluster_statistics, evaluate, hungarian_match)


def test_permuted_perfect_clustering_scores_one():
    labels = np.repeat(np.arange(5), 20)
    perm = np.array([3, 0, 4, 1, 2])
    pred = perm[labels]
    m = evaluate(labels, pred)
    assert m["acc"] == 1.0
    assert m["nmi"] == pytest.approx(1.0)
    assert m["ari"] == pytest.approx(1.0)
    assert hungarian_match(labels, pred) == {3: 0, 0: 1, 4: 2, 1: 3, 2: 4}


def test_accuracy_of_a_known_case():
    # classes 0,0,0,1,1,1 ; clusters 1,1,0,0,0,2  -> best map: 1->0 (2 right), 0->1 (2 right), 2->unused -> 4/6
    labels = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([1, 1, 0, 0, 0, 2])
    assert cluster_accuracy(labels, pred) == pytest.approx(4 / 6)
    # everything in one cluster: ACC is the largest class share
    assert cluster_accuracy(np.array([0, 0, 1, 2]), np.zeros(4, int)) == pytest.approx(0.5)


def test_random_clustering_scores_near_chance():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 20000)
    pred = rng.integers(0, 10, 20000)
    m = evaluate(labels, pred)
    assert m["acc"] < 0.12
    assert abs(m["ari"]) < 0.01 and m["nmi"] < 0.01


def test_aligned_confusion_is_diagonal_for_a_permuted_clustering():
    labels = np.repeat(np.arange(4), [5, 6, 7, 8])
    pred = np.array([2, 3, 0, 1])[labels]
    matrix, order = aligned_confusion(labels, pred)
    assert order == [2, 3, 0, 1]
    assert np.array_equal(matrix, np.diag([5, 6, 7, 8]))


def test_aligned_confusion_with_more_clusters_than_classes():
    labels = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([2, 2, 1, 0, 0, 0])
    matrix, order = aligned_confusion(labels, pred, n_classes=2, n_clusters=4)
    assert order[:2] == [2, 0]  # clusters matched to classes 0 and 1
    assert sorted(order) == [0, 1, 2, 3]  # the unmatched ones follow
    assert matrix.shape == (2, 4)
    assert matrix[0, 0] == 2 and matrix[1, 1] == 3 and matrix.sum() == 6


def test_label_free_statistics():
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0]])
    s = cluster_statistics(probs)
    assert s["sizes"] == [3, 1, 0]
    assert s["empty"] == 1
    assert s["mean_max_prob"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4)
    share = np.array([0.75, 0.25])
    assert s["size_entropy"] == pytest.approx(-(share * np.log(share)).sum() / np.log(3))
    balanced = cluster_statistics(np.eye(4))
    assert balanced["size_entropy"] == pytest.approx(1.0) and balanced["empty"] == 0
