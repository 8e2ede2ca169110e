"""Which compiled Lloyd step `KMeans` runs, and how it is built for the backend.

This module owns the choice between the backends' compilers and the forms
of the step:

* the chunk size the compiled functions see (`chunk_rows`);
* whether the step runs under XLA (`uses_xla`): always on JAX, on
  TensorFlow per `jit_compile` (`"auto"`: XLA on a GPU/TPU, a plain
  `tf.function` graph on CPUs);
* compiling a kernel for the backend (`compile_for_backend`):
  `tf.function(jit_compile=...)` on TensorFlow, `jax.jit` on JAX, plain
  `keras.ops` elsewhere;
* the streamed step (`compiled_lloyd_step`: `kernels.lloyd_step`, run on
  every replica of a `tf.distribute` strategy when `distribute` is one) and
  the device-resident pass with its sums (`compiled_resident_fns`), and
  which of the two an in-memory point set gets (`use_resident`).

`KMeans` builds each compiled function once per instance (the first `fit`
or `predict` traces it) and keeps it; the kernels themselves are in
`layerwise_keras.clustering.kernels`.

Example:

>>> import numpy as np
>>> points = np.random.default_rng(0).normal(size=(100, 4)).astype("float32")
>>> rows = chunk_rows(128, n_clusters=3)  # KMeans(batch_size=128): every call sees 128 rows
>>> chunk = np.zeros((rows, 4), "float32")  # one chunk: the 100 points, then zero rows
>>> chunk[:100] = points
>>> w = (np.arange(rows) < 100).astype("float32")  # 1 for the points, 0 for the padding
>>> step = compiled_lloyd_step(jit_compile="auto", distribute=None)
>>> sums, counts, inertia, min_dist, assign = step(chunk, w, points[:3])
>>> tuple(sums.shape), int(keras.ops.sum(counts)), tuple(assign.shape)
((3, 4), 100, (128,))
>>> keras.ops.convert_to_numpy(assign[:3]).tolist()  # each centroid's own point
[0, 1, 2]
"""

import functools

import keras

from layerwise_keras.clustering.kernels import cluster_sums, lloyd_step, on_accelerator, resident_pass, sums_delta

__all__ = [
    "chunk_rows",
    "compile_for_backend",
    "compiled_lloyd_step",
    "compiled_resident_fns",
    "replicas",
    "use_resident",
    "uses_xla",
]


def chunk_rows(batch_size, n_clusters):
    """Rows per chunk: `batch_size`; if None, 16,384 on an accelerator, else about 4M distance entries.

    Args:
        batch_size: int >= 1 or None (`KMeans(batch_size=...)`).
        n_clusters: int >= 1, the number of clusters K.

    Returns:
        int: the rows of every chunk the compiled step sees.

    Example:

    >>> chunk_rows(None, 1024)  # on a CPU
    4096
    """
    if batch_size is not None:
        return batch_size
    if on_accelerator():
        return 16384
    return int(min(16384, max(1024, 2**22 // n_clusters)))


def uses_xla(jit_compile):
    """Whether `compile_for_backend` uses XLA: always on JAX, per `jit_compile` (True, False, "auto") on TensorFlow."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return on_accelerator() if jit_compile == "auto" else jit_compile
    return backend == "jax"


def compile_for_backend(fn, jit_compile):
    """Compiles `fn` for the backend: `tf.function` (XLA per `jit_compile`), `jax.jit`, else as is."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        # A fresh partial per instance: tf.function's "frequent retracing"
        # detector is keyed by the function's code object, so it would
        # otherwise count the (single) trace of every KMeans instance
        # against the shared function and warn.
        return tf.function(functools.partial(fn), jit_compile=uses_xla(jit_compile), reduce_retracing=True)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def replicas(distribute):
    """Replicas of the `tf.distribute` strategy `distribute` (1 without one, or with `"processes"`)."""
    return 1 if distribute in (None, "processes") else distribute.num_replicas_in_sync


def use_resident(distribute):
    """Whether Lloyd runs on device-resident points (not with a multi-replica `distribute`)."""
    return replicas(distribute) == 1


def compiled_lloyd_step(jit_compile, distribute):
    """The compiled `lloyd_step`, run on all replicas of `distribute` when it is a multi-replica strategy.

    Args:
        jit_compile: True, False or "auto" (`KMeans(jit_compile=...)`).
        distribute: None, `"processes"` or a `tf.distribute.Strategy`.

    Returns:
        A function `(x [rows, D], w [rows], centroids [K, D]) ->
        (sums, counts, inertia, min_dist, assign)` of backend tensors.

    Raises:
        ValueError: for a multi-replica strategy on another backend than TensorFlow.
    """
    if replicas(distribute) > 1 and keras.backend.backend() != "tensorflow":
        raise ValueError("KMeans(distribute=...) takes a tf.distribute.Strategy: TensorFlow backend only.")
    step = compile_for_backend(lloyd_step, jit_compile)
    if replicas(distribute) > 1:
        from layerwise_keras.clustering.distribute_tf import replicated_step

        step = replicated_step(distribute, step)
    return step


def compiled_resident_fns(n_clusters, jit_compile):
    """The compiled `resident_pass`, `cluster_sums` and `sums_delta` for `n_clusters` clusters, as a tuple."""
    return (
        compile_for_backend(resident_pass, jit_compile),
        compile_for_backend(functools.partial(cluster_sums, n_clusters=n_clusters), jit_compile),
        compile_for_backend(functools.partial(sums_delta, n_clusters=n_clusters), jit_compile),
    )
