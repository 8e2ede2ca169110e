"""Keras layers of a layerwise-grown network.

A grown network is an ordinary feed-forward CNN: for every clustered stage a
frozen `Conv2D` (+ReLU) followed by a `ClusterAssignment` that replaces each
spatial position's embedding by (a function of) its distance to the stage's
k-means centroids, then the last stage's convolution and a linear readout.

`ClusterAssignment` and `CodeGate` (a code-gated convolution, the readout of
a `Stage(gate=...)`) are the custom layers. They are written with `keras.ops`
only, so they run under every Keras backend, save with `model.save()` and
export to a TensorFlow SavedModel like any built-in layer. With whitening the
assignment also holds the ZCA transform fitted before k-means
(`clustering.whitening`), so the exported graph is plain ops: a subtraction
and two matrix products.
"""

import keras
from keras import ops

from layerwise_keras.growth.kinds import ASSIGNMENTS, code_function

@keras.saving.register_keras_serializable(package="layerwise_keras")
class ClusterAssignment(keras.layers.Layer):
    """Maps each feature vector to its k-means cluster (nearest centroid).

    The centroids are a non-trainable weight of shape `[n_clusters, dim]`;
    the layer acts on the last axis, so it applies per spatial position of a
    feature map `[batch, height, width, dim]`.

    Assignment modes:

    * `"hard"` (the paper): the one-hot vector of the nearest centroid.
    * `"nearest"`: the multi-hot mask of the `q` nearest centroids (Brutzkus
      et al. 2022; exactly q ones, ties broken toward the lower index, see
      `growth.codes.nearest_mask`); `q = 1` is `"hard"`.
    * `"soft"`: `softmax(-||e - c_k||^2 / temperature)` over the centroids.
    * `"triangle"` (Coates, Lee & Ng 2011): `max(0, mean_k(d_k) - d_k)` with
      `d_k = ||e - c_k||`.

    With `whiten=True` the layer first maps each vector to `(e - mean) @ W`
    (the ZCA transform k-means ran in, non-trainable weights `whiten_mean`
    `[dim]` and `whiten_matrix` `[dim, dim]`, see `set_whitening`); the
    centroids and distances are in that whitened space.

    The nearest centroid is found as `argmax_k(e . 2c_k - ||c_k||^2)`, which
    equals `argmin_k ||e - c_k||^2` (the `||e||^2` term is common to all k).

    Args:
        n_clusters: int, the number of centroids K (the output depth).
        assignment: one of `ASSIGNMENTS`.
        temperature: positive float, the softmax temperature of `"soft"`
            (in units of squared distance). Ignored by the other modes.
        q: int in `[1, n_clusters]`, the number of nearest centroids of
            `"nearest"` (must be 1 for the other modes).
        whiten: bool, whether the layer holds a whitening transform.
        keep_input: bool, output the code followed by the layer's input
            (unwhitened), `[..., n_clusters + dim]`: what a `CodeGate`
            receives (`Stage(gate=...)`).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Returns:
        A float tensor `[..., n_clusters]` (`[..., n_clusters + dim]` with
        `keep_input`).

    Example:

    >>> import numpy as np
    >>> layer = ClusterAssignment(2)
    >>> layer.build((None, 2))
    >>> layer.set_centroids(np.array([[0.0, 0.0], [1.0, 1.0]], "float32"))
    >>> np.asarray(layer(np.array([[0.9, 0.8]], "float32")))
    array([[0., 1.]], dtype=float32)
    """

    def __init__(self, n_clusters, assignment="hard", temperature=1.0, q=1, whiten=False, keep_input=False,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters or n_clusters < 1:
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
        if isinstance(q, bool) or int(q) != q or not 1 <= q <= n_clusters:
            raise ValueError(f"ClusterAssignment: q must be an integer in [1, n_clusters={n_clusters}], got {q!r}.")
        if q != 1 and assignment != "nearest":
            raise ValueError(f"ClusterAssignment: q={q} needs assignment='nearest' (got {assignment!r}).")
        if not isinstance(whiten, bool):
            raise ValueError(f"ClusterAssignment: whiten must be True or False, got {whiten!r}.")
        if not isinstance(keep_input, bool):
            raise ValueError(f"ClusterAssignment: keep_input must be True or False, got {keep_input!r}.")
        self.n_clusters = int(n_clusters)
        self.assignment = assignment
        self.temperature = float(temperature)
        self.q = int(q)
        self.whiten = whiten
        self.keep_input = keep_input

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(
                "ClusterAssignment: the last axis (the embedding dimension) must be known, "
                f"got input shape {input_shape}."
            )
        dim = int(dim)
        if self.whiten:
            self.whiten_mean = self.add_weight(name="whiten_mean", shape=(dim,), initializer="zeros",
                                               trainable=False)
            self.whiten_matrix = self.add_weight(name="whiten_matrix", shape=(dim, dim), initializer="identity",
                                                 trainable=False)
        self.centroids = self.add_weight(
            name="centroids",
            shape=(self.n_clusters, dim),
            initializer="zeros",
            trainable=False,
        )

    def _checked(self, values, expected, what):
        values = ops.convert_to_numpy(values).astype("float32")
        if values.shape != tuple(expected):
            raise ValueError(
                f"ClusterAssignment '{self.name}': {what} must have shape {tuple(expected)}, got {values.shape}."
            )
        if not (abs(values) < float("inf")).all():
            raise ValueError(f"ClusterAssignment '{self.name}': {what} contain NaN or Inf values.")
        return values

    def set_centroids(self, centroids):
        """Loads k-means centroids into the layer (in the whitened space if the layer whitens).

        Args:
            centroids: array-like `[n_clusters, dim]` of finite floats.

        Returns:
            None.

        Example:

        >>> import numpy as np
        >>> layer = ClusterAssignment(3)
        >>> layer.build((None, 4))
        >>> layer.set_centroids(np.eye(3, 4, dtype="float32"))
        >>> np.asarray(layer(np.array([[0.0, 0.9, 0.1, 0.0]], "float32")))
        array([[0., 1., 0.]], dtype=float32)
        """
        self.centroids.assign(self._checked(centroids, self.centroids.shape, "centroids"))

    def set_whitening(self, mean, matrix):
        """Loads the whitening transform `e -> (e - mean) @ matrix` (a layer built with `whiten=True`).

        Args:
            mean: array-like `[dim]`.
            matrix: array-like `[dim, dim]`.

        Returns:
            None.

        Example:

        >>> import numpy as np
        >>> from layerwise_keras.clustering.whitening import fit_zca
        >>> points = np.random.default_rng(0).normal(size=(500, 4)).astype("float32")
        >>> zca = fit_zca(points, epsilon=1e-2)
        >>> layer = ClusterAssignment(3, whiten=True)
        >>> layer.build((None, 4))
        >>> layer.set_whitening(zca.mean, zca.matrix)
        >>> bool(np.allclose(layer.whitened(points), (points - zca.mean) @ zca.matrix, atol=1e-4))
        True
        """
        if not self.whiten:
            raise ValueError(f"ClusterAssignment '{self.name}': built with whiten=False, it has no whitening.")
        self.whiten_mean.assign(self._checked(mean, self.whiten_mean.shape, "the whitening mean"))
        self.whiten_matrix.assign(self._checked(matrix, self.whiten_matrix.shape, "the whitening matrix"))

    def whitened(self, x):
        """Returns `(x - mean) @ W` (computed as `x @ W - mean @ W`) with the layer's whitening, or `x` without.

        Args:
            x: float tensor `[..., dim]`.

        Returns:
            Float tensor `[..., dim]`.
        """
        if not self.whiten:
            return x
        matrix = ops.convert_to_tensor(self.whiten_matrix, dtype=x.dtype)
        return ops.matmul(x, matrix) + self.whiten_bias(x.dtype)

    def whiten_bias(self, dtype="float32"):
        """Returns `-mean @ W`: the whitening is `x @ W + whiten_bias()` (a `Dense` layer's form).

        Args:
            dtype: the result's dtype.

        Returns:
            Tensor `[dim]`.
        """
        mean = ops.convert_to_tensor(self.whiten_mean, dtype=dtype)
        matrix = ops.convert_to_tensor(self.whiten_matrix, dtype=dtype)
        return -ops.matmul(ops.expand_dims(mean, 0), matrix)[0]

    def whitened_scores(self, z):
        """Returns `z . 2c_k - ||c_k||^2` for every centroid k, `z` already whitened (`whitened(x)`).

        Args:
            z: float tensor `[..., dim]`, whitened embeddings.

        Returns:
            Float tensor `[..., n_clusters]`.
        """
        c = ops.convert_to_tensor(self.centroids, dtype=z.dtype)
        kernel = ops.transpose(c) * 2.0
        bias = -ops.sum(ops.square(c), axis=-1)
        return ops.matmul(z, kernel) + bias

    def scores(self, x):
        """Returns `z . 2c_k - ||c_k||^2` for every centroid k (higher = nearer), `z` the whitened `x`.

        Args:
            x: float tensor `[..., dim]`, the stage's embeddings.

        Returns:
            Float tensor `[..., n_clusters]`.
        """
        return self.whitened_scores(self.whitened(x))

    def call(self, x):
        z = self.whitened(x)
        scores = self.whitened_scores(z)
        code = code_function(self.assignment)(z, scores, self.n_clusters, self.temperature, self.q)
        return ops.concatenate([code, x], axis=-1) if self.keep_input else code

    def compute_output_shape(self, input_shape):
        extra = int(input_shape[-1]) if self.keep_input else 0
        return tuple(input_shape[:-1]) + (self.n_clusters + extra,)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_clusters=self.n_clusters,
            assignment=self.assignment,
            temperature=self.temperature,
            q=self.q,
            whiten=self.whiten,
            keep_input=self.keep_input,
        )
        return config


