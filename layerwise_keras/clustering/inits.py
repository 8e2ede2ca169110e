"""The seeding of `KMeans`: its `init` argument, each run's initial centroids, the best of `n_init` runs.

This module owns what `init` may be (`check_init`: `"k-means++"`,
`"random"` or an array `[K, D]`), how one run's initial centroids are drawn
from the seeding points (`initial_centroids`: greedy k-means++ as in
scikit-learn, `sampling.kmeans_plusplus`; K distinct random points; or a
copy of the array), and the loop over the `n_init` runs that keeps the one
of lowest inertia (`best_of_inits`; one run with an array `init`).  Each
run's random generator comes from `np.random.SeedSequence(seed).spawn`, so
the same seed gives the same runs.

Example:

>>> points = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
>>> init = check_init("k-means++", n_clusters=8)
>>> centroids = initial_centroids(init, points, 8, np.random.default_rng(0))
>>> centroids.shape, centroids.dtype
((8, 2), dtype('float32'))
>>> all((points == c).all(axis=1).any() for c in centroids)  # k-means++ seeds on the points themselves
True
>>> np.array_equal(centroids, initial_centroids(init, points, 8, np.random.default_rng(0)))  # same seed
True
>>> check_init(np.zeros((8, 3)), n_clusters=8).dtype  # an array init: float32 [K, D]
dtype('float32')
"""

import warnings

import numpy as np

from layerwise_keras.clustering.sampling import kmeans_plusplus

__all__ = ["best_of_inits", "check_init", "initial_centroids"]


def check_init(init, n_clusters):
    """Validates `KMeans(init=...)`: returns the string, or the array as float32 `[n_clusters, D]`.

    Raises:
        ValueError: for an unknown string, a non-numeric array, a wrong
            shape or non-finite values.
    """
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
    if arr.ndim != 2 or arr.shape[0] != n_clusters:
        raise ValueError(
            f"init array must have shape [n_clusters={n_clusters}, "
            f"n_features], got shape {tuple(arr.shape)}."
        )
    n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if n_bad:
        raise ValueError(
            f"init array contains {n_bad} non-finite values (NaN or Inf)."
        )
    return arr.astype(np.float32)


def initial_centroids(init, points, n_clusters, rng):
    """One run's initial centroids `[n_clusters, D]` from the seeding `points`, per the checked `init`."""
    if not isinstance(init, str):
        return init.copy()
    if init == "random":
        idx = rng.choice(points.shape[0], n_clusters, replace=False)
        return points[idx].copy()
    return kmeans_plusplus(points, n_clusters, rng)


def best_of_inits(run, init, n_clusters, n_init, seed, init_points, n_lloyd, log):
    """Runs Lloyd from each of the `n_init` seedings; returns the result of lowest inertia.

    Args:
        run: `centroids -> result dict` (`lloyd.lloyd` on the fit's points).
        init: the checked `init` (`check_init`).
        n_clusters: int, K.
        n_init: int >= 1; one run when `init` is an array.
        seed: int >= 0 or None.
        init_points: float32 `[m, D]`, the points the seeding draws from.
        n_lloyd: int, the points Lloyd runs on (for the warning).
        log: `(level, message)` for the per-init lines (level 1).

    Warns:
        UserWarning: if some run re-seeded empty clusters (the warning
            points at the caller of `KMeans.fit`).
    """
    n_runs = n_init if isinstance(init, str) else 1
    if n_runs < n_init:
        log(1, "init is an array: running a single init.")
    seeds = np.random.SeedSequence(seed).spawn(n_runs)
    best, any_reseeded = None, 0
    for index, seed_seq in enumerate(seeds):
        rng = np.random.default_rng(seed_seq)
        centroids = initial_centroids(init, init_points, n_clusters, rng)
        result = run(centroids)
        any_reseeded += result["n_reseeded"]
        log(
            1,
            f"init {index + 1}/{n_runs}: inertia={result['inertia']:.6g} after "
            f"{result['n_iter']} iterations (converged={result['converged']}).",
        )
        if best is None or result["inertia"] < best["inertia"]:
            best = result
    if any_reseeded:
        warnings.warn(
            f"KMeans re-seeded {any_reseeded} empty cluster(s) during fit "
            f"(n_clusters={n_clusters}, {n_lloyd} points); if this keeps happening "
            "the data may have fewer distinct points than clusters.",
            stacklevel=3,
        )
    return best
