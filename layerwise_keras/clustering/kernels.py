"""The compiled kernels of k-means, written with `keras.ops`: nearest centroid, Lloyd step, resident pass, cluster sums.
"""

import keras


def _nearest(x, centroids, x_sq=None):
    """Nearest centroid and squared distance to it, per row.

    The squared distance `||x||^2 - 2 x.c + ||c||^2` is smallest where the
    score `x.c - ||c||^2 / 2` is largest, so only the `[B, K]` score matrix
    is formed (one matmul and a broadcast subtraction) and reduced once
    (`top_k(1)` on TensorFlow, `argmax` and `max` elsewhere).  Keras'
    TensorFlow `argmax` adds a -0.0 fix, four more unfused passes over the
    scores; in a one-off comparison on the 2-core development CPU
    (2026-11-27, 500,000 x 64 points, K = 256; figures in the message of the
    commit that made the change) the resident pass took 218 ms with
    `top_k` and 337 ms with `argmax`.  Folding `||c||^2 / 2` into the matmul
    as a bias column, or gathering the arg-max entry instead of a `max`, was
    no faster there.  `benchmarks/kmeans.py` times the whole fit.

    Args:
        x: float32 tensor `[B, D]`.
        centroids: float32 tensor `[K, D]`.
        x_sq: optional float32 tensor `[B]`, the rows' squared norms
            (computed from `x` if not given).

    Returns:
        Tuple `(assign, min_dist)`: `assign` `[B]` (int32) the nearest
        centroid (the first one on ties) and `min_dist` `[B]` the squared
        distance to it, clamped at 0.

    Example:

    >>> assign, min_dist = _nearest(keras.ops.ones((4, 2)), keras.ops.zeros((3, 2)))
    """
    ops = keras.ops
    if x_sq is None:
        x_sq = ops.sum(x * x, axis=1)
    half_c_sq = 0.5 * ops.sum(centroids * centroids, axis=1)
    scores = ops.matmul(x, ops.transpose(centroids)) - ops.expand_dims(half_c_sq, 0)
    if keras.backend.backend() == "tensorflow":
        # One pass that gives the max too (ties: the lower index, as argmax); see the docstring.
        best, assign = ops.top_k(scores, 1, sorted=False)
        best, assign = best[:, 0], ops.cast(assign[:, 0], "int32")
    else:
        assign = ops.cast(ops.argmax(scores, axis=1), "int32")
        best = ops.max(scores, axis=1)
    min_dist = ops.maximum(x_sq - 2.0 * best, 0.0)
    return assign, min_dist


def lloyd_step(x, w, centroids):
    """One assignment step of Lloyd's algorithm on one padded chunk.

    Args:
        x: float32 tensor `[B, D]`, the points (padding rows are zeros).
        w: float32 tensor `[B]`, 1 for valid rows and 0 for padding rows.
        centroids: float32 tensor `[K, D]`.

    Returns:
        Tuple `(sums, counts, inertia, min_dist, assign)`: `sums` `[K, D]` is
        the per-cluster sum of the valid points, `counts` `[K]` the number of
        valid points per cluster, `inertia` the sum over valid points of the
        squared distance to the nearest centroid, `min_dist` `[B]` that
        squared distance per row and `assign` `[B]` (int32) the nearest
        centroid per row.

    Example:

    A chunk of 6 rows holding 4 points (the last two rows are padding), and 3
    of those points as the centroids:

    >>> import numpy as np
    >>> chunk = np.zeros((6, 2), "float32")
    >>> chunk[:4] = np.random.default_rng(0).normal(size=(4, 2))
    >>> w = np.array([1, 1, 1, 1, 0, 0], "float32")
    >>> sums, counts, inertia, min_dist, assign = lloyd_step(
    ...     keras.ops.convert_to_tensor(chunk), keras.ops.convert_to_tensor(w), keras.ops.convert_to_tensor(chunk[:3]))
    >>> tuple(sums.shape), int(keras.ops.sum(counts)), tuple(min_dist.shape)  # counts: the 4 points
    ((3, 2), 4, (6,))
    >>> keras.ops.convert_to_numpy(assign)[:3].tolist()  # each centroid's own point
    [0, 1, 2]
    >>> nearest = ((chunk[3] - chunk[:3]) ** 2).sum(axis=1).min()  # only point 4 is away from its centroid
    >>> np.allclose(float(inertia), nearest, rtol=1e-4, atol=1e-5)
    True
    """
    ops = keras.ops
    k = centroids.shape[0]
    assign, min_dist = _nearest(x, centroids)
    sums = ops.segment_sum(x * ops.expand_dims(w, 1), assign, num_segments=k)
    counts = ops.segment_sum(w, assign, num_segments=k)
    inertia = ops.sum(w * min_dist)
    return sums, counts, inertia, min_dist, assign


