"""Cluster-quality figures: how well clusters match known semantic classes."""

import numpy as np


def purity(cluster_ids, true_ids):
    """Fraction of points whose cluster's majority true class is their own.

    Splitting a class over several clusters keeps purity at 1; merging two
    classes into one cluster lowers it. With K >= the number of true classes,
    purity 1 means every cluster holds a single true class.

    Args:
        cluster_ids: int array of cluster ids, any shape.
        true_ids: int array of the same shape: the true classes.

    Returns:
        A float in (0, 1].

    Example:

    >>> purity(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 5]))
    0.75
    """
    cluster_ids = np.asarray(cluster_ids).ravel()
    true_ids = np.asarray(true_ids).ravel()
    if cluster_ids.shape != true_ids.shape:
        raise ValueError(
            f"purity: cluster_ids and true_ids must have the same number of elements, "
            f"got {cluster_ids.size} and {true_ids.size}."
        )
    if cluster_ids.size == 0:
        raise ValueError("purity: no points given.")
    _, c = np.unique(cluster_ids, return_inverse=True)
    _, t = np.unique(true_ids, return_inverse=True)
    table = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    return float(table.max(axis=1).sum() / cluster_ids.size)


def stage_purities(cluster_maps, latents):
    """Purity of each stage's cluster map against the true latent classes.

    Stage i's clusters (`cluster_maps[i]`, from
    `layerwise_keras.assignments`) are compared with `latents[i]`, the true
    classes of the level its positions stand for.

    Args:
        cluster_maps: list of int arrays `[n, h_i, w_i]`.
        latents: list of int arrays from a generative dataset; only the
            first `len(cluster_maps)` levels are used.

    Returns:
        A list of floats, one per stage.

    Example:

    >>> stage_purities([np.array([[0, 0], [1, 1]])], [np.array([[5, 5], [7, 5]]), np.zeros((2, 1))])
    [0.75]

    `model`: a model grown on `x` (128 `hierarchical_digits` images, seed 0)
    whose stages 1 and 2 are clustered (9x9 and 3x3 positions):

    >>> from layerwise_keras import assignments
    >>> from layerwise_keras.datasets import hierarchical_digits
    >>> _, _, latents = hierarchical_digits(128, seed=0)  # the true classes of x's levels
    >>> purities = stage_purities(assignments(model, x), latents)
    >>> len(purities), all(0 < p <= 1 for p in purities)
    (2, True)
    """
    if len(latents) < len(cluster_maps):
        raise ValueError(
            f"stage_purities: {len(cluster_maps)} cluster maps but only {len(latents)} latent levels."
        )
    result = []
    for i, ids in enumerate(cluster_maps):
        if ids.shape != latents[i].shape:
            raise ValueError(
                f"stage_purities: stage {i + 1}'s cluster map has shape {ids.shape} but latent level {i} "
                f"has {latents[i].shape}; the stages' kernel/strides must follow the dataset's patch size."
            )
        result.append(purity(ids, latents[i]))
    return result
