"""The label-free overlap score (core/overlap.py) on synthetic embeddings, and the β_Aug recommendation rule."""

import numpy as np
import pytest

from core.overlap import (DEFAULT_THRESHOLD, OverlapReport, Recommendation, is_overlapping, overlap_score, recommend,
                          snapshot_overlap)
from core.rundir import Snapshot


def blobs(separation, sizes=(300, 300), dim=2, seed=0, spread=1.0):
    """Gaussian blobs of unit spread along a line, `separation` apart; labels are the blob of each point."""
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal((n, dim)) * spread for n in sizes]
    for i, part in enumerate(parts):
        part[:, 0] += i * separation
    return np.vstack(parts), np.repeat(np.arange(len(sizes)), sizes)


def dccs_like(n_per=200, k=4, zs_dim=8, zs_shift=0.0, confidence=(0.95, 0.95), seed=0):
    """z = (z_c, z_s) as DCCS makes it: z_c with max in `confidence` (a range) at the point's cluster, the rest
    spread evenly, and a small style code (σ = 0.1, as the prior), optionally shifted along one axis per cluster."""
    rng = np.random.default_rng(seed)
    pred = np.repeat(np.arange(k), n_per)
    top = rng.uniform(*confidence, size=len(pred))
    z_c = np.repeat(((1 - top) / (k - 1))[:, None], k, axis=1)
    z_c[np.arange(len(pred)), pred] = top
    z_s = rng.standard_normal((len(pred), zs_dim)) * 0.1
    z_s[:, 0] += pred * zs_shift
    return z_c, z_s, pred


def rotation(dim, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q


# ---------------------------------------------------------------------------------------------------------
# separated, overlapping, monotone
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [2, 10])
def test_well_separated_blobs_score_as_separated(dim):
    x, pred = blobs(10.0, dim=dim)
    report = overlap_score(x, pred, space="map")
    assert report.score < 0.01
    assert not report.overlapping and not is_overlapping(report)


@pytest.mark.parametrize("dim", [2, 10])
def test_blobs_pushed_together_score_as_overlapping(dim):
    touching, pred = blobs(3.0, dim=dim)
    merged, _ = blobs(0.0, dim=dim)
    assert overlap_score(touching, pred, space="map").score > 2 * DEFAULT_THRESHOLD
    assert overlap_score(merged, pred, space="map").score > 0.9  # one cloud split at random: as mixed as it gets


@pytest.mark.parametrize("seed", range(5))
def test_score_rises_monotonically_as_blobs_move_together(seed):
    separations = [9, 7, 6, 5, 4.5, 4, 3.5, 3, 2, 1, 0]
    scores = [overlap_score(*blobs(d, seed=seed), space="map").score for d in separations]
    steps = np.diff(scores)
    assert steps.min() > -0.02, scores  # finite samples may wobble a little, never turn back
    assert scores[0] < 0.01 and scores[-1] > 0.9


def test_known_separations_fall_on_the_documented_sides_of_the_threshold():
    """The calibration of docs/overlap-score.md: two unit Gaussians 5 apart show a gap, 4 apart touch."""
    gap = [overlap_score(*blobs(5.0, seed=s), space="map").score for s in range(3)]
    touch = [overlap_score(*blobs(4.0, seed=s), space="map").score for s in range(3)]
    assert max(gap) < DEFAULT_THRESHOLD < min(touch)


# ---------------------------------------------------------------------------------------------------------
# invariances and robustness
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [2, 12])
def test_invariant_to_global_scale_rotation_and_shift(dim):
    x, pred = blobs(3.5, dim=dim, seed=3)
    moved = 37.5 * x @ rotation(dim) + 1000.0
    a, b = overlap_score(x, pred, space="map"), overlap_score(moved, pred, space="map")
    assert a.score > 0.05  # a case with crossing edges, so that the comparison can fail
    assert b.score == pytest.approx(a.score, abs=1e-12)
    np.testing.assert_allclose(b.matrix, a.matrix, atol=1e-12)