@keras.saving.register_keras_serializable(package="layerwise_keras")
class CodeGate(keras.layers.Layer):
    """A convolution gated by a cluster code: each cluster's own linear map of the patch, beside the code.

    The input is a `ClusterAssignment(keep_input=True)`'s output: per
    position the code `m` (`n_clusters` values: one-hot, multi-hot, soft or
    triangle) followed by the patch `x` the code was computed from. The
    output is the code followed by `units` gated channels,

        [m, (m @ A) * (x @ V)],

    the "full" code of Brutzkus et al. 2022 (the mask times a learned linear
    function per cluster), each cluster's map factored as shared filters `V`
    scaled by the cluster's gains `a_k`: for a one-hot code the gated
    channels are cluster k's map `x -> a_k * (x @ V)`. The code is kept so
    the head after the gate (pooling -> BatchNorm -> 1x1 bottleneck) still
    sees it as a plain code head does: a per-cluster offset, normalised per
    cluster; with all gains equal the gated channels are a convolution of
    the patch. `V` and `A` are trained by gradient descent with the stage's
    head; the code stays frozen. Each position costs
    `(n_clusters + dim) * units` multiply-adds.

    Args:
        units: int, the gated channels C.
        n_clusters: int K, the code's depth (the input's first K channels).
        kernel_initializer: initializer of `V` `[dim, units]`; the gains
            `A` `[K, units]` start at 1 (every cluster the same filters).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Returns:
        A float tensor `[..., n_clusters + units]`.

    Example:

    >>> import numpy as np
    >>> gate = CodeGate(4, n_clusters=3)
    >>> y = gate(np.concatenate([np.eye(3)[[0, 2]], np.ones((2, 5))], -1).astype("float32"))
    >>> tuple(y.shape)
    (2, 7)
    """

    def __init__(self, units, n_clusters, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("n_clusters", n_clusters)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"CodeGate: {name} must be a positive integer, got {value!r}.")
        self.units = int(units)
        self.n_clusters = int(n_clusters)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        depth = input_shape[-1]
        if depth is None or int(depth) <= self.n_clusters:
            raise ValueError(
                f"CodeGate: expects the code's {self.n_clusters} channels followed by the patch "
                f"(a ClusterAssignment(keep_input=True)'s output), got input shape {input_shape}."
            )
        dim = int(depth) - self.n_clusters
        self.kernel = self.add_weight(name="kernel", shape=(dim, self.units), initializer=self.kernel_initializer)
        self.gains = self.add_weight(name="gains", shape=(self.n_clusters, self.units), initializer="ones")

    def call(self, inputs):
        code, patch = inputs[..., : self.n_clusters], inputs[..., self.n_clusters :]
        gated = ops.matmul(code, self.gains) * ops.matmul(patch, self.kernel)
        return ops.concatenate([code, gated], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.n_clusters + self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, n_clusters=self.n_clusters,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
