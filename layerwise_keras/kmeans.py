"""K-means clustering for layer-wise training (Keras 3, backend-agnostic).

After each stage's SGD, the stage's conv embeddings of image patches are
clustered with k-means; this module provides the clusterer.  It is written for
large inputs (millions of patches) that may not fit in memory, and it shares
one code path between in-memory arrays and streamed `tf.data.Dataset`s.

The algorithm:

1. **One scan of the input.**  The input (a NumPy array, anything
   `np.asarray` handles such as a `tf.Tensor` or a JAX array, or a
   `tf.data.Dataset` of `[b, n_features]` float batches) is read through a
   *chunk source* that yields float32 NumPy chunks of at most `batch_size`
   rows.  The scan counts points, rejects NaN/Inf, and draws a uniform sample
   of `n_clusters * max_points_per_centroid` points the way faiss does: each
   point gets a uniform random key from `np.random.default_rng(seed)`, drawn in
   stream order, and the points with the smallest keys are kept (the reservoir
   and each chunk are merged with `np.argpartition`).  The sample is put back
   in stream order, so it depends only on the seed and the data order, not on
   how the data is batched.
2. **Seeding.**  Greedy k-means++ as in scikit-learn: at each step
   `2 + int(log(n_clusters))` candidates are drawn with probability
   proportional to D(x)^2, and the one that lowers the potential most is kept.
   `init="random"` picks `n_clusters` distinct random points instead, and an
   array of initial centroids may be given.
3. **Lloyd iterations.**  Each iteration is one pass over the points: the
   nearest centroid of each point (the largest score `x.c - ||c||^2 / 2`,
   i.e. the smallest squared distance `||x||^2 - 2 x.c + ||c||^2`), then
   the per-cluster sums and counts, accumulated in float64 on the host; the
   new centroids are `sums / counts`.  The points are chunked and every
   compiled function (`tf.function(jit_compile=...)` on TensorFlow,
   `jax.jit` on JAX, plain `keras.ops` elsewhere) sees a fixed chunk shape.
   *In-memory points* (an array, or the sample) are copied once into a
   padded backend tensor `[chunks, rows, D]`, and a pass is one compiled
   call over all chunks (`keras.ops.map`); the sums are recomputed from all
   points when more than a third of them changed cluster, else only the
   points that moved are gathered and their sums moved between clusters
   (not under XLA, where every new count would be a new compiled shape).
   *Streamed points* (a `Dataset` with `max_points_per_centroid=None`, and
   the multi-replica `distribute` path) are fed chunk by chunk to one
   compiled step that also returns the chunk's sums, counts and inertia.
   The loop stops when the sum of squared centroid shifts is at most `tol`
   times the mean per-feature variance of the data (scikit-learn's
   criterion) or after `max_iter` iterations.  A last assignment pass
   computes `inertia_` and `counts_` for the returned centroids.
4. **Empty clusters.**  A cluster that receives no point is re-seeded from
   the points farthest from their centroid (distinct points, largest distance
   first; a running top list is kept while streaming, so no extra pass is
   needed), and that point is taken out of its old cluster.  When there are
   fewer distinct points than clusters, the surplus clusters get duplicate
   centroids; nothing ever becomes NaN.

Example:

>>> import numpy as np
>>> from layerwise_keras.kmeans import KMeans
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(c, 0.1, size=(100, 2)) for c in (0, 5, 10)])
>>> km = KMeans(n_clusters=3, seed=0).fit(x)
>>> km.cluster_centers_.shape
(3, 2)
>>> sorted(np.bincount(km.predict(x)).tolist())
[100, 100, 100]
"""

import functools
import math
import warnings

import keras
import numpy as np

__all__ = ["KMeans", "NotFittedError"]

# Size, per centroid, of the sample that k-means++ runs on when Lloyd streams.
_INIT_POINTS_PER_CENTROID = 256


class NotFittedError(ValueError, AttributeError):
    """Raised when `KMeans.predict` is called before `KMeans.fit`."""


# --------------------------------------------------------------------------
# The compiled Lloyd step
# --------------------------------------------------------------------------


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


def _lloyd_step(x, w, centroids):
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

    >>> sums, counts, inertia, min_dist, assign = _lloyd_step(x, w, centroids)
    """
    ops = keras.ops
    k = centroids.shape[0]
    assign, min_dist = _nearest(x, centroids)
    sums = ops.segment_sum(x * ops.expand_dims(w, 1), assign, num_segments=k)
    counts = ops.segment_sum(w, assign, num_segments=k)
    inertia = ops.sum(w * min_dist)
    return sums, counts, inertia, min_dist, assign


def _resident_pass(chunks, chunks_sq, centroids):
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

    >>> assign, min_dist = _resident_pass(keras.ops.zeros((2, 8, 3)), keras.ops.zeros((2, 8)), keras.ops.ones((4, 3)))
    """
    return keras.ops.map(lambda chunk: _nearest(chunk[0], centroids, chunk[1]), (chunks, chunks_sq))


def _cluster_sums(x, assign, n_clusters):
    """Per-cluster sums and counts of the rows of `x`; rows assigned to the dummy id `n_clusters` are left out.

    Args:
        x: float32 tensor `[M, D]`.
        assign: int32 tensor `[M]` of cluster ids in `0..n_clusters`.
        n_clusters: the number of clusters `K` (a Python int).

    Returns:
        Tuple `(sums, counts)`: float32 `[K, D]` and int32 `[K]`.

    Example:

    >>> sums, counts = _cluster_sums(x, assign, n_clusters=256)
    """
    ops = keras.ops
    sums = ops.segment_sum(x, assign, num_segments=n_clusters + 1)
    counts = ops.segment_sum(ops.ones_like(assign), assign, num_segments=n_clusters + 1)
    return sums[:n_clusters], counts[:n_clusters]


