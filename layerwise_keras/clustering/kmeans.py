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

`KMeans` (this module) is the estimator: its arguments, `fit` in small
steps, `predict`.  The steps live in one module each: the scan
(`layerwise_keras.clustering.scan`), the seeding and the best of `n_init`
runs (`inits`), Lloyd's passes and iterations (`lloyd`), the choice and
compilation of the step (`dispatch`), and the reduction over JAX processes
(`reduction`).

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

import math
import time

import keras
import numpy as np

from layerwise_keras.clustering.dispatch import (
    chunk_rows,
    compiled_lloyd_step,
    compiled_resident_fns,
    use_resident,
    uses_xla,
)
from layerwise_keras.clustering.inits import best_of_inits, check_init
from layerwise_keras.clustering.lloyd import lloyd, resident_assign_pass, run_chunk, streamed_assign_pass
from layerwise_keras.clustering.reduction import all_processes_counts, processes, reduce_pass, union_of_samples
from layerwise_keras.clustering.sampling import all_process_moments, Moments
from layerwise_keras.clustering.scan import check_scanned, INIT_POINTS_PER_CENTROID, sample_capacity, scan
from layerwise_keras.clustering.sources import ArraySource, make_source, ResidentPoints


__all__ = ["KMeans", "NotFittedError"]


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

    Hook (not a constructor argument, not in `get_config`, not pickled):
        on_pass: None (default), or a callable `on_pass(start, end)` called
            after every assignment pass over the points -- the Lloyd
            iterations' passes, then the last pass that scores the final
            centroids, for every init -- with the `time.perf_counter()`
            seconds at which the pass began and ended (before any
            reduction over processes).  Set it on an instance to time the
            passes (as `benchmarks/kmeans.py` does); its return value is
            ignored.

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

    on_pass = None  # the pass hook (see the class docstring); set on an instance

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
        self.init = check_init(init, self.n_clusters)
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
        state.pop("on_pass", None)  # a hook is a runtime callable, often a closure
        return state

    def _log(self, level, msg):
        if self.verbose >= level:
            print(f"KMeans: {msg}", flush=True)

    # -- compiled step and passes --------------------------------------------

    def _chunk_rows(self):
        """Rows per chunk (`dispatch.chunk_rows` of `batch_size` and `n_clusters`)."""
        return chunk_rows(self.batch_size, self.n_clusters)

    def _processes(self):
        """JAX processes clustering together (`reduction.processes`)."""
        return processes(self.distribute)

    def _get_step(self):
        """Returns the Lloyd step, compiled once for this instance."""
        if self._step is None:
            self._step = compiled_lloyd_step(self.jit_compile, self.distribute)
        return self._step

    def _resident_fns(self):
        """The compiled `resident_pass`, `cluster_sums` and `sums_delta` of this instance."""
        if self._resident is None:
            self._resident = compiled_resident_fns(self.n_clusters, self.jit_compile)
        return self._resident

    def _assign_pass(self, source, rows, centroids, n_track):
        """One pass: float64 sums/counts/inertia and the farthest points; reported to `on_pass`."""
        start = time.perf_counter() if self.on_pass is not None else None
        if isinstance(source, ResidentPoints):
            result = resident_assign_pass(
                self._resident_fns(), uses_xla(self.jit_compile), self._processes() > 1, source, centroids, n_track
            )
        else:
            result = streamed_assign_pass(self._get_step(), source, rows, centroids, n_track)
        if self.on_pass is not None:
            self.on_pass(start, time.perf_counter())
        return result

    # -- fit -----------------------------------------------------------------

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
        capacity = sample_capacity(source, streamed, self.n_clusters, self.max_points_per_centroid, self._processes())
        n, dim, n_bad, sample, moments = scan(source, self._chunk_rows(), capacity, streamed, self.seed)
        n, n_bad = all_processes_counts(n, n_bad, self._processes())
        check_scanned(n, dim, n_bad, self.n_clusters, self.init)
        lloyd_source, n_lloyd, init_points, tol_abs = self._lloyd_input(source, streamed, n, dim, sample, moments)
        rows = min(self._chunk_rows(), n_lloyd)
        reduce = reduce_pass if self._processes() > 1 else None

        def run(centroids):
            return lloyd(self._assign_pass, lloyd_source, rows, centroids, tol_abs, self.max_iter, self.n_clusters,
                         reduce=reduce, log=self._log)

        best = best_of_inits(run, self.init, self.n_clusters, self.n_init, self.seed, init_points, n_lloyd, self._log)

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

    # -- what Lloyd runs on ----------------------------------------------------

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
            if use_resident(self.distribute):
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
            init_points = union_of_samples(init_points, -(-k * INIT_POINTS_PER_CENTROID // procs), self.seed)
        return lloyd_source, n_lloyd, init_points, tol_abs

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
            assign = run_chunk(self._get_step(), chunk, rows, centroids)[4]
            labels.append(assign[: chunk.shape[0]])
        if n_bad:
            raise ValueError(
                f"The predict input contains {n_bad} non-finite values (NaN or "
                "Inf, after conversion to float32)."
            )
        if not labels:
            return np.zeros(0, np.int32)
        return np.concatenate(labels).astype(np.int32, copy=False)