def test_z_space_is_invariant_to_global_scale():
    z_c, z_s, _ = dccs_like(confidence=(0.3, 0.9))
    z = np.hstack([z_c, z_s])
    a, b = overlap_score(z, space="z", n_clusters=4), overlap_score(z * 0.01, space="z", n_clusters=4)
    assert a.score > 0.05
    assert b.score == pytest.approx(a.score, abs=1e-12)


@pytest.mark.parametrize("separation, low, high", [(8.0, 0.0, 0.01), (3.0, 0.12, 0.3), (2.0, 0.3, 0.6),
                                                   (0.0, 0.85, 1.0)])
def test_unequal_cluster_sizes_keep_the_score(separation, low, high):
    """Same two shapes, 600 + 600 or 1200 + 60 points: a large cluster must not look more mixed only by its size
    (a plain count of crossing edges would give the 20:1 pair about 0.15 more at separations 2 and 3)."""
    balanced = [overlap_score(*blobs(separation, sizes=(600, 600), seed=s), space="map").score for s in range(3)]
    unequal = [overlap_score(*blobs(separation, sizes=(1200, 60), seed=s), space="map").score for s in range(3)]
    assert low <= min(balanced + unequal) and max(balanced + unequal) <= high
    assert abs(np.mean(unequal) - np.mean(balanced)) < 0.06


def test_small_cluster_inside_a_large_one_overlaps():
    rng = np.random.default_rng(1)
    x = np.vstack([rng.standard_normal((1000, 2)), rng.standard_normal((30, 2)) * 0.8])
    pred = np.repeat([0, 1], [1000, 30])
    report = overlap_score(x, pred, space="map")
    assert report.score > 0.6 and report.worst_pair == (0, 1)


def test_small_separate_cluster_is_not_forced_to_reach_into_others():
    """With 8 points and k = 15 every point of the small cluster needs others as neighbours; it must not count."""
    rng = np.random.default_rng(2)
    x = np.vstack([rng.standard_normal((400, 2)), rng.standard_normal((8, 2)) * 0.3 + [30, 0]])
    pred = np.repeat([0, 1], [400, 8])
    assert overlap_score(x, pred, space="map", min_cluster_size=5).score < 0.01


def test_pair_value_does_not_depend_on_other_far_clusters():
    two = overlap_score(*blobs(3.0, sizes=(300, 300), seed=4), space="map")
    x, pred = blobs(3.0, sizes=(300, 300), seed=4)
    extra, extra_pred = blobs(12.0, sizes=(300, 300, 300, 300), seed=5)
    x6 = np.vstack([x, extra + [0, 40]])
    six = overlap_score(x6, np.concatenate([pred, extra_pred + 2]), space="map")
    assert six.pairs[0].value == pytest.approx(two.score, abs=1e-12) and six.worst_pair == (0, 1)
    assert len(six.pairs) == 15 and six.mixing < two.mixing  # overall mixing is diluted by separated clusters


def test_worst_pair_drives_the_score_and_pairs_are_sorted():
    rng = np.random.default_rng(6)
    centres = np.array([[0, 0], [3, 0], [0, 20], [6, 20]])  # 0–1 touch, 2–3 are apart, the rest far
    x = np.vstack([rng.standard_normal((200, 2)) + c for c in centres])
    pred = np.repeat([7, 3, 5, 9], 200)  # arbitrary cluster ids
    report = overlap_score(x, pred, space="map")
    assert report.worst_pair == (3, 7) and report.score == report.pairs[0].value
    values = [p.value for p in report.pairs]
    assert values == sorted(values, reverse=True)
    pair_59 = next(p for p in report.pairs if (p.a, p.b) == (5, 9))
    assert pair_59.value < 0.05 < report.score
    assert list(report.clusters) == [3, 5, 7, 9] and report.matrix.shape == (4, 4)
    np.testing.assert_allclose(report.matrix, report.matrix.T)
    assert "clusters 3-7" in report.summary()


