"""Clustering: compiled k-means (`KMeans`) and cluster purity against true latent classes.

Modules: `kmeans` (the estimator), the steps of its fit (`scan`: the first
pass over the input; `inits`: the seeding, the best of `n_init` runs; `lloyd`:
Lloyd's passes and iterations; `dispatch`: which compiled step runs and how it
is compiled; `reduction`: the reduction over JAX processes), `kernels` (the
compiled `keras.ops` kernels), `sources` (arrays, resident tensors, streamed
datasets), `sampling` (subsample, moments, farthest points, k-means++), one
reducer module per distribution mode (`distribute_tf`: `tf.distribute`
replicas, TensorFlow-only; `distribute_jax`: JAX processes), `purity`,
`whitening` (the ZCA fitted before a stage's k-means).
"""

from layerwise_keras.clustering.kmeans import KMeans, NotFittedError
from layerwise_keras.clustering.purity import purity, stage_purities
from layerwise_keras.clustering.whitening import ZCA, fit_zca

__all__ = ["KMeans", "NotFittedError", "ZCA", "fit_zca", "purity", "stage_purities"]
