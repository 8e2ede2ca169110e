"""Tests for layerwise_keras.growth.layers.ClusterAssignment against NumPy references."""

import keras
import numpy as np
import pytest

from layerwise_keras.growth.kinds import ASSIGNMENTS
from layerwise_keras.growth.layers import ClusterAssignment

K = 7
D = 5


def _data(n=400, k=K, d=D, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    centroids = rng.normal(size=(k, d)).astype("float32")
    return x, centroids


def _sq_dist(x, centroids):
    """Brute-force squared distances in float64, `[n, k]`."""
    diff = x.astype("float64")[:, None, :] - centroids.astype("float64")[None, :, :]
    return (diff**2).sum(-1)


def _layer(centroids, assignment="hard", temperature=1.0, **kwargs):
    layer = ClusterAssignment(len(centroids), assignment=assignment, temperature=temperature, **kwargs)
    layer.build((None, centroids.shape[1]))
    layer.set_centroids(centroids)
    return layer


def _apply(layer, x):
    return keras.ops.convert_to_numpy(layer(x))


# ---------------------------------------------------------------------------
# Assignment modes vs NumPy
# ---------------------------------------------------------------------------


def test_hard_is_one_hot_of_brute_force_nearest_centroid():
    x, centroids = _data()
    d2 = _sq_dist(x, centroids)
    # The data must not have near-ties, or float32 rounding could legitimately flip them.
    top2 = np.sort(d2, axis=1)[:, :2]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-4
    expected = np.eye(K, dtype="float32")[d2.argmin(axis=1)]

    out = _apply(_layer(centroids, "hard"), x)

    assert out.dtype == np.float32
    assert out.shape == (len(x), K)
    np.testing.assert_array_equal(out, expected)
    # Every cluster is used by these data, so the test exercises all K outputs.
    assert set(d2.argmin(axis=1)) == set(range(K))


def test_hard_docstring_example():
    layer = _layer(np.array([[0.0, 0.0], [1.0, 1.0]], "float32"), "hard")
    np.testing.assert_array_equal(_apply(layer, np.array([[0.9, 0.8]], "float32")), [[0.0, 1.0]])


def test_hard_on_a_centroid_returns_that_centroid():
    _, centroids = _data()
    out = _apply(_layer(centroids, "hard"), centroids)
    np.testing.assert_array_equal(out, np.eye(K, dtype="float32"))


@pytest.mark.parametrize("temperature", [1.0, 0.3, 4.0])
def test_soft_is_softmax_of_negative_squared_distance(temperature):
    x, centroids = _data(seed=1)
    logits = -_sq_dist(x, centroids) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    out = _apply(_layer(centroids, "soft", temperature), x)

    assert out.shape == (len(x), K)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_soft_temperature_changes_the_output():
    x, centroids = _data(seed=2)
    sharp = _apply(_layer(centroids, "soft", 0.05), x)
    flat = _apply(_layer(centroids, "soft", 50.0), x)
    # A low temperature approaches the hard assignment, a high one the uniform vector.
    hard = _apply(_layer(centroids, "hard"), x)
    assert np.abs(sharp - hard).mean() < np.abs(flat - hard).mean()
    assert np.abs(flat - 1.0 / K).max() < 0.2


def test_triangle_is_mean_distance_minus_distance_clipped():
    x, centroids = _data(seed=3)
    d = np.sqrt(_sq_dist(x, centroids))
    expected = np.maximum(0.0, d.mean(axis=1, keepdims=True) - d)

    out = _apply(_layer(centroids, "triangle"), x)

    assert out.shape == (len(x), K)
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)
    # Both branches of the max(0, .) occur: the triangle code is sparse but not empty.
    assert (out == 0).any() and (out > 0).any()
    assert ((out > 0).sum(axis=1) >= 1).all()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_4d_feature_map_acts_per_position(assignment):
    rng = np.random.default_rng(4)
    fmap = rng.normal(size=(2, 5, 6, D)).astype("float32")
    centroids = rng.normal(size=(K, D)).astype("float32")
    layer = _layer(centroids, assignment, temperature=0.5)

    out = _apply(layer, fmap)

    assert out.shape == (2, 5, 6, K)
    assert layer.compute_output_shape((None, 5, 6, D)) == (None, 5, 6, K)
    flat = _apply(layer, fmap.reshape(-1, D)).reshape(2, 5, 6, K)
    np.testing.assert_allclose(out, flat, atol=1e-6)