def test_clusters_below_the_minimum_size_are_left_out_and_named():
    x, pred = blobs(10.0, sizes=(200, 200, 4))
    report = overlap_score(x, pred, space="map")
    assert report.ignored == [2] and list(report.clusters) == [0, 1] and report.sizes[2] == 4
    assert report.notes and "[2]" in report.summary()


# ---------------------------------------------------------------------------------------------------------
# z space: z_c / z_s
# ---------------------------------------------------------------------------------------------------------
def test_z_space_takes_pred_from_argmax_of_z_c():
    z_c, z_s, pred = dccs_like(confidence=(0.3, 0.9))
    z = np.hstack([z_c, z_s])
    derived = overlap_score(z, space="z", n_clusters=4)
    given = overlap_score(z, pred, space="z", n_clusters=4)
    assert derived.score == given.score and derived.space == "z" and derived.zc_weight == 1.0


def test_zc_weight_sets_how_much_z_c_keeps_clusters_apart():
    """Confident z_c with a style code that ignores the clusters: apart in z, mixed in z_s alone."""
    z_c, z_s, _ = dccs_like(confidence=(0.97, 0.97))
    z = np.hstack([z_c, z_s])
    full = overlap_score(z, space="z", n_clusters=4)
    style_only = overlap_score(z, space="z", n_clusters=4, zc_weight=0.0)
    assert full.score < 0.01 and style_only.score > 0.8


def test_soft_z_c_bridges_clusters_in_z_space():
    """Points whose z_c is split between two clusters lie between them: the pair starts to overlap."""
    z_c, z_s, _ = dccs_like(confidence=(0.97, 0.97), seed=1)
    rng = np.random.default_rng(1)
    t = rng.uniform(0.3, 0.7, 150)
    bridge_c = np.zeros((150, 4))
    bridge_c[:, 0], bridge_c[:, 1] = t, 1 - t
    z = np.vstack([np.hstack([z_c, z_s]), np.hstack([bridge_c, rng.standard_normal((150, 8)) * 0.1])])
    report = overlap_score(z, space="z", n_clusters=4)
    assert report.worst_pair == (0, 1) and report.overlapping
    assert max(p.value for p in report.pairs if (p.a, p.b) != (0, 1)) < 0.01


def test_snapshot_overlap_reads_a_snapshot():
    z_c, z_s, pred = dccs_like(confidence=(0.3, 0.9))
    snap = Snapshot(step=1, epoch=0.1, z_c=z_c.astype(np.float16), z_s=z_s.astype(np.float16),
                    pred=pred, confidence=z_c.max(1), labels=None, metrics={})
    in_z = snapshot_overlap(snap)
    assert in_z.score == overlap_score(snap.z, pred, space="z", n_clusters=4).score
    two_d = np.random.default_rng(0).standard_normal((len(pred), 2)) + pred[:, None] * 10.0
    on_map = snapshot_overlap(snap, space="map", map=two_d)
    assert on_map.space == "map" and on_map.zc_weight is None and on_map.score < 0.01


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------
def _good():
    return blobs(3.0, sizes=(50, 50))


@pytest.mark.parametrize("call, message", [
    (lambda x, p: overlap_score(x[:, 0], p, space="map"), "2-D array"),
    (lambda x, p: overlap_score(np.where(np.eye(100, 2) > 0, np.nan, x), p, space="map"), "NaN"),
    (lambda x, p: overlap_score(x, p[:-1], space="map"), "one cluster per point"),
    (lambda x, p: overlap_score(x, np.zeros(100, int), space="map"), "at least 2 predicted clusters"),
    (lambda x, p: overlap_score(x, p + 0.5, space="map"), "integer cluster ids"),
    (lambda x, p: overlap_score(x, p, space="tsne"), "space must be one of"),
    (lambda x, p: overlap_score(x, space="map"), "needs pred"),
    (lambda x, p: overlap_score(x, p, space="z"), "needs n_clusters"),
    (lambda x, p: overlap_score(x, p, space="z", n_clusters=5), "n_clusters must be between"),
    (lambda x, p: overlap_score(x, p, space="z", n_clusters=2, zc_weight=-1), "zc_weight"),
    (lambda x, p: overlap_score(x[45:55], p[45:55], space="map"), "more points than k"),
    (lambda x, p: overlap_score(x, p, space="map", k=0), "positive integer"),
    (lambda x, p: overlap_score(x, p, space="map", min_cluster_size=60), "with 60 points or more"),
    (lambda x, p: overlap_score(x, p, space="map", threshold=1.5), "threshold"),
    (lambda x, p: overlap_score(x, p, space="map", min_cluster_size=1), "min_cluster_size"),
    (lambda x, p: snapshot_overlap(None, space="map"), "needs map="),
])
def test_bad_input_is_refused_with_a_clear_message(call, message):
    x, pred = _good()
    with pytest.raises(ValueError, match=message):
        call(x, pred)


