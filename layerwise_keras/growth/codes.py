"""The code functions: how nearest-centroid scores become a stage's code, one function per assignment.

Each takes the (whitened) embeddings `x [..., dim]`, their scores
`x . 2c_k - ||c_k||^2 [..., K]` (higher = nearer), K, the `"soft"`
temperature and the `"nearest"` q, and returns the code `[..., K]`, written
with `keras.ops` so it runs on every backend and on symbolic tensors (the
portable export applies the same functions to `keras.Input` tensors).
`growth.kinds` names the function of each assignment; `ClusterAssignment`
calls it.

Example: the codes of a point at the first of two centroids.

>>> import numpy as np
>>> x = np.array([[1.0, 0.0]], "float32")
>>> centroids = np.array([[1.0, 0.0], [-1.0, 0.0]], "float32")
>>> scores = x @ (2 * centroids.T) - (centroids ** 2).sum(1)  # what ClusterAssignment computes
>>> for code in (hard_code, nearest_code, soft_code, triangle_code):
...     print(code.__name__, np.round(np.asarray(code(x, scores, 2, temperature=4.0, q=1)), 3))
hard_code [[1. 0.]]
nearest_code [[1. 0.]]
soft_code [[0.731 0.269]]
triangle_code [[1. 0.]]
"""

from keras import ops


def nearest_mask(scores, q):
    """The multi-hot mask of the `q` highest scores (the q nearest centroids), with `keras.ops`.

    Exactly `q` ones per position. Ties are broken toward the lower centroid
    index, as `argmax` does: the mask holds every centroid scoring above the
    q-th highest score, then the lowest-indexed of those scoring exactly the
    q-th highest until there are q. So `q = 1` is `one_hot(argmax(scores))`,
    the hard assignment, bit for bit. The result does not depend on how a
    backend's `top_k` orders ties (only the q-th value is taken from it).

    Args:
        scores: float tensor `[..., K]`, higher = nearer.
        q: int, 1 <= q <= K.

    Returns:
        Tensor `[..., K]` of 0/1 in `scores`' dtype.

    Example:

    >>> import numpy as np
    >>> np.asarray(nearest_mask(np.array([[0.5, 2.0, 0.5, 1.0]], "float32"), 2))
    array([[0., 1., 0., 1.]], dtype=float32)
    """
    threshold = ops.top_k(scores, int(q), sorted=True)[0][..., int(q) - 1 :]
    above = ops.cast(ops.greater(scores, threshold), scores.dtype)
    tied = ops.cast(ops.equal(scores, threshold), scores.dtype)
    room = float(q) - ops.sum(above, axis=-1, keepdims=True)
    return above + tied * ops.cast(ops.less_equal(ops.cumsum(tied, axis=-1), room), scores.dtype)


def hard_code(x, scores, n_clusters, temperature=1.0, q=1):
    """The one-hot vector of the nearest centroid (the paper).

    Example:

    >>> import numpy as np
    >>> np.asarray(hard_code(np.zeros((1, 2), "float32"), np.array([[0.1, 0.7, 0.2]], "float32"), 3))
    array([[0., 1., 0.]], dtype=float32)
    """
    return ops.one_hot(ops.argmax(scores, axis=-1), n_clusters, dtype=x.dtype)


def nearest_code(x, scores, n_clusters, temperature=1.0, q=1):
    """The multi-hot mask of the `q` nearest centroids (Brutzkus et al. 2022), see `nearest_mask`.

    Example:

    >>> import numpy as np
    >>> np.asarray(nearest_code(np.zeros((1, 2), "float32"), np.array([[0.1, 0.7, 0.2]], "float32"), 3, q=2))
    array([[0., 1., 1.]], dtype=float32)
    """
    return nearest_mask(scores, q)


def _squared_distances(x, scores):
    # ||x - c||^2 = ||x||^2 - scores, clamped at 0 against rounding.
    return ops.relu(ops.sum(ops.square(x), axis=-1, keepdims=True) - scores)


def soft_code(x, scores, n_clusters, temperature=1.0, q=1):
    """`softmax(-||x - c_k||^2 / temperature)` over the centroids (see the module's example)."""
    return ops.softmax(-_squared_distances(x, scores) / temperature, axis=-1)


def triangle_code(x, scores, n_clusters, temperature=1.0, q=1):
    """`max(0, mean_k(d_k) - d_k)` with `d_k = ||x - c_k||` (Coates, Lee & Ng 2011; see the module's example)."""
    dist = ops.sqrt(_squared_distances(x, scores))
    return ops.relu(ops.mean(dist, axis=-1, keepdims=True) - dist)