def test_output_shape_in_a_model_and_centroids_are_not_trainable():
    layer = ClusterAssignment(K, name="assign")
    model = keras.Sequential([keras.Input((9, 9, D)), layer])
    assert model.output_shape == (None, 9, 9, K)
    assert tuple(layer.centroids.shape) == (K, D)
    assert layer.trainable_weights == []
    assert [w.path for w in layer.non_trainable_weights] == [layer.centroids.path]


def test_build_needs_a_known_last_axis():
    with pytest.raises(ValueError, match="last axis"):
        ClusterAssignment(3).build((None, 4, None))


# ---------------------------------------------------------------------------
# Config and saving
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_get_config_from_config_round_trip(assignment):
    x, centroids = _data(n=50, seed=5)
    layer = _layer(centroids, assignment, temperature=0.25, name="stage3_assign")
    config = layer.get_config()
    assert config["n_clusters"] == K
    assert config["assignment"] == assignment
    assert config["temperature"] == 0.25
    assert config["name"] == "stage3_assign"

    clone = ClusterAssignment.from_config(config)
    assert clone.get_config() == config
    clone.build((None, D))
    clone.set_centroids(centroids)
    np.testing.assert_array_equal(_apply(clone, x), _apply(layer, x))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_sequential_saves_and_loads_with_identical_outputs(tmp_path, assignment):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(6)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 2, strides=2, activation="relu", name="stage1_conv"),
            ClusterAssignment(K, assignment=assignment, temperature=0.7, name="stage1_assign"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    centroids = np.abs(rng.normal(size=(K, 4))).astype("float32")
    model.get_layer("stage1_assign").set_centroids(centroids)
    x = rng.normal(size=(16, 6, 6, 2)).astype("float32")
    before = model.predict(x, verbose=0)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)

    layer = loaded.get_layer("stage1_assign")
    assert isinstance(layer, ClusterAssignment)
    assert (layer.n_clusters, layer.assignment, layer.temperature) == (K, assignment, 0.7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.centroids), centroids)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)


# ---------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_clusters", [0, -3, 2.5])
def test_bad_n_clusters_raises(n_clusters):
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        ClusterAssignment(n_clusters)


@pytest.mark.parametrize("assignment", ["foo", "Hard", None])
def test_unknown_assignment_raises(assignment):
    with pytest.raises(ValueError, match="assignment must be one of"):
        ClusterAssignment(3, assignment=assignment)


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0, float("nan")])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ClusterAssignment(3, assignment="soft", temperature=temperature)


@pytest.mark.parametrize("shape", [(K, D + 1), (K - 1, D), (K * D,)])
def test_set_centroids_wrong_shape_raises(shape):
    layer = _layer(np.zeros((K, D), "float32"))
    with pytest.raises(ValueError, match=r"must have shape \(7, 5\).*got") as info:
        layer.set_centroids(np.ones(shape, "float32"))
    assert str(shape) in str(info.value)
    # The weight is left as it was.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.centroids), 0.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_set_centroids_non_finite_raises(bad):
    _, centroids = _data()
    layer = _layer(centroids, name="stage2_assign")
    poisoned = centroids.copy()
    poisoned[2, 3] = bad
    with pytest.raises(ValueError, match="stage2_assign.*NaN or Inf"):
        layer.set_centroids(poisoned)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.centroids), centroids)
