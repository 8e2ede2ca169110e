"""ZCA whitening of the vectors a stage clusters, fitted in one pass over a stream.

Whitening before k-means is the largest single factor in the published
results on k-means codes of CIFAR-10 patches (Coates et al. 2011; Thiry et al.
2021: about 16 points). `fit_zca` estimates the mean and covariance of a
stream of `[points, dim]` chunks (float32 products per chunk, float64 sums
over chunks, shifted by the first chunk's mean; the chunking does not change
the result beyond rounding) and returns the ZCA transform
`x -> (x - mean) @ W`, `W = V diag((lambda + eps * mean(lambda))^-1/2) V^T`,
with `V, lambda` the covariance's eigenvectors and eigenvalues. `epsilon` is
relative to the mean eigenvalue, so the same value means the same thing for
raw pixels and for trained embeddings of any scale.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class ZCA:
    """A fitted ZCA transform: `x -> (x - mean) @ matrix`.

    Attributes:
        mean: float32 array `[dim]`.
        matrix: float32 array `[dim, dim]` (symmetric).
        eigenvalues: float64 array `[dim]` of the covariance, descending.
        epsilon: the relative regulariser it was fitted with.
        n_points: how many vectors it was fitted on.
    """

    mean: np.ndarray
    matrix: np.ndarray
    eigenvalues: np.ndarray
    epsilon: float
    n_points: int

    def transform(self, x):
        """Returns `(x - mean) @ matrix` as float32.

        Example:

        Three features of very different spreads come out with unit
        variances and no correlation:

        >>> points = np.random.default_rng(0).normal(size=(1000, 3)) * [1.0, 5.0, 0.2]
        >>> zca = fit_zca(points, epsilon=1e-6)
        >>> z = zca.transform(points)
        >>> z.shape, z.dtype
        ((1000, 3), dtype('float32'))
        >>> np.allclose(np.cov(z, rowvar=False), np.eye(3), atol=1e-3)
        True
        """
        return ((np.asarray(x, dtype="float32") - self.mean) @ self.matrix).astype("float32")


def _chunks(points):
    if hasattr(points, "as_numpy_iterator"):
        yield from points.as_numpy_iterator()
    else:
        yield np.asarray(points)


def fit_zca(points, epsilon=1e-2):
    """Fits the ZCA whitening of a set of vectors.

    Args:
        points: float array `[n, dim]`, or anything with an
            `as_numpy_iterator()` yielding such chunks (one pass is made).
        epsilon: float > 0, added to the eigenvalues as a fraction of their
            mean: small values whiten fully (and amplify noise directions),
            large ones approach plain centring and scaling.

    Returns:
        A `ZCA`.

    Example:

    >>> zca = fit_zca(np.random.default_rng(0).normal(size=(1000, 8)), epsilon=1e-2)
    >>> zca.matrix.shape
    (8, 8)
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"fit_zca: epsilon must be a number > 0, got {epsilon!r}.")
    shift, total, outer, n = None, None, None, 0
    for chunk in _chunks(points):
        chunk = np.asarray(chunk)
        if chunk.ndim != 2:
            raise ValueError(f"fit_zca: expected chunks of shape [points, dim], got {chunk.shape}.")
        if not np.isfinite(chunk).all():
            raise ValueError("fit_zca: the points contain NaN or Inf values.")
        if shift is None:
            # Sums of the points less the first chunk's mean: no cancellation in E[xx] - E[x]E[x] when the
            # mean is large against the spread. Each chunk's products run in float32 (BLAS), summed in float64.
            shift = chunk.astype("float64").mean(axis=0)
            total, outer = np.zeros(chunk.shape[1]), np.zeros((chunk.shape[1], chunk.shape[1]))
        elif chunk.shape[1] != total.shape[0]:
            raise ValueError(f"fit_zca: chunks disagree on dim ({chunk.shape[1]} vs {total.shape[0]}).")
        centred = (chunk - shift).astype("float32")
        total += centred.sum(axis=0, dtype="float64")
        outer += (centred.T @ centred).astype("float64")
        n += chunk.shape[0]
    if n < 2:
        raise ValueError(f"fit_zca: need at least 2 points, got {n}.")
    offset = total / n
    mean = shift + offset
    cov = (outer - n * np.outer(offset, offset)) / (n - 1)
    cov = (cov + cov.T) / 2
    eigenvalues, vectors = np.linalg.eigh(cov)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    scale = float(eigenvalues.mean())
    if not scale > 0:
        raise ValueError("fit_zca: the points have zero variance; there is nothing to whiten.")
    matrix = (vectors / np.sqrt(eigenvalues + float(epsilon) * scale)) @ vectors.T
    order = np.argsort(eigenvalues)[::-1]
    return ZCA(mean.astype("float32"), matrix.astype("float32"), eigenvalues[order], float(epsilon), int(n))


class WhitenedStream:
    """A re-iterable stream whose chunks are those of `stream`, whitened by `zca`.

    Example:

    >>> import tensorflow as tf
    >>> from layerwise_keras.clustering import KMeans
    >>> points = np.random.default_rng(0).normal(size=(1000, 4)).astype("float32")
    >>> stream = tf.data.Dataset.from_tensor_slices(points).batch(256)
    >>> zca = fit_zca(stream)
    >>> next(WhitenedStream(stream, zca).as_numpy_iterator()).shape  # the stream's first chunk, whitened
    (256, 4)
    >>> kmeans = KMeans(n_clusters=4, seed=0).fit(WhitenedStream(stream, zca))
    >>> kmeans.cluster_centers_.shape
    (4, 4)
    """

    def __init__(self, stream, zca):
        self._stream = stream
        self._zca = zca

    def as_numpy_iterator(self):
        for chunk in _chunks(self._stream):
            yield self._zca.transform(chunk)
