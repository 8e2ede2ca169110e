"""Sampling and seeding for k-means: the faiss-style random-key sample, running moments, farthest points, greedy k-means++, centroid updates.
"""


import numpy as np

from layerwise_keras.clustering import distribute_jax


class RandomKeySample:
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


class Moments:
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


def all_process_moments(moments, dim):
    """The moments of all processes' points (merged in process order, so identical on every process)."""

    row = np.zeros(1 + 2 * dim, np.float64)
    if moments.n:
        row[0], row[1 : 1 + dim], row[1 + dim :] = moments.n, moments.mean, moments.m2
    merged = Moments()
    for r in distribute_jax.process_allgather(row[None]):
        merged.merge(int(r[0]), r[1 : 1 + dim], r[1 + dim :])
    return merged


class FarthestPoints:
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


def kmeans_plusplus(x, n_clusters, rng, n_local_trials=None):
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


def update_centroids(sums, counts, old, far):
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
