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

    >>> sums, counts, inertia, min_dist, assign = lloyd_step(x, w, centroids)
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

    >>> sums, counts = cluster_sums(x, assign, n_clusters=256)
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

    >>> sums, counts = sums_delta(x, rows, new, old, n_clusters=256)
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
