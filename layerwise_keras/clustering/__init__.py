"""Clustering: compiled k-means (`KMeans`) and cluster purity against true latent classes.

Modules: `kmeans` (the estimator), `kernels` (the compiled `keras.ops`
kernels), `sources` (arrays, resident tensors, streamed datasets), `sampling`
(subsample, moments, farthest points, k-means++), one reducer module per
distribution mode (`distribute_tf`: `tf.distribute` replicas, TensorFlow-only;
`distribute_jax`: JAX processes), `purity`.
"""

from layerwise_keras.clustering.kmeans import KMeans, NotFittedError
from layerwise_keras.clustering.purity import purity, stage_purities

__all__ = ["KMeans", "NotFittedError", "purity", "stage_purities"]
