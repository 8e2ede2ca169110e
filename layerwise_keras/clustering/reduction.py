"""What `KMeans(distribute="processes")` reduces over the JAX processes, so all of them end with the same centroids.

Every process calls `fit` with its own shard of the points.  This module
owns the k-means side of that: how many processes cluster together
(`processes`), the point and non-finite counts of all processes
(`all_processes_counts`), the union of the processes' samples that
k-means++ seeds on (`union_of_samples`), and one Lloyd pass's per-cluster
sums, counts and inertia summed over the processes, with the farthest points
of all processes when a cluster is empty (`reduce_pass`).  The moments of
all processes' points are `sampling.all_process_moments`; the collectives
themselves (`process_sum`, `process_allgather`) are
`layerwise_keras.clustering.distribute_jax`.

Every function here gives its input back unchanged (or does nothing) with
one process.

Example:

One process's pass over 6 points and 3 clusters, cluster 2 empty (with one
process, `reduce_pass` gives back its own results):

>>> points = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
>>> assign = np.array([0, 0, 0, 0, 1, 1], np.int32)
>>> sums = np.stack([points[:4].sum(axis=0), points[4:].sum(axis=0), np.zeros(2, np.float32)]).astype(np.float64)
>>> counts, inertia = np.array([4.0, 2.0, 0.0]), 1.5
>>> far = FarthestPoints(2)  # its 2 points farthest from their centroids
>>> far.update(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], np.float32), points, assign)
>>> sums, counts, inertia, far = reduce_pass(sums, counts, inertia, far, n_track=2)
>>> processes("processes"), counts.tolist(), inertia
(1, [4.0, 2.0, 0.0], 1.5)
>>> np.array_equal(far.rows, points[[5, 4]]), far.assign.tolist()  # candidates to re-seed cluster 2
(True, [1, 1])
"""

import numpy as np

from layerwise_keras.clustering import distribute_jax
from layerwise_keras.clustering.sampling import FarthestPoints

__all__ = ["all_processes_counts", "processes", "reduce_pass", "union_of_samples"]


def processes(distribute):
    """JAX processes clustering together (1 unless `distribute="processes"` under `jax.distributed`)."""
    if distribute != "processes":
        return 1

    return distribute_jax.process_count()


def all_processes_counts(n, n_bad, procs):
    """The point and non-finite counts over all `procs` JAX processes (this process's own with one).

    Raises:
        ValueError: if some processes passed points and others none.
    """
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


def union_of_samples(points, size, seed):
    """All processes' seeding points: at most `size` of this process's `points` (seeded), gathered in process order."""
    if points.shape[0] > size:
        keep = np.random.default_rng(seed).choice(points.shape[0], size, replace=False)
        points = points[np.sort(keep)]
    return distribute_jax.process_allgather(points)


def reduce_pass(sums, counts, inertia, far, n_track):
    """Sums one pass's results over the processes; the farthest points of all processes if a cluster is empty.

    Args:
        sums: float64 `[K, D]`, this process's per-cluster sums.
        counts: float64 `[K]`, this process's per-cluster counts.
        inertia: float, this process's inertia.
        far: this process's `FarthestPoints`, or None.
        n_track: how many farthest points to keep (0: none).

    Returns:
        `(sums, counts, inertia, far)` of all processes (`far` None unless
        `n_track > 0` and some cluster is empty everywhere).
    """

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