# ---------------------------------------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------------------------------------
def test_is_overlapping_at_and_around_the_threshold():
    assert is_overlapping(DEFAULT_THRESHOLD) and not is_overlapping(DEFAULT_THRESHOLD - 1e-9)
    assert is_overlapping(0.3, threshold=0.25) and not is_overlapping(0.2, threshold=0.25)


def test_a_report_judges_with_its_own_threshold():
    x, pred = blobs(3.5)
    report = overlap_score(x, pred, space="map")
    strict, lenient = (overlap_score(x, pred, space="map", threshold=t) for t in (0.05, 0.5))
    assert 0.05 < report.score < 0.5 and strict.overlapping and not lenient.overlapping
    assert is_overlapping(report) == report.overlapping and "overlapping at threshold 0.05" in strict.summary()


def test_recommend_keeps_the_largest_value_before_the_first_overlap():
    rec = recommend([1, 2, 3, 4, 5], [0.0, 0.02, 0.04, 0.12, 0.3], threshold=0.1)
    assert rec == Recommendation(3.0, 4.0, rec.reason) and "β = 4" in rec.reason


def test_recommend_stops_at_the_first_overlap_even_if_a_later_value_looks_separated():
    rec = recommend([1, 2, 3, 4], [0.01, 0.2, 0.05, 0.3], threshold=0.1)
    assert (rec.value, rec.first_overlap) == (1.0, 2.0)


def test_recommend_when_the_first_value_already_overlaps():
    rec = recommend([2, 4, 8], [0.15, 0.3, 0.5], threshold=0.1)
    assert rec.value is None and rec.first_overlap == 2.0 and "smaller" in rec.reason


def test_recommend_when_nothing_overlaps():
    rec = recommend([0.5, 1, 2], [0.0, 0.03, 0.09], threshold=0.1)
    assert rec.value == 2.0 and rec.first_overlap is None and "larger" in rec.reason


def test_recommend_accepts_reports():
    near, pred = blobs(3.0)
    far, _ = blobs(10.0)
    reports = [overlap_score(far, pred, space="map"), overlap_score(near, pred, space="map")]
    assert isinstance(reports[0], OverlapReport)
    assert recommend([1, 2], reports) == recommend([1, 2], [r.score for r in reports])
    assert recommend([1, 2], reports).value == 1.0


@pytest.mark.parametrize("values, scores, threshold, message", [
    ([], [], 0.1, "at least one"),
    ([1, 2], [0.1], 0.1, "one score per value"),
    ([1, 1, 2], [0, 0, 0], 0.1, "strictly increasing"),
    ([2, 1], [0, 0], 0.1, "strictly increasing"),
    ([1, 2], [0.0, float("nan")], 0.1, r"lie in \[0, 1\]"),
    ([1, 2], [0.0, 1.5], 0.1, r"lie in \[0, 1\]"),
    ([1, 2], [0.0, "high"], 0.1, "must be a number"),
    ([1, 2], [0.0, 0.1], 0.0, "threshold"),
])
def test_recommend_refuses_bad_input(values, scores, threshold, message):
    with pytest.raises(ValueError, match=message):
        recommend(values, scores, threshold)
