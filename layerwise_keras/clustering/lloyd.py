"""Lloyd's iterations of `KMeans`: the assignment passes over the points and the centroid updates.

This module owns one run of Lloyd from given initial centroids (`lloyd`)
and the two kinds of assignment pass it is made of:

* `streamed_assign_pass`: the points come chunk by chunk from a source (a
  streamed `Dataset`, or an array under a multi-replica `distribute`); each
  chunk is padded to the fixed chunk shape and fed to the compiled step
  (`run_chunk`), which also returns the chunk's sums, counts and inertia;
* `resident_assign_pass`: the points are a `sources.ResidentPoints` tensor
  on the device; the pass is one compiled call over all chunks, then the
  per-cluster sums are recomputed from all points or moved for the points
  that changed cluster.

Each pass returns float64 sums and counts, the inertia and the farthest
points (`sampling.FarthestPoints`) that re-seed empty clusters.  The
compiled functions are built by `layerwise_keras.clustering.dispatch`;
`KMeans` picks the pass, and under `distribute="processes"` the loop sums
each pass over the processes (`layerwise_keras.clustering.reduction`).

Example:

Three groups of 50 points around (-3, -3), (0, 0) and (3, 3), streamed in
chunks of 64 rows, from one point of each group:

>>> from layerwise_keras.clustering.dispatch import compiled_lloyd_step
>>> from layerwise_keras.clustering.sources import ArraySource
>>> rng = np.random.default_rng(0)
>>> points = np.concatenate([rng.normal(c, 0.1, size=(50, 2)) for c in (-3, 0, 3)]).astype(np.float32)
>>> step = compiled_lloyd_step(jit_compile="auto", distribute=None)
>>> def assign_pass(source, rows, centroids, n_track):
...     return streamed_assign_pass(step, source, rows, centroids, n_track)
>>> result = lloyd(assign_pass, ArraySource(points), 64, points[[0, 50, 100]], tol_abs=1e-8,
...                max_iter=100, n_clusters=3)
>>> result["centroids"].shape, result["converged"], result["counts"].tolist()
((3, 2), True, [50, 50, 50])
>>> np.allclose(result["centroids"], [[-3, -3], [0, 0], [3, 3]], atol=0.1)
True
"""

import keras
import numpy as np

from layerwise_keras.clustering.sampling import FarthestPoints, update_centroids
from layerwise_keras.clustering.sources import ResidentPoints

__all__ = ["lloyd", "resident_assign_pass", "run_chunk", "streamed_assign_pass"]


def run_chunk(step, chunk, rows, centroids):
    """Pads `chunk` to `rows` rows and runs the compiled `step`; returns NumPy outputs.

    Returns:
        `(sums, counts, inertia, min_dist, assign)` of the chunk (the last
        two over the padded rows).
    """
    b = chunk.shape[0]
    w = np.zeros(rows, np.float32)
    w[:b] = 1.0
    if b < rows:
        padded = np.zeros((rows, chunk.shape[1]), np.float32)
        padded[:b] = chunk
        chunk = padded
    to_tensor = keras.ops.convert_to_tensor
    outs = step(to_tensor(chunk), to_tensor(w), to_tensor(centroids))
    return tuple(keras.ops.convert_to_numpy(o) for o in outs)


def streamed_assign_pass(step, source, rows, centroids, n_track):
    """One pass over `source`'s chunks: float64 sums/counts/inertia and the farthest points."""
    k, d = centroids.shape
    sums = np.zeros((k, d), np.float64)
    counts = np.zeros(k, np.float64)
    inertia = 0.0
    far = FarthestPoints(n_track) if n_track > 0 else None
    for chunk in source.chunks(rows):
        b = chunk.shape[0]
        s, c, inert, min_dist, assign = run_chunk(step, chunk, rows, centroids)
        sums += s
        counts += c
        inertia += float(inert)
        if far is not None:
            far.update(min_dist[:b], chunk, assign[:b])
    return sums, counts, inertia, far