def resident_pass(chunks, chunks_sq, centroids):
    """Nearest centroid for every point of a device-resident point set.

    Args:
        chunks: float32 tensor `[C, R, D]`: the points, padded with zero rows
            to `C * R` rows and split into `C` chunks of `R` rows.
        chunks_sq: float32 tensor `[C, R]`, the points' squared norms.
        centroids: float32 tensor `[K, D]`.

    Returns:
        Tuple `(assign, min_dist)`, each `[C, R]` (`int32`, `float32`): the
        nearest centroid and the squared distance to it, per point.

    Example:

    >>> assign, min_dist = resident_pass(keras.ops.zeros((2, 8, 3)), keras.ops.zeros((2, 8)), keras.ops.ones((4, 3)))
    """
    return keras.ops.map(lambda chunk: _nearest(chunk[0], centroids, chunk[1]), (chunks, chunks_sq))


def cluster_sums(x, assign, n_clusters):
    """Per-cluster sums and counts of the rows of `x`; rows assigned to the dummy id `n_clusters` are left out.

    Args:
        x: float32 tensor `[M, D]`.
        assign: int32 tensor `[M]` of cluster ids in `0..n_clusters`.
        n_clusters: the number of clusters `K` (a Python int).

    Returns:
        Tuple `(sums, counts)`: float32 `[K, D]` and int32 `[K]`.

    Example:

    >>> import numpy as np
    >>> points = keras.ops.convert_to_tensor(np.arange(8, dtype="float32").reshape(4, 2))
    >>> assign = keras.ops.convert_to_tensor(np.array([0, 1, 0, 2], "int32"))  # 2 = n_clusters: left out
    >>> sums, counts = cluster_sums(points, assign, n_clusters=2)
    >>> keras.ops.convert_to_numpy(sums).tolist(), keras.ops.convert_to_numpy(counts).tolist()
    ([[4.0, 6.0], [2.0, 3.0]], [2, 1])
    """
    ops = keras.ops
    sums = ops.segment_sum(x, assign, num_segments=n_clusters + 1)
    counts = ops.segment_sum(ops.ones_like(assign), assign, num_segments=n_clusters + 1)
    return sums[:n_clusters], counts[:n_clusters]


def sums_delta(x, rows, new, old, n_clusters):
    """Change of the per-cluster sums and counts when `rows` move from `old` to `new` clusters.

    Cluster id `n_clusters` is a dummy: a point entering from (or leaving
    to) it is added (removed) only once, and padding rows use it on both
    sides, so they cancel.

    Args:
        x: float32 tensor `[N, D]`, all points.
        rows: int32 tensor `[M]`, the indices of the points that moved.
        new: int32 tensor `[M]`, their new cluster ids (`0..n_clusters`).
        old: int32 tensor `[M]`, their previous cluster ids (`0..n_clusters`).
        n_clusters: the number of clusters `K` (a Python int).

    Returns:
        Tuple `(sums, counts)`: float32 `[K, D]` and int32 `[K]`, to be
        added to the running sums and counts.

    Example:

    Points 1 and 3 of `[[0, 1], [2, 3], [4, 5], [6, 7]]` move: point 1 from
    cluster 1 to 0, point 3 from no cluster (the dummy id 2) to cluster 1:

    >>> import numpy as np
    >>> points = keras.ops.convert_to_tensor(np.arange(8, dtype="float32").reshape(4, 2))
    >>> rows = keras.ops.convert_to_tensor(np.array([1, 3], "int32"))
    >>> new = keras.ops.convert_to_tensor(np.array([0, 1], "int32"))
    >>> old = keras.ops.convert_to_tensor(np.array([1, 2], "int32"))
    >>> sums, counts = sums_delta(points, rows, new, old, n_clusters=2)
    >>> keras.ops.convert_to_numpy(sums).tolist(), keras.ops.convert_to_numpy(counts).tolist()
    ([[2.0, 3.0], [4.0, 4.0]], [1, 0])
    """
    points = keras.ops.take(x, rows, axis=0)
    sums_in, counts_in = cluster_sums(points, new, n_clusters)
    sums_out, counts_out = cluster_sums(points, old, n_clusters)
    return sums_in - sums_out, counts_in - counts_out


def on_accelerator():
    """Whether the Keras backend computes on a GPU/TPU (the step then gets bigger chunks and XLA)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    return False
