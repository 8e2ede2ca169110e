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
>>> from layerwise_keras.clustering import KMeans
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

from layerwise_keras.clustering import distribute_jax
from layerwise_keras.clustering.kernels import cluster_sums, lloyd_step, on_accelerator, resident_pass, sums_delta
from layerwise_keras.clustering.sampling import (
    all_process_moments,
    FarthestPoints,
    kmeans_plusplus,
    Moments,
    RandomKeySample,
    update_centroids,
)
from layerwise_keras.clustering.sources import ArraySource, make_source, ResidentPoints


__all__ = ["KMeans", "NotFittedError"]


# Size, per centroid, of the sample that k-means++ runs on when Lloyd streams.
_INIT_POINTS_PER_CENTROID = 256


class NotFittedError(ValueError, AttributeError):
    """Raised when `KMeans.predict` is called before `KMeans.fit`."""


def _check_int(name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


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
            all-reduced (`layerwise_keras.clustering.distribute_tf`); or `"processes"`
            (JAX backend, several processes under `keras.distribution`):
            every process calls `fit` with its own shard of the points, and
            the point counts, moments, per-cluster sums, counts and inertia
            are all-reduced over the processes each iteration
            (`layerwise_keras.clustering.distribute_jax`); k-means++ seeds on the union
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

    def get_config(self):
        """Returns the constructor arguments as a dict (`KMeans.from_config` rebuilds an unfitted estimator).

        An array `init` is returned as a nested list; a `distribute` strategy
        is not serialisable and is returned as None.

        Example:

        >>> KMeans.from_config(KMeans(8, max_iter=20).get_config()).max_iter
        20
        """
        return {
            "n_clusters": self.n_clusters,
            "init": self.init if isinstance(self.init, str) else np.asarray(self.init).tolist(),
            "max_iter": self.max_iter,
            "tol": self.tol,
            "seed": self.seed,
            "max_points_per_centroid": self.max_points_per_centroid,
            "batch_size": self.batch_size,
            "n_init": self.n_init,
            "jit_compile": self.jit_compile,
            "verbose": self.verbose,
            "distribute": self.distribute if self.distribute in (None, "processes") else None,
        }

    @classmethod
    def from_config(cls, config):
        """Creates an unfitted `KMeans` from `get_config()`'s dict."""
        return cls(**config)

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
        if on_accelerator():
            return 16384
        return int(min(16384, max(1024, 2**22 // self.n_clusters)))

    def _xla(self):
        """Whether `_compile` uses XLA: always on JAX, per `jit_compile` on TensorFlow."""
        backend = keras.backend.backend()
        if backend == "tensorflow":
            return on_accelerator() if self.jit_compile == "auto" else self.jit_compile
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
            self._step = self._compile(lloyd_step)
            if self._replicas() > 1:
                from layerwise_keras.clustering.distribute_tf import replicated_step

                self._step = replicated_step(self.distribute, self._step)
        return self._step

    def _resident_fns(self):
        """The compiled `resident_pass`, `cluster_sums` and `sums_delta` of this instance."""
        if self._resident is None:
            k = self.n_clusters
            self._resident = (
                self._compile(resident_pass),
                self._compile(functools.partial(cluster_sums, n_clusters=k)),
                self._compile(functools.partial(sums_delta, n_clusters=k)),
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

        return distribute_jax.process_count()

    def _reduce_pass(self, sums, counts, inertia, far, n_track):
        """Sums one pass's results over the processes; the farthest points of all processes if a cluster is empty."""

        sums, counts, inertia = distribute_jax.process_sum([sums, counts, np.float64(inertia)])
        if n_track > 0 and np.any(counts == 0):  # the same decision on every process
            if far is None or far.dist is None:  # no point here: take part with empty arrays
                d = sums.shape[1]
                local = (np.zeros(0, np.float32), np.zeros((0, d), np.float32), np.zeros(0, np.int32))
            else:
                local = (far.dist, far.rows, far.assign)
            far = FarthestPoints(n_track)
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
        if isinstance(source, ResidentPoints):
            return self._resident_assign_pass(source, centroids, n_track)
        k, d = centroids.shape
        sums = np.zeros((k, d), np.float64)
        counts = np.zeros(k, np.float64)
        inertia = 0.0
        far = FarthestPoints(n_track) if n_track > 0 else None
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
        """`_assign_pass` on a `ResidentPoints`: one compiled call, then the sums of the points that moved.

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
            far = FarthestPoints(n_track)
            far.update(min_dist, source.array, assign)
        return source.sums.copy(), source.counts.copy(), inertia, far

    # -- fit -----------------------------------------------------------------

    def _scan(self, source, capacity, want_moments):
        """First pass: count, check finiteness, sample, optionally moments."""
        sample = None
        if capacity is not None:
            sample = RandomKeySample(capacity, np.random.default_rng(self.seed))
        moments = Moments() if want_moments else None
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
        return kmeans_plusplus(points, self.n_clusters, rng)

    def _lloyd(self, source, rows, centroids, tol_abs):
        n_track = self.n_clusters - 1
        if isinstance(source, ResidentPoints):
            source.reset(self.n_clusters)
        n_reseeded, converged, n_iter = 0, False, 0
        for it in range(1, self.max_iter + 1):
            sums, counts, inertia, far = self._assign_pass(
                source, rows, centroids, n_track
            )
            if self._processes() > 1:
                sums, counts, inertia, far = self._reduce_pass(sums, counts, inertia, far, n_track)
            new, n_empty = update_centroids(sums, counts, centroids, far)
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
        source = make_source(x, "fit input")
        streamed = source.is_dataset and self.max_points_per_centroid is None
        n, dim, n_bad, sample, moments = self._scan(source, self._sample_capacity(source, streamed), streamed)
        n, n_bad = self._all_processes_counts(n, n_bad)
        self._check_scanned(n, dim, n_bad)
        lloyd_source, n_lloyd, init_points, tol_abs = self._lloyd_input(source, streamed, n, dim, sample, moments)
        rows = min(self._chunk_rows(), n_lloyd)
        best = self._best_of_inits(lloyd_source, rows, init_points, tol_abs, n_lloyd)

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

    # -- the parts of fit ------------------------------------------------------

    def _sample_capacity(self, source, streamed):
        """How many points the scan keeps as the sample (None: the whole array is the sample)."""
        k, mppc = self.n_clusters, self.max_points_per_centroid
        if streamed:  # Lloyd streams; k-means++ runs on a sample
            capacity = k * _INIT_POINTS_PER_CENTROID
        elif source.is_dataset:  # sample (all points if there are few)
            capacity = k * mppc
        elif mppc is not None and source.n_points > k * mppc:
            capacity = k * mppc
        else:
            capacity = None
        procs = self._processes()
        if procs > 1 and capacity is not None:  # each process samples its share
            capacity = -(-capacity // procs)
        return capacity

    def _all_processes_counts(self, n, n_bad):
        """The point and non-finite counts over all JAX processes (this process's own with one)."""
        procs = self._processes()
        if procs == 1:
            return n, n_bad
        local = np.array([n, n_bad, int(n == 0)], np.int64)
        n, n_bad, n_idle = (int(v) for v in distribute_jax.process_sum([local])[0])
        if n_idle and n:
            raise ValueError(
                f"k-means with distribute='processes': {n_idle} of {procs} processes passed no "
                "points; every process needs at least one."
            )
        return n, n_bad

    def _check_scanned(self, n, dim, n_bad):
        """Refuses what the scan found unusable: no points or features, NaN/Inf, fewer points than clusters."""
        k = self.n_clusters
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

    def _lloyd_input(self, source, streamed, n, dim, sample, moments):
        """What Lloyd runs on: `(source, n_points, seeding points, absolute tolerance)`."""
        k, mppc, procs = self.n_clusters, self.max_points_per_centroid, self._processes()
        if streamed:
            lloyd_source, n_lloyd = source, n
            init_points = sample.result()
            if procs > 1:
                moments = all_process_moments(moments, dim)
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
                lloyd_source = ResidentPoints(points, min(self._chunk_rows(), n_lloyd))
            else:
                lloyd_source = ArraySource(points, validated=True)
            init_points = points
            moments = Moments()
            for chunk in lloyd_source.chunks(self._chunk_rows()):
                moments.update(chunk)
            if procs > 1:
                moments = all_process_moments(moments, dim)
                n_lloyd = moments.n
        tol_abs = self.tol * moments.mean_variance()
        if procs > 1 and isinstance(self.init, str):  # seed on the union of the processes' samples
            seeding = -(-k * _INIT_POINTS_PER_CENTROID // procs)
            if init_points.shape[0] > seeding:
                keep = np.random.default_rng(self.seed).choice(init_points.shape[0], seeding, replace=False)
                init_points = init_points[np.sort(keep)]
            init_points = distribute_jax.process_allgather(init_points)
        return lloyd_source, n_lloyd, init_points, tol_abs

    def _best_of_inits(self, lloyd_source, rows, init_points, tol_abs, n_lloyd):
        """Runs Lloyd from each of the `n_init` seedings; returns the result of lowest inertia."""
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
                f"(n_clusters={self.n_clusters}, {n_lloyd} points); if this keeps happening "
                "the data may have fewer distinct points than clusters.",
                stacklevel=3,
            )
        return best

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
        source = make_source(x, "predict input")

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