def resident_assign_pass(fns, xla, track_always, source, centroids, n_track):
    """The assignment pass on a `ResidentPoints`: one compiled call, then the sums of the points that moved.

    When more than a third of the points changed cluster (always on a
    run's first pass), the sums are recomputed from all points instead
    of moving the changed ones (one segment sum instead of a gather and
    two).  Under XLA (JAX, or TensorFlow on a GPU/TPU) they are always
    recomputed: each new number of moved points would be a new compiled
    shape, and a segment sum over all points is cheap on an accelerator.

    Args:
        fns: the compiled `(resident_pass, cluster_sums, sums_delta)`
            (`dispatch.compiled_resident_fns`).
        xla: whether they run under XLA (`dispatch.uses_xla`).
        track_always: keep the farthest points even when no cluster is
            empty here (several processes: another process's may be).
        source: the `ResidentPoints`; its running assignment, sums and
            counts are updated.
        centroids: float32 `[K, D]`.
        n_track: how many farthest points to keep (0: none).

    Returns:
        `(sums, counts, inertia, far)`, as `streamed_assign_pass`.
    """
    pass_fn, sums_fn, delta_fn = fns
    to_tensor, to_numpy = keras.ops.convert_to_tensor, keras.ops.convert_to_numpy
    k, n = centroids.shape[0], source.n_points
    assign, min_dist = pass_fn(source.chunks3d, source.chunks_sq, to_tensor(centroids))
    assign = to_numpy(assign).reshape(-1)
    min_dist = to_numpy(min_dist).reshape(-1)[:n]
    assign[n:] = k  # padding rows: the dummy cluster
    moved = np.flatnonzero(assign[:n] != source.assign).astype(np.int32)
    if 3 * moved.size > n or (moved.size and xla):
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
    if n_track > 0 and (np.any(source.counts == 0) or track_always):
        far = FarthestPoints(n_track)
        far.update(min_dist, source.array, assign)
    return source.sums.copy(), source.counts.copy(), inertia, far


def _no_log(level, msg):
    pass


def lloyd(assign_pass, source, rows, centroids, tol_abs, max_iter, n_clusters, reduce=None, log=_no_log):
    """Runs Lloyd from `centroids` until the squared shift is at most `tol_abs` or `max_iter` iterations.

    Empty clusters are re-seeded from the farthest points
    (`sampling.update_centroids`).  A last pass scores the returned
    centroids.

    Args:
        assign_pass: `(source, rows, centroids, n_track) -> (sums, counts,
            inertia, far)`, one assignment pass (`KMeans` gives its own,
            which picks `streamed_assign_pass` or `resident_assign_pass`).
        source: the points (a `ResidentPoints` is reset for this run).
        rows: rows per chunk.
        centroids: float32 `[K, D]`, the initial centroids.
        tol_abs: float, the absolute tolerance on the sum of squared shifts.
        max_iter: int >= 1.
        n_clusters: int, K.
        reduce: None, or `reduction.reduce_pass` to sum every pass over
            the processes.
        log: `(level, message)` for the per-iteration lines (level 2).

    Returns:
        dict with `centroids`, `inertia`, `counts` (int64), `n_iter`,
        `n_reseeded` and `converged`.
    """
    n_track = n_clusters - 1
    if isinstance(source, ResidentPoints):
        source.reset(n_clusters)
    n_reseeded, converged, n_iter = 0, False, 0
    for it in range(1, max_iter + 1):
        sums, counts, inertia, far = assign_pass(
            source, rows, centroids, n_track
        )
        if reduce is not None:
            sums, counts, inertia, far = reduce(sums, counts, inertia, far, n_track)
        new, n_empty = update_centroids(sums, counts, centroids, far)
        n_reseeded += n_empty
        diff = new.astype(np.float64) - centroids.astype(np.float64)
        shift = float(np.sum(np.square(diff)))
        centroids, n_iter = new, it
        log(
            2,
            f"iter {it}: inertia={inertia:.6g} shift={shift:.3g} "
            f"(tol {tol_abs:.3g}) re-seeded={n_empty}",
        )
        if shift <= tol_abs:
            converged = True
            break
    sums, counts, inertia, _ = assign_pass(source, rows, centroids, 0)
    if reduce is not None:
        _, counts, inertia, _ = reduce(sums, counts, inertia, None, 0)
    return dict(
        centroids=centroids,
        inertia=inertia,
        counts=np.rint(counts).astype(np.int64),
        n_iter=n_iter,
        n_reseeded=n_reseeded,
        converged=converged,
    )
