"""Tests for layerwise_keras.clustering.purity: purity and stage_purities."""

import numpy as np
import pytest

from layerwise_keras.clustering.purity import purity, stage_purities


def _brute_force_purity(clusters, truth):
    clusters, truth = np.ravel(clusters), np.ravel(truth)
    total = 0
    for c in np.unique(clusters):
        _, counts = np.unique(truth[clusters == c], return_counts=True)
        total += counts.max()
    return total / clusters.size


def test_perfect_clustering_is_one_under_relabelling():
    truth = np.array([3, 3, 1, 1, 7, 7, 7])
    clusters = np.array([0, 0, 2, 2, 1, 1, 1])  # same partition, other ids
    assert purity(clusters, truth) == 1.0
    assert purity(truth, truth) == 1.0


def test_merged_classes_lower_purity():
    # One cluster holding two equal classes: half the points are in the minority.
    assert purity([0, 0, 0, 0], [1, 1, 2, 2]) == 0.5
    # Four of class a and two of class b merged: 4/6.
    assert purity([5] * 6, [0, 0, 0, 0, 9, 9]) == pytest.approx(4 / 6)
    # Docstring example.
    assert purity(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 5])) == 0.75


def test_split_classes_keep_purity_one():
    assert purity([0, 1, 2, 3], [4, 4, 4, 4]) == 1.0
    assert purity([0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 1]) == 1.0


def test_single_point_and_any_id_values():
    assert purity([42], [-7]) == 1.0
    assert purity([-1, -1, 1000, 1000], [10**9, 3, 3, 3]) == 0.75


def test_any_shape_is_flattened():
    clusters = np.array([[0, 0], [1, 1]])
    truth = np.array([[5, 5], [7, 5]])
    assert purity(clusters, truth) == 0.75
    # Same number of elements in different shapes is allowed (both are flattened).
    assert purity(clusters.ravel(), truth) == 0.75


def test_returns_python_float():
    value = purity(np.array([0, 1]), np.array([0, 0]))
    assert type(value) is float and value == 1.0


def test_random_labels_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 300))
        clusters = rng.integers(0, int(rng.integers(1, 12)), size=n)
        truth = rng.integers(-3, int(rng.integers(-2, 8)), size=n)
        value = purity(clusters, truth)
        assert value == pytest.approx(_brute_force_purity(clusters, truth), abs=1e-12)
        assert 0.0 < value <= 1.0


def test_matches_sklearn_contingency_matrix():
    contingency_matrix = pytest.importorskip("sklearn.metrics.cluster").contingency_matrix
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 6, size=(40, 9, 9))
    # Mostly truth-aligned clusters with noise, so purity is strictly between 0 and 1.
    clusters = np.where(rng.random(truth.shape) < 0.8, truth * 2 + rng.integers(0, 2, truth.shape), 99)
    table = contingency_matrix(truth.ravel(), clusters.ravel())
    expected = table.max(axis=0).sum() / truth.size
    assert purity(clusters, truth) == pytest.approx(expected, abs=1e-12)
    assert 0.5 < purity(clusters, truth) < 1.0


@pytest.mark.parametrize("sizes", [(3, 4), (4, 3), (0, 1)])
def test_mismatched_sizes_raise(sizes):
    with pytest.raises(ValueError, match="same number of elements") as info:
        purity(np.zeros(sizes[0], int), np.zeros(sizes[1], int))
    assert f"got {sizes[0]} and {sizes[1]}" in str(info.value)


def test_no_points_raises():
    with pytest.raises(ValueError, match="no points"):
        purity([], [])


# ---------------------------------------------------------------------------
# stage_purities
# ---------------------------------------------------------------------------


def _latents(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4, size=(n, 9, 9)), rng.integers(0, 3, size=(n, 3, 3)), rng.integers(0, 10, size=(n, 1, 1))]


def test_stage_purities_per_stage_values():
    latents = _latents()
    perfect = latents[0] + 10  # a relabelling of level 0
    merged = np.zeros_like(latents[1])  # everything in one cluster
    result = stage_purities([perfect, merged], latents)
    assert len(result) == 2
    assert result[0] == 1.0
    assert result[1] == pytest.approx(np.bincount(latents[1].ravel()).max() / latents[1].size)
    # Only the first len(cluster_maps) latent levels are used.
    assert stage_purities([perfect], latents) == [1.0]
    assert stage_purities([], latents) == []


def test_stage_purities_shape_mismatch_names_stage_and_shapes():
    latents = _latents(n=5)
    with pytest.raises(ValueError, match=r"stage 2's cluster map has shape \(5, 4, 4\).*\(5, 3, 3\)"):
        stage_purities([latents[0], np.zeros((5, 4, 4), int)], latents)
    # Same number of elements, other shape: still an error (stage maps must align with levels).
    with pytest.raises(ValueError, match="stage 1's cluster map"):
        stage_purities([latents[0].reshape(5, 81)], latents)


def test_stage_purities_more_maps_than_levels_raises():
    latents = _latents()
    with pytest.raises(ValueError, match="4 cluster maps but only 3 latent levels"):
        stage_purities([latents[0]] * 4, latents)
