"""Keras layers of a layerwise-grown network.

A grown network is an ordinary feed-forward CNN: for every clustered stage a
frozen `Conv2D` (+ReLU) followed by a `ClusterAssignment` that replaces each
spatial position's embedding by (a function of) its distance to the stage's
k-means centroids, then the last stage's convolution and a linear readout.

`ClusterAssignment` is the only custom layer. It is written with `keras.ops`
only, so it runs under every Keras backend, saves with `model.save()` and
exports to a TensorFlow SavedModel like any built-in layer.
"""

import keras
from keras import ops

ASSIGNMENTS = ("hard", "soft", "triangle")


def assign_from_scores(x, scores, assignment, n_clusters, temperature=1.0):
    """Turns nearest-centroid scores into an assignment, with `keras.ops`.

    Works on real and symbolic tensors alike (the portable export applies it
    to `keras.Input` tensors).

    Args:
        x: float tensor `[..., dim]`, the embeddings.
        scores: float tensor `[..., n_clusters]`, `x . 2c_k - ||c_k||^2`.
        assignment: `"hard"`, `"soft"` or `"triangle"`.
        n_clusters: int, K.
        temperature: the `"soft"` temperature.

    Returns:
        Float tensor `[..., n_clusters]`.
    """
    if assignment == "hard":
        return ops.one_hot(ops.argmax(scores, axis=-1), n_clusters, dtype=x.dtype)
    # ||x - c||^2 = ||x||^2 - scores, clamped at 0 against rounding.
    sq_dist = ops.relu(ops.sum(ops.square(x), axis=-1, keepdims=True) - scores)
    if assignment == "soft":
        return ops.softmax(-sq_dist / temperature, axis=-1)
    dist = ops.sqrt(sq_dist)
    return ops.relu(ops.mean(dist, axis=-1, keepdims=True) - dist)


@keras.saving.register_keras_serializable(package="layerwise_keras")
class ClusterAssignment(keras.layers.Layer):
    """Maps each feature vector to its k-means cluster (nearest centroid).

    The centroids are a non-trainable weight of shape `[n_clusters, dim]`;
    the layer acts on the last axis, so it applies per spatial position of a
    feature map `[batch, height, width, dim]`.

    Assignment modes:

    * `"hard"` (the paper): the one-hot vector of the nearest centroid.
    * `"soft"`: `softmax(-||e - c_k||^2 / temperature)` over the centroids.
    * `"triangle"` (Coates, Lee & Ng 2011): `max(0, mean_k(d_k) - d_k)` with
      `d_k = ||e - c_k||`.

    The nearest centroid is found as `argmax_k(e . 2c_k - ||c_k||^2)`, which
    equals `argmin_k ||e - c_k||^2` (the `||e||^2` term is common to all k).

    Args:
        n_clusters: int, the number of centroids K (the output depth).
        assignment: one of `"hard"`, `"soft"`, `"triangle"`.
        temperature: positive float, the softmax temperature of `"soft"`
            (in units of squared distance). Ignored by the other modes.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Returns:
        A float tensor `[..., n_clusters]`.

    Example:

    >>> import numpy as np
    >>> layer = ClusterAssignment(2)
    >>> layer.build((None, 2))
    >>> layer.set_centroids(np.array([[0.0, 0.0], [1.0, 1.0]], "float32"))
    >>> np.asarray(layer(np.array([[0.9, 0.8]], "float32")))
    array([[0., 1.]], dtype=float32)
    """

    def __init__(self, n_clusters, assignment="hard", temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        if int(n_clusters) != n_clusters or n_clusters < 1:
            raise ValueError(
                f"ClusterAssignment: n_clusters must be a positive integer, got {n_clusters!r}."
            )
        if assignment not in ASSIGNMENTS:
            raise ValueError(
                f"ClusterAssignment: assignment must be one of {ASSIGNMENTS}, got {assignment!r}."
            )
        if not temperature > 0:
            raise ValueError(
                f"ClusterAssignment: temperature must be > 0, got {temperature!r}."
            )
        self.n_clusters = int(n_clusters)
        self.assignment = assignment
        self.temperature = float(temperature)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(
                "ClusterAssignment: the last axis (the embedding dimension) must be known, "
                f"got input shape {input_shape}."
            )
        self.centroids = self.add_weight(
            name="centroids",
            shape=(self.n_clusters, int(dim)),
            initializer="zeros",
            trainable=False,
        )

    def set_centroids(self, centroids):
        """Loads k-means centroids into the layer.

        Args:
            centroids: array-like `[n_clusters, dim]` of finite floats.

        Returns:
            None.

        Example:

        >>> layer = ClusterAssignment(3)
        >>> layer.build((None, 4))
        >>> layer.set_centroids(np.zeros((3, 4), "float32"))
        """
        centroids = ops.convert_to_numpy(centroids).astype("float32")
        expected = tuple(self.centroids.shape)
        if centroids.shape != expected:
            raise ValueError(
                f"ClusterAssignment '{self.name}': centroids must have shape {expected}, "
                f"got {centroids.shape}."
            )
        if not (abs(centroids) < float("inf")).all():
            raise ValueError(
                f"ClusterAssignment '{self.name}': centroids contain NaN or Inf values."
            )
        self.centroids.assign(centroids)

    def scores(self, x):
        """Returns `x . 2c_k - ||c_k||^2` for every centroid k (higher = nearer).

        Args:
            x: float tensor `[..., dim]`.

        Returns:
            Float tensor `[..., n_clusters]`.
        """
        c = ops.convert_to_tensor(self.centroids, dtype=x.dtype)
        kernel = ops.transpose(c) * 2.0
        bias = -ops.sum(ops.square(c), axis=-1)
        return ops.matmul(x, kernel) + bias

    def call(self, x):
        return assign_from_scores(x, self.scores(x), self.assignment, self.n_clusters, self.temperature)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.n_clusters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_clusters=self.n_clusters,
            assignment=self.assignment,
            temperature=self.temperature,
        )
        return config