def _sums_delta(x, rows, new, old, n_clusters):
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

    >>> sums, counts = _sums_delta(x, rows, new, old, n_clusters=256)
    """
    points = keras.ops.take(x, rows, axis=0)
    sums_in, counts_in = _cluster_sums(points, new, n_clusters)
    sums_out, counts_out = _cluster_sums(points, old, n_clusters)
    return sums_in - sums_out, counts_in - counts_out


def _on_accelerator():
    """Whether the Keras backend computes on a GPU/TPU (the step then gets bigger chunks and XLA)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    return False


# --------------------------------------------------------------------------
# Chunk sources: arrays and datasets behind one interface
# --------------------------------------------------------------------------


def _is_dataset(x):
    return hasattr(x, "as_numpy_iterator") and not isinstance(x, np.ndarray)


def _check_points_array(arr, what, origin=""):
    """Validates rank and dtype of a 2-D point array; returns it unchanged."""
    if arr.ndim != 2:
        hint = ""
        if origin == "dataset":
            hint = (
                " (a tf.data.Dataset element; datasets must yield batches, "
                "e.g. ds.batch(1024))"
                if arr.ndim < 2
                else " (a tf.data.Dataset element)"
            )
        elif arr.ndim > 2:
            hint = "; reshape it yourself, e.g. x.reshape(-1, x.shape[-1])"
        raise ValueError(
            "k-means expects 2-D input [n_points, n_features], got shape "
            f"{tuple(arr.shape)} for the {what}{hint}."
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"k-means expects numeric (real-valued) input, got dtype "
            f"{arr.dtype} for the {what}."
        )
    return arr


class _ArraySource:
    """Chunk source over an in-memory array.

    Args:
        x: array-like `[n_points, n_features]`.
        what: name of the input, for error messages.
        validated: skip validation (for internal float32 arrays).
    """

    is_dataset = False

    def __init__(self, x, what="input", validated=False):
        if not validated:
            try:
                x = np.asarray(x)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"Could not convert the {what} to a numeric array: {e}"
                ) from e
            _check_points_array(x, what)
        self.array = x
        self.n_points = x.shape[0]
        self.dim = x.shape[1]

    def chunks(self, rows):
        """Yields float32 C-contiguous chunks of `rows` rows (last may be short)."""
        for start in range(0, self.n_points, rows):
            yield np.ascontiguousarray(
                self.array[start : start + rows], dtype=np.float32
            )


