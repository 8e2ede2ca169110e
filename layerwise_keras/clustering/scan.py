"""The first pass of `KMeans.fit` over its input: count, check, sample.

This module owns the one scan of the input (`scan`: the number of points
and features, the non-finite values, the uniform sample drawn with
`sampling.RandomKeySample`, the float64 moments when Lloyd streams), how
big that sample is (`sample_capacity`, with `INIT_POINTS_PER_CENTROID`
for the k-means++ sample of a streamed fit), and the errors for what the
scan found unusable (`check_scanned`).  What Lloyd then runs on is decided
by `KMeans.fit`.

Example:

>>> from layerwise_keras.clustering.sources import ArraySource
>>> source = ArraySource(np.random.default_rng(0).normal(size=(10000, 4)).astype(np.float32))
>>> capacity = sample_capacity(source, streamed=False, n_clusters=10, max_points_per_centroid=256, procs=1)
>>> n, dim, n_bad, sample, moments = scan(source, rows=4096, capacity=capacity, want_moments=False, seed=0)
>>> n, dim, n_bad, sample.result().shape, moments
(10000, 4, 0, (2560, 4), None)
>>> check_scanned(n, dim, n_bad, n_clusters=10, init="k-means++")  # usable: no error
>>> check_scanned(n, dim, 3, n_clusters=10, init="k-means++")
Traceback (most recent call last):
...
ValueError: The fit input contains 3 non-finite values (NaN or Inf) among 10000 points x 4 features ...
"""

import numpy as np

from layerwise_keras.clustering.sampling import Moments, RandomKeySample

__all__ = ["INIT_POINTS_PER_CENTROID", "check_scanned", "sample_capacity", "scan"]


# Size, per centroid, of the sample that k-means++ runs on when Lloyd streams.
INIT_POINTS_PER_CENTROID = 256


def sample_capacity(source, streamed, n_clusters, max_points_per_centroid, procs):
    """How many points the scan keeps as the sample (None: the whole array is the sample).

    Args:
        source: the fit input's source (`sources.make_source`).
        streamed: whether Lloyd streams a `Dataset` (k-means++ then runs on
            a sample of `n_clusters * INIT_POINTS_PER_CENTROID` points).
        n_clusters: int, K.
        max_points_per_centroid: int >= 1 or None.
        procs: the JAX processes clustering together; each samples its share.
    """
    k, mppc = n_clusters, max_points_per_centroid
    if streamed:  # Lloyd streams; k-means++ runs on a sample
        capacity = k * INIT_POINTS_PER_CENTROID
    elif source.is_dataset:  # sample (all points if there are few)
        capacity = k * mppc
    elif mppc is not None and source.n_points > k * mppc:
        capacity = k * mppc
    else:
        capacity = None
    if procs > 1 and capacity is not None:  # each process samples its share
        capacity = -(-capacity // procs)
    return capacity


def scan(source, rows, capacity, want_moments, seed):
    """First pass: count, check finiteness, sample, optionally moments.

    Args:
        source: the fit input's source, read in chunks of `rows` rows.
        rows: int, rows per chunk.
        capacity: the sample's size (`sample_capacity`), or None for no sample.
        want_moments: whether to accumulate the float64 moments.
        seed: the seed of the sample's random keys.

    Returns:
        `(n_points, dim, n_bad, sample, moments)`: `sample` a
        `RandomKeySample` or None, `moments` a `Moments` or None (neither
        fed once a non-finite value was seen).
    """
    sample = None
    if capacity is not None:
        sample = RandomKeySample(capacity, np.random.default_rng(seed))
    moments = Moments() if want_moments else None
    n, n_bad, dim = 0, 0, source.dim
    for chunk in source.chunks(rows):
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


def check_scanned(n, dim, n_bad, n_clusters, init):
    """Refuses what the scan found unusable: no points or features, NaN/Inf, fewer points than clusters.

    Raises:
        ValueError: with the reason; also if an array `init` has another
            number of features than the input.
    """
    k = n_clusters
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
    if not isinstance(init, str) and init.shape[1] != dim:
        raise ValueError(
            f"init array has shape {tuple(init.shape)}, but the fit input "
            f"has {dim} features; expected shape ({k}, {dim})."
        )