class _ResidentPoints:
    """An in-memory point set held as one backend tensor for the whole fit.

    Lloyd's iterations on an array (the whole array, or the sample drawn from
    it) do not stream the points from the host on every pass: the points are
    converted once, padded with zero rows to whole chunks, and each pass is
    one compiled call over all chunks (`_resident_pass`).  The per-cluster
    sums and counts are kept up to date incrementally: after a pass only the
    points whose nearest centroid changed are gathered and moved between
    clusters (`_sums_delta`); the running totals are float64 on the host.

    Args:
        array: float32 C-contiguous NumPy array `[n, D]` (already validated).
        rows: rows per chunk.

    Example:

    >>> points = _ResidentPoints(np.zeros((10, 2), np.float32), rows=4)
    >>> points.n_points, tuple(points.chunks3d.shape)
    (10, (3, 4, 2))
    """

    is_dataset = False

    def __init__(self, array, rows):
        n, d = array.shape
        n_chunks = -(-n // rows)
        self.array = array
        self.n_points, self.dim, self.rows = n, d, rows
        if n_chunks * rows != n:
            padded = np.zeros((n_chunks * rows, d), np.float32)
            padded[:n] = array
        else:
            padded = array
        self.x = keras.ops.convert_to_tensor(padded)
        self.chunks3d = keras.ops.reshape(self.x, (n_chunks, rows, d))
        sq = np.einsum("ij,ij->i", padded, padded)  # constant: computed once, not on every pass
        self.chunks_sq = keras.ops.convert_to_tensor(sq.reshape(n_chunks, rows))
        self.assign = self.sums = self.counts = None

    def reset(self, n_clusters):
        """Starts a new run: no point assigned (dummy cluster `n_clusters`), zero sums and counts."""
        self.assign = np.full(self.n_points, n_clusters, np.int32)
        self.sums = np.zeros((n_clusters, self.dim), np.float64)
        self.counts = np.zeros(n_clusters, np.float64)

    def chunks(self, rows):
        """Yields the host array in chunks of `rows` rows (as `_ArraySource.chunks`)."""
        return _ArraySource(self.array, validated=True).chunks(rows)


class _DatasetSource:
    """Chunk source over a `tf.data.Dataset` of `[b, n_features]` batches.

    The dataset's batches are re-batched to exactly `rows` rows (the last
    chunk may be shorter), so the chunks -- and hence all results -- do not
    depend on the dataset's batch size.  A dataset that is sampled gives
    the same results as the same points in an array; one that Lloyd streams
    (`max_points_per_centroid=None`) sums each chunk and an array's points
    are summed incrementally (`_ResidentPoints`), so the two agree up to
    float32 rounding of the per-cluster sums.

    Args:
        ds: the dataset.
        what: name of the input, for error messages.
    """

    is_dataset = True
    n_points = None  # unknown until a pass has been made

    def __init__(self, ds, what="input"):
        spec = getattr(ds, "element_spec", None)
        if isinstance(spec, (tuple, list, dict)):
            raise ValueError(
                f"k-means expects the {what} dataset to yield single "
                f"[batch, n_features] float tensors, got element_spec {spec}; "
                "map it to the features first, e.g. ds.map(lambda x, y: x)."
            )
        self.ds = ds
        self.what = what
        self.dim = None

    def _element(self, el):
        if isinstance(el, (tuple, list, dict)):
            raise ValueError(
                f"k-means expects the {self.what} dataset to yield single "
                f"[batch, n_features] float tensors, got a {type(el).__name__}; "
                "map it to the features first, e.g. ds.map(lambda x, y: x)."
            )
        arr = _check_points_array(np.asarray(el), self.what, origin="dataset")
        if self.dim is None:
            self.dim = arr.shape[1]
        elif arr.shape[1] != self.dim:
            raise ValueError(
                f"The {self.what} dataset yields batches with different "
                f"feature dims: {self.dim} and then {arr.shape[1]}."
            )
        return np.ascontiguousarray(arr, dtype=np.float32)

    def chunks(self, rows):
        """Yields float32 chunks of exactly `rows` rows (the last may be short)."""
        buf, n_buf = [], 0
        for el in self.ds.as_numpy_iterator():
            arr = self._element(el)
            if arr.shape[0] == 0:
                continue
            if n_buf == 0 and arr.shape[0] == rows:
                yield arr
                continue
            buf.append(arr)
            n_buf += arr.shape[0]
            while n_buf >= rows:
                cat = buf[0] if len(buf) == 1 else np.concatenate(buf)
                yield cat[:rows]
                rest = cat[rows:]
                buf, n_buf = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
        if n_buf:
            yield buf[0] if len(buf) == 1 else np.concatenate(buf)


def _make_source(x, what):
    if _is_dataset(x):
        return _DatasetSource(x, what)
    return _ArraySource(x, what)


# --------------------------------------------------------------------------
# Host-side helpers: sampling, moments, farthest points, seeding
# --------------------------------------------------------------------------


class _RandomKeySample:
    """Uniform sample of at most `capacity` points by smallest random key.

    Every point gets a key `rng.random()` in stream order; the `capacity`
    points with the smallest keys are kept.  Because NumPy generators give the
    same numbers whether drawn in one call or in many, the sample depends only
    on the seed and the order of the points, not on the chunking.

    Args:
        capacity: sample size.
        rng: `np.random.Generator` used for the keys.
    """

    def __init__(self, capacity, rng):
        self.capacity = int(capacity)
        self.rng = rng
        self.size = 0
        self.keys = self.index = self.rows = None

    def _grow(self, needed, dim):
        alloc = 0 if self.keys is None else self.keys.shape[0]
        if needed <= alloc:
            return
        new = min(self.capacity, max(needed, 2 * alloc, 1024))
        keys = np.empty(new, np.float64)
        index = np.empty(new, np.int64)
        rows = np.empty((new, dim), np.float32)
        if self.size:
            keys[: self.size] = self.keys[: self.size]
            index[: self.size] = self.index[: self.size]
            rows[: self.size] = self.rows[: self.size]
        self.keys, self.index, self.rows = keys, index, rows

    def add(self, chunk, start):
        """Offers the points of `chunk` (global indices from `start`)."""
        b = chunk.shape[0]
        keys = self.rng.random(b)
        pos = 0
        if self.size < self.capacity:
            take = min(self.capacity - self.size, b)
            self._grow(self.size + take, chunk.shape[1])
            sl = slice(self.size, self.size + take)
            self.keys[sl] = keys[:take]
            self.index[sl] = np.arange(start, start + take)
            self.rows[sl] = chunk[:take]
            self.size += take
            pos = take
        if pos == b:
            return
        # Reservoir full: merge with argpartition, replacing evicted slots.
        keys = keys[pos:]
        cand = np.flatnonzero(keys < self.keys.max())
        if cand.size == 0:
            return
        all_keys = np.concatenate([self.keys, keys[cand]])
        keep = np.argpartition(all_keys, self.capacity - 1)[: self.capacity]
        mask = np.zeros(all_keys.shape[0], bool)
        mask[keep] = True
        evict = np.flatnonzero(~mask[: self.capacity])
        enter = cand[np.flatnonzero(mask[self.capacity :])]
        self.keys[evict] = keys[enter]
        self.index[evict] = start + pos + enter
        self.rows[evict] = chunk[pos:][enter]

    def result(self):
        """Returns the sampled rows `[size, D]` in stream order."""
        order = np.argsort(self.index[: self.size], kind="stable")
        return self.rows[: self.size][order]


class _Moments:
    """Streaming per-feature mean/variance (Chan et al.'s parallel merge)."""

    def __init__(self):
        self.n = 0
        self.mean = self.m2 = None

    def update(self, chunk):
        c = chunk.astype(np.float64)
        mean = c.mean(axis=0)
        self.merge(c.shape[0], mean, np.square(c - mean).sum(axis=0))

    def merge(self, n, mean, m2):
        """Adds another set's count, per-feature mean and sum of squared deviations."""
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + np.square(delta) * (self.n * n / total)
        self.n = total

    def mean_variance(self):
        return float(np.mean(self.m2 / self.n)) if self.n else 0.0


def _all_process_moments(moments, dim):
    """The moments of all processes' points (merged in process order, so identical on every process)."""
    from layerwise_keras import distribute_jax

    row = np.zeros(1 + 2 * dim, np.float64)
    if moments.n:
        row[0], row[1 : 1 + dim], row[1 + dim :] = moments.n, moments.mean, moments.m2
    merged = _Moments()
    for r in distribute_jax.process_allgather(row[None]):
        merged.merge(int(r[0]), r[1 : 1 + dim], r[1 + dim :])
    return merged


class _FarthestPoints:
    """Running list of the `capacity` distinct points farthest from their centroid.

    Kept sorted by decreasing distance; used to re-seed empty clusters after
    an assignment pass without a second pass over the data.
    """

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self.dist = self.rows = self.assign = None

    def update(self, dist, rows, assign):
        cap = self.capacity
        if self.dist is not None and self.dist.shape[0] >= cap:
            sel = np.flatnonzero(dist > self.dist[-1])
        else:
            sel = np.arange(dist.shape[0])
        if sel.size == 0:
            return
        if sel.size > cap:
            sel = np.sort(sel[np.argpartition(-dist[sel], cap - 1)[:cap]])
        d, r, a = dist[sel], rows[sel], assign[sel]
        if self.dist is not None:
            d = np.concatenate([self.dist, d])
            r = np.concatenate([self.rows, r])
            a = np.concatenate([self.assign, a])
        order = np.argsort(-d, kind="stable")
        d, r, a = d[order], np.ascontiguousarray(r[order]), a[order]
        # Drop exact duplicate rows, keeping the farthest occurrence.
        row_keys = r.view(np.dtype((np.void, r.dtype.itemsize * r.shape[1]))).ravel()
        _, first = np.unique(row_keys, return_index=True)
        if first.shape[0] < d.shape[0]:
            first.sort()
            d, r, a = d[first], r[first], a[first]
        self.dist, self.rows, self.assign = d[:cap], r[:cap], a[:cap]


def _sq_dists(c, x, x_sq):
    """Squared distances `[len(c), len(x)]` in float32, clamped at 0."""
    d = x_sq[None, :] - 2.0 * (c @ x.T) + np.einsum("ij,ij->i", c, c)[:, None]
    return np.maximum(d, 0.0, out=d)


def _kmeans_plusplus(x, n_clusters, rng, n_local_trials=None):
    """Greedy k-means++ seeding (as in scikit-learn).

    Args:
        x: float32 array `[n, D]` with `n >= n_clusters`.
        n_clusters: number of centroids.
        rng: `np.random.Generator`.
        n_local_trials: candidates per step; default `2 + int(log(n_clusters))`.

    Returns:
        float32 array `[n_clusters, D]` of initial centroids (rows of `x`).
    """
    n, d = x.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    x_sq = np.einsum("ij,ij->i", x, x)
    centers = np.empty((n_clusters, d), np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = _sq_dists(x[first : first + 1], x, x_sq)[0]
    potential = closest.sum(dtype=np.float64)
    for c in range(1, n_clusters):
        rand_vals = rng.random(n_local_trials) * potential
        cand = np.searchsorted(np.cumsum(closest, dtype=np.float64), rand_vals)
        np.minimum(cand, n - 1, out=cand)
        dist = _sq_dists(x[cand], x, x_sq)
        np.minimum(closest[None, :], dist, out=dist)
        pots = dist.sum(axis=1, dtype=np.float64)
        best = int(np.argmin(pots))
        potential = pots[best]
        closest = dist[best]
        centers[c] = x[cand[best]]
    return centers


def _update_centroids(sums, counts, old, far):
    """New centroids from float64 `sums`/`counts`, re-seeding empty clusters.

    Modifies `sums` and `counts` in place.  Returns `(centroids, n_empty)`.
    """
    empty = np.flatnonzero(counts == 0)
    if empty.size and far is not None and far.dist is not None:
        n_cand = far.dist.shape[0]
        used = np.zeros(n_cand, bool)
        for i, j in enumerate(empty):
            p = i % n_cand  # cycles (duplicates) only if too few distinct points
            point = far.rows[p].astype(np.float64)
            if not used[p]:
                used[p] = True
                donor = far.assign[p]
                if counts[donor] > 1:  # take the point out of its old cluster
                    sums[donor] -= point
                    counts[donor] -= 1
            sums[j] = point
            counts[j] = 1
    new = old.astype(np.float64)
    nonempty = counts > 0
    new[nonempty] = sums[nonempty] / counts[nonempty, None]
    return new.astype(np.float32), int(empty.size)


def _check_int(name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


# --------------------------------------------------------------------------
# KMeans
# --------------------------------------------------------------------------


class KMeans:
    """K-means clustering with a compiled, streamed Lloyd step.

    Fits on NumPy arrays, tensors, or `tf.data.Dataset`s of `[b, n_features]`
    float batches, which are streamed and need not fit in memory.  Like faiss,
    Lloyd runs on a uniform sample of at most
    `n_clusters * max_points_per_centroid` points; see the module docstring
    for the algorithm.

    Args:
        n_clusters: int >= 1, number of clusters K.
        init: `"k-means++"` (greedy k-means++, as in scikit-learn),
            `"random"` (K distinct random points), or an array `[K, D]` of
            initial centroids.
        max_iter: int >= 1, maximum number of Lloyd iterations per init.
        tol: float >= 0.  Lloyd stops when the sum of squared centroid shifts
            is at most `tol` times the mean per-feature variance of the data.
        seed: int >= 0 or None.  The same seed and input give bit-identical
            results.
        max_points_per_centroid: int >= 1 or None.  Lloyd runs on a uniform
            sample of at most `n_clusters * max_points_per_centroid` points.
            With None, Lloyd uses all points: an array is held in memory, a
            `Dataset` is streamed once per iteration (k-means++ then runs on
            a sample of at most `256 * n_clusters` points).
        batch_size: int >= 1, rows per chunk fed to the compiled step, or
            None (default): 16,384 rows on a GPU/TPU; on a CPU about 4M
            distance entries per chunk, `clip(2**22 // n_clusters, 1024,
            16384)` rows (16,384 at K <= 256, 4,096 at K = 1,024), so the
            `[rows, K]` distance matrix stays cache-sized.
        n_init: int >= 1.  Number of seeded inits; the run with the lowest
            inertia is kept.  Ignored (one run) when `init` is an array.
        jit_compile: bool or `"auto"`, XLA-compile the step on the
            TensorFlow backend; `"auto"` (default) compiles it when TensorFlow
            sees a GPU and runs it as a plain `tf.function` graph on CPUs,
            where XLA's argmin made the step slower in an exploratory
            profile on a 2-core CPU (see benchmarks/results/kmeans.md for
            the resulting timings against scikit-learn and faiss).
        verbose: int, 0 = silent, 1 = summary lines, 2 = one line per
            iteration.
        distribute: None (one device); a `tf.distribute.Strategy`
            (TensorFlow backend) to run the step on all its replicas, each on
            a slice of every chunk, with the sums, counts and inertia
            all-reduced (`layerwise_keras.distribute`); or `"processes"`
            (JAX backend, several processes under `keras.distribution`):
            every process calls `fit` with its own shard of the points, and
            the point counts, moments, per-cluster sums, counts and inertia
            are all-reduced over the processes each iteration
            (`layerwise_keras.distribute_jax`); k-means++ seeds on the union
            of the processes' samples (each draws
            `ceil(n_clusters * max_points_per_centroid / processes)` points)
            and empty clusters are re-seeded from the farthest points of all
            processes, so every process ends with the same centroids.

    Attributes (after `fit`):
        cluster_centers_: float32 array `[K, D]`.
        inertia_: float, sum of squared distances of the points Lloyd ran on
            to their nearest final centroid.
        n_iter_: int, Lloyd iterations run (of the kept init).
        counts_: int64 array `[K]`, points per cluster at the final
            assignment.
        n_points_: int, number of points Lloyd ran on (after subsampling).
        n_points_seen_: int, number of points in the input.
        n_reseeded_: int, empty clusters re-seeded during the kept run.
        converged_: bool, whether the kept run met the `tol` criterion.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(c, 0.1, size=(50, 4)) for c in (0, 5)])
    >>> km = KMeans(n_clusters=2, seed=0).fit(x)
    >>> km.cluster_centers_.shape, km.counts_.tolist()
    ((2, 4), [50, 50])
    >>> int(km.predict(x[:1])[0]) == int(km.predict(x[1:2])[0])
    True
    """

    def __init__(
        self,
        n_clusters,
        init="k-means++",
        max_iter=100,
        tol=1e-4,
        seed=0,
        max_points_per_centroid=256,
        batch_size=None,
        n_init=1,
        jit_compile="auto",
        verbose=0,
        distribute=None,
    ):
        self.n_clusters = _check_int("n_clusters", n_clusters, 1)
        self.max_iter = _check_int("max_iter", max_iter, 1)
        try:
            tol = float(tol)
        except (TypeError, ValueError):
            raise ValueError(f"tol must be a number, got {tol!r}.") from None
        if not (tol >= 0 and math.isfinite(tol)):
            raise ValueError(f"tol must be a finite number >= 0, got {tol}.")
        self.tol = tol
        self.seed = _check_int("seed", seed, 0, allow_none=True)
        self.max_points_per_centroid = _check_int(
            "max_points_per_centroid", max_points_per_centroid, 1, allow_none=True
        )
        self.batch_size = _check_int("batch_size", batch_size, 1, allow_none=True)
        self.n_init = _check_int("n_init", n_init, 1)
        if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}.")
        self.jit_compile = jit_compile
        if not (distribute is None or distribute == "processes" or hasattr(distribute, "num_replicas_in_sync")):
            raise ValueError(
                f"distribute must be None, a tf.distribute.Strategy or 'processes', got {distribute!r}."
            )
        if distribute == "processes" and keras.backend.backend() != "jax":
            raise ValueError("KMeans(distribute='processes') needs the JAX backend (several JAX processes).")
        self.distribute = distribute
        self.verbose = int(verbose)
        self.init = self._check_init(init)
        self._step = None
        self._resident = None

    def _check_init(self, init):
        if isinstance(init, str):
            if init not in ("k-means++", "random"):
                raise ValueError(
                    f"Unknown init {init!r}; expected 'k-means++', 'random' or "
                    f"an array of shape [n_clusters, n_features]."
                )
            return init
        try:
            arr = np.array(init)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Could not convert init to an array: {e}") from e
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"init must be 'k-means++', 'random' or a numeric array, got "
                f"{type(init).__name__} with dtype {arr.dtype}."
            )
        if arr.ndim != 2 or arr.shape[0] != self.n_clusters:
            raise ValueError(
                f"init array must have shape [n_clusters={self.n_clusters}, "
                f"n_features], got shape {tuple(arr.shape)}."
            )
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise ValueError(
                f"init array contains {n_bad} non-finite values (NaN or Inf)."
            )
        return arr.astype(np.float32)

    def __repr__(self):
        init = self.init if isinstance(self.init, str) else "array"
        return (
            f"KMeans(n_clusters={self.n_clusters}, init={init!r}, "
            f"max_iter={self.max_iter}, tol={self.tol}, seed={self.seed}, "
            f"max_points_per_centroid={self.max_points_per_centroid}, "
            f"batch_size={self.batch_size}, n_init={self.n_init})"
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_step"] = state["_resident"] = None  # compiled functions are not picklable
        if state["distribute"] != "processes":
            state["distribute"] = None  # nor are strategies
        return state

    def _log(self, level, msg):
        if self.verbose >= level:
            print(f"KMeans: {msg}", flush=True)

    # -- compiled step -------------------------------------------------------

    def _chunk_rows(self):
        """Rows per chunk: `batch_size`; if None, 16,384 on an accelerator, else about 4M distance entries."""
        if self.batch_size is not None:
            return self.batch_size
        if _on_accelerator():
            return 16384
        return int(min(16384, max(1024, 2**22 // self.n_clusters)))

    def _xla(self):
        """Whether `_compile` uses XLA: always on JAX, per `jit_compile` on TensorFlow."""
        backend = keras.backend.backend()
        if backend == "tensorflow":
            return _on_accelerator() if self.jit_compile == "auto" else self.jit_compile
        return backend == "jax"

    def _compile(self, fn):
        """Compiles `fn` for the backend: `tf.function` (XLA per `jit_compile`), `jax.jit`, else as is."""
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            # A fresh partial per instance: tf.function's "frequent retracing"
            # detector is keyed by the function's code object, so it would
            # otherwise count the (single) trace of every KMeans instance
            # against the shared function and warn.
            return tf.function(functools.partial(fn), jit_compile=self._xla(), reduce_retracing=True)
        if backend == "jax":
            import jax

            return jax.jit(fn)
        return fn

    def _get_step(self):
        """Returns the Lloyd step, compiled once for this instance."""
        if self._step is None:
            if self._replicas() > 1 and keras.backend.backend() != "tensorflow":
                raise ValueError("KMeans(distribute=...) takes a tf.distribute.Strategy: TensorFlow backend only.")
            self._step = self._compile(_lloyd_step)
            if self._replicas() > 1:
                from layerwise_keras.distribute import replicated_step

                self._step = replicated_step(self.distribute, self._step)
        return self._step

    def _resident_fns(self):
        """The compiled `_resident_pass`, `_cluster_sums` and `_sums_delta` of this instance."""
        if self._resident is None:
            k = self.n_clusters
            self._resident = (
                self._compile(_resident_pass),
                self._compile(functools.partial(_cluster_sums, n_clusters=k)),
                self._compile(functools.partial(_sums_delta, n_clusters=k)),
            )
        return self._resident

    def _use_resident(self):
        """Whether Lloyd runs on device-resident points (not with a multi-replica `distribute`)."""
        return self._replicas() == 1

    def _replicas(self):
        """Replicas of the `tf.distribute` strategy (1 without one)."""
        return 1 if self.distribute in (None, "processes") else self.distribute.num_replicas_in_sync

    def _processes(self):
        """JAX processes clustering together (1 unless `distribute="processes"` under `jax.distributed`)."""
        if self.distribute != "processes":
            return 1
        from layerwise_keras import distribute_jax

        return distribute_jax.process_count()

    def _reduce_pass(self, sums, counts, inertia, far, n_track):
        """Sums one pass's results over the processes; the farthest points of all processes if a cluster is empty."""
        from layerwise_keras import distribute_jax

        sums, counts, inertia = distribute_jax.process_sum([sums, counts, np.float64(inertia)])
        if n_track > 0 and np.any(counts == 0):  # the same decision on every process
            if far is None or far.dist is None:  # no point here: take part with empty arrays
                d = sums.shape[1]
                local = (np.zeros(0, np.float32), np.zeros((0, d), np.float32), np.zeros(0, np.int32))
            else:
                local = (far.dist, far.rows, far.assign)
            far = _FarthestPoints(n_track)
            far.update(*(distribute_jax.process_allgather(a) for a in local))
        else:
            far = None
        return sums, counts, float(inertia), far

    def _run_chunk(self, chunk, rows, centroids):
        """Pads `chunk` to `rows` rows and runs the step; returns NumPy outputs."""
        b = chunk.shape[0]
        w = np.zeros(rows, np.float32)
        w[:b] = 1.0
        if b < rows:
            padded = np.zeros((rows, chunk.shape[1]), np.float32)
            padded[:b] = chunk
            chunk = padded
        to_tensor = keras.ops.convert_to_tensor
        outs = self._get_step()(to_tensor(chunk), to_tensor(w), to_tensor(centroids))
        return tuple(keras.ops.convert_to_numpy(o) for o in outs)

    def _assign_pass(self, source, rows, centroids, n_track):
        """One pass: float64 sums/counts/inertia and the farthest points."""
        if isinstance(source, _ResidentPoints):
            return self._resident_assign_pass(source, centroids, n_track)
        k, d = centroids.shape
        sums = np.zeros((k, d), np.float64)
        counts = np.zeros(k, np.float64)
        inertia = 0.0
        far = _FarthestPoints(n_track) if n_track > 0 else None
        for chunk in source.chunks(rows):
            b = chunk.shape[0]
            s, c, inert, min_dist, assign = self._run_chunk(chunk, rows, centroids)
            sums += s
            counts += c
            inertia += float(inert)
            if far is not None:
                far.update(min_dist[:b], chunk, assign[:b])
        return sums, counts, inertia, far

    def _resident_assign_pass(self, source, centroids, n_track):
        """`_assign_pass` on a `_ResidentPoints`: one compiled call, then the sums of the points that moved.

        When more than a third of the points changed cluster (always on a
        run's first pass), the sums are recomputed from all points instead
        of moving the changed ones (one segment sum instead of a gather and
        two).  Under XLA (JAX, or TensorFlow on a GPU/TPU) they are always
        recomputed: each new number of moved points would be a new compiled
        shape, and a segment sum over all points is cheap on an accelerator.
        """
        pass_fn, sums_fn, delta_fn = self._resident_fns()
        to_tensor, to_numpy = keras.ops.convert_to_tensor, keras.ops.convert_to_numpy
        k, n = self.n_clusters, source.n_points
        assign, min_dist = pass_fn(source.chunks3d, source.chunks_sq, to_tensor(centroids))
        assign = to_numpy(assign).reshape(-1)
        min_dist = to_numpy(min_dist).reshape(-1)[:n]
        assign[n:] = k  # padding rows: the dummy cluster
        moved = np.flatnonzero(assign[:n] != source.assign).astype(np.int32)
        if 3 * moved.size > n or (moved.size and self._xla()):
            sums, counts = sums_fn(source.x, to_tensor(assign))
            source.sums = to_numpy(sums).astype(np.float64)
            source.counts = to_numpy(counts).astype(np.float64)
        elif moved.size:
            # Pad to a power of two (>= 1024) so the compiled delta sees few shapes.
            size = max(1024, 1 << int(moved.size - 1).bit_length())
            rows = np.zeros(size, np.int32)
            new = np.full(size, k, np.int32)
            old = new.copy()
            rows[: moved.size] = moved
            new[: moved.size] = assign[moved]
            old[: moved.size] = source.assign[moved]
            sums, counts = delta_fn(source.x, to_tensor(rows), to_tensor(new), to_tensor(old))
            source.sums += to_numpy(sums)
            source.counts += to_numpy(counts)
        assign = assign[:n]
        source.assign = assign
        inertia = float(np.sum(min_dist, dtype=np.float64))
        far = None
        # Only needed to re-seed empty clusters (of all processes' points, under distribute="processes").
        if n_track > 0 and (np.any(source.counts == 0) or self._processes() > 1):
            far = _FarthestPoints(n_track)
            far.update(min_dist, source.array, assign)
        return source.sums.copy(), source.counts.copy(), inertia, far

    # -- fit -----------------------------------------------------------------

    def _scan(self, source, capacity, want_moments):
        """First pass: count, check finiteness, sample, optionally moments."""
        sample = None
        if capacity is not None:
            sample = _RandomKeySample(capacity, np.random.default_rng(self.seed))
        moments = _Moments() if want_moments else None
        n, n_bad, dim = 0, 0, source.dim
        for chunk in source.chunks(self._chunk_rows()):
            bad = chunk.size - np.count_nonzero(np.isfinite(chunk))
            n_bad += int(bad)
            if n_bad == 0:
                if sample is not None:
                    sample.add(chunk, n)
                if moments is not None:
                    moments.update(chunk)
            n += chunk.shape[0]
            dim = chunk.shape[1]
        if dim is None:
            dim = source.dim
        return n, dim, n_bad, sample, moments

    def _initial_centroids(self, points, rng):
        if not isinstance(self.init, str):
            return self.init.copy()
        if self.init == "random":
            idx = rng.choice(points.shape[0], self.n_clusters, replace=False)
            return points[idx].copy()
        return _kmeans_plusplus(points, self.n_clusters, rng)

    def _lloyd(self, source, rows, centroids, tol_abs):
        n_track = self.n_clusters - 1
        if isinstance(source, _ResidentPoints):
            source.reset(self.n_clusters)
        n_reseeded, converged, n_iter = 0, False, 0
        for it in range(1, self.max_iter + 1):
            sums, counts, inertia, far = self._assign_pass(
                source, rows, centroids, n_track
            )
            if self._processes() > 1:
                sums, counts, inertia, far = self._reduce_pass(sums, counts, inertia, far, n_track)
            new, n_empty = _update_centroids(sums, counts, centroids, far)
            n_reseeded += n_empty
            diff = new.astype(np.float64) - centroids.astype(np.float64)
            shift = float(np.sum(np.square(diff)))
            centroids, n_iter = new, it
            self._log(
                2,
                f"iter {it}: inertia={inertia:.6g} shift={shift:.3g} "
                f"(tol {tol_abs:.3g}) re-seeded={n_empty}",
            )
            if shift <= tol_abs:
                converged = True
                break
        sums, counts, inertia, _ = self._assign_pass(source, rows, centroids, 0)
        if self._processes() > 1:
            _, counts, inertia, _ = self._reduce_pass(sums, counts, inertia, None, 0)
        return dict(
            centroids=centroids,
            inertia=inertia,
            counts=np.rint(counts).astype(np.int64),
            n_iter=n_iter,
            n_reseeded=n_reseeded,
            converged=converged,
        )

    def fit(self, x):
        """Clusters the points of `x`.

        Args:
            x: points `[n_points, n_features]`: a NumPy array, anything
                `np.asarray` handles (`tf.Tensor`, JAX array, ...), or a
                `tf.data.Dataset` yielding `[b, n_features]` float batches
                (streamed; iterated once per pass, in a fixed order).

        Returns:
            `self`, with `cluster_centers_`, `inertia_`, `counts_` and the
            other attributes set.

        Raises:
            ValueError: if `x` is not 2-D, not numeric, contains NaN/Inf, has
                no points or fewer points than `n_clusters`, or does not match
                the `init` array's feature dim.

        Example:

        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(1000, 8)).astype("float32")
        >>> km = KMeans(n_clusters=4, max_points_per_centroid=100).fit(x)
        >>> km.n_points_seen_, km.n_points_
        (1000, 400)
        """
        k = self.n_clusters
        source = _make_source(x, "fit input")
        mppc = self.max_points_per_centroid
        streamed = source.is_dataset and mppc is None
        if streamed:  # Lloyd streams; k-means++ runs on a sample
            capacity = k * _INIT_POINTS_PER_CENTROID
        elif source.is_dataset:  # sample (all points if there are few)
            capacity = k * mppc
        elif mppc is not None and source.n_points > k * mppc:
            capacity = k * mppc
        else:  # the whole array is the sample
            capacity = None
        procs = self._processes()
        if procs > 1 and capacity is not None:  # each process samples its share
            capacity = -(-capacity // procs)
        n, dim, n_bad, sample, moments = self._scan(source, capacity, streamed)
        if procs > 1:
            from layerwise_keras import distribute_jax

            local = np.array([n, n_bad, int(n == 0)], np.int64)
            n, n_bad, n_idle = (int(v) for v in distribute_jax.process_sum([local])[0])
            if n_idle and n:
                raise ValueError(
                    f"k-means with distribute='processes': {n_idle} of {procs} processes passed no "
                    "points; every process needs at least one."
                )

        if n == 0:
            raise ValueError(
                "k-means needs at least one point, got an empty input (0 points)."
            )
        if dim == 0:
            raise ValueError(
                f"k-means needs at least one feature, got {n} points with 0 features."
            )
        if n_bad:
            raise ValueError(
                f"The fit input contains {n_bad} non-finite values (NaN or Inf) "
                f"among {n} points x {dim} features (after conversion to "
                "float32); k-means needs finite input."
            )
        if n < k:
            raise ValueError(
                f"k-means with n_clusters={k} needs at least {k} points, got {n}."
            )
        if not isinstance(self.init, str) and self.init.shape[1] != dim:
            raise ValueError(
                f"init array has shape {tuple(self.init.shape)}, but the fit input "
                f"has {dim} features; expected shape ({k}, {dim})."
            )

        if streamed:
            lloyd_source, n_lloyd = source, n
            init_points = sample.result()
            if procs > 1:
                moments = _all_process_moments(moments, dim)
            tol_abs = self.tol * moments.mean_variance()
            self._log(
                1,
                f"streaming all {n} points from the dataset on each Lloyd "
                f"iteration; seeding on {init_points.shape[0]} sampled points.",
            )
        else:
            if sample is not None:
                points = sample.result()
            else:
                points = np.ascontiguousarray(source.array, dtype=np.float32)
            if points.shape[0] < n:
                self._log(
                    1,
                    f"subsampled {points.shape[0]} of {n} points for Lloyd "
                    f"(n_clusters={k} x max_points_per_centroid={mppc}); set "
                    "max_points_per_centroid=None to use all points.",
                )
            n_lloyd = points.shape[0]
            if self._use_resident():
                lloyd_source = _ResidentPoints(points, min(self._chunk_rows(), n_lloyd))
            else:
                lloyd_source = _ArraySource(points, validated=True)
            init_points = points
            moments = _Moments()
            for chunk in lloyd_source.chunks(self._chunk_rows()):
                moments.update(chunk)
            if procs > 1:
                moments = _all_process_moments(moments, dim)
                n_lloyd = moments.n
            tol_abs = self.tol * moments.mean_variance()
        if procs > 1 and isinstance(self.init, str):  # seed on the union of the processes' samples
            seeding = -(-k * _INIT_POINTS_PER_CENTROID // procs)
            if init_points.shape[0] > seeding:
                keep = np.random.default_rng(self.seed).choice(init_points.shape[0], seeding, replace=False)
                init_points = init_points[np.sort(keep)]
            init_points = distribute_jax.process_allgather(init_points)

        rows = min(self._chunk_rows(), n_lloyd)
        n_runs = self.n_init if isinstance(self.init, str) else 1
        if n_runs < self.n_init:
            self._log(1, "init is an array: running a single init.")
        seeds = np.random.SeedSequence(self.seed).spawn(n_runs)
        best, any_reseeded = None, 0
        for run, seed_seq in enumerate(seeds):
            rng = np.random.default_rng(seed_seq)
            centroids = self._initial_centroids(init_points, rng)
            result = self._lloyd(lloyd_source, rows, centroids, tol_abs)
            any_reseeded += result["n_reseeded"]
            self._log(
                1,
                f"init {run + 1}/{n_runs}: inertia={result['inertia']:.6g} after "
                f"{result['n_iter']} iterations (converged={result['converged']}).",
            )
            if best is None or result["inertia"] < best["inertia"]:
                best = result
        if any_reseeded:
            warnings.warn(
                f"KMeans re-seeded {any_reseeded} empty cluster(s) during fit "
                f"(n_clusters={k}, {n_lloyd} points); if this keeps happening "
                "the data may have fewer distinct points than clusters.",
                stacklevel=2,
            )

        self.cluster_centers_ = best["centroids"]
        self.inertia_ = float(best["inertia"])
        self.n_iter_ = int(best["n_iter"])
        self.counts_ = best["counts"]
        self.n_points_ = int(n_lloyd)
        self.n_points_seen_ = int(n)
        self.n_reseeded_ = int(best["n_reseeded"])
        self.converged_ = bool(best["converged"])
        self._step_rows = rows
        return self

    # -- predict -------------------------------------------------------------

    def predict(self, x):
        """Returns the index of the nearest centroid for each point.

        Args:
            x: points `[n_points, n_features]`: an array, a tensor, or a
                `tf.data.Dataset` of `[b, n_features]` batches.

        Returns:
            int32 NumPy array `[n_points]` of cluster ids.

        Raises:
            NotFittedError: (a `ValueError`) if `fit` has not been called.
            ValueError: if `x` is not 2-D, not numeric, contains NaN/Inf, or
                its feature dim differs from the fitted one.

        Example:

        >>> import numpy as np
        >>> km = KMeans(n_clusters=2, init=np.array([[0.0], [10.0]]))
        >>> km.fit(np.array([[0.0], [1.0], [9.0], [10.0]])).predict([[2.0], [8.0]])
        array([0, 1], dtype=int32)
        """
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                "This KMeans instance is not fitted yet; call fit(x) before "
                "predict(x)."
            )
        centroids = self.cluster_centers_
        d = centroids.shape[1]
        source = _make_source(x, "predict input")

        def check_dim(dim, shape):
            if dim != d:
                raise ValueError(
                    f"KMeans was fitted on {d} features, but the predict input "
                    f"has {dim} features (shape {shape})."
                )

        if source.dim is not None:
            check_dim(source.dim, tuple(source.array.shape))
        rows = self._step_rows
        labels, n_bad = [], 0
        for chunk in source.chunks(rows):
            check_dim(chunk.shape[1], ("batch",) + tuple(chunk.shape))
            n_bad += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
            if n_bad:
                continue
            assign = self._run_chunk(chunk, rows, centroids)[4]
            labels.append(assign[: chunk.shape[0]])
        if n_bad:
            raise ValueError(
                f"The predict input contains {n_bad} non-finite values (NaN or "
                "Inf, after conversion to float32)."
            )
        if not labels:
            return np.zeros(0, np.int32)
        return np.concatenate(labels).astype(np.int32, copy=False)
