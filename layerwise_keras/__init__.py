"""layerwise_keras: grow deep CNNs layer by layer in Keras 3.

The algorithm of Malach & Shalev-Shwartz, "A Provably Correct Algorithm for
Deep Learning that Actually Works" (arXiv 1803.09522): each stage trains a
two-layer network (an s x s convolution + a linear readout) by gradient
descent, k-means-clusters the convolution's per-position embeddings, and
replaces every position by its cluster; the next stage trains on that map.

The top level holds what a growth needs (`Stage`, `LayerwiseTrainer`,
`input_model`, `KMeans`, ...); the subpackages are imported on first use, as
in Keras (`lk.datasets`, `lk.clustering`, `lk.growth`, `lk.export`,
`lk.monitoring`, `lk.tuning`, `lk.runs`; `docs/architecture.md` maps them).

Importing the package registers its Keras classes (`registration`), so a
`.keras` file it wrote loads with `keras.saving.load_model` in a fresh
process, whether `keras` is imported before or after it.

Example:

>>> import numpy as np
>>> import layerwise_keras as lk
>>> x_train = np.random.default_rng(0).random((64, 9, 9, 1), dtype="float32")
>>> trainer = lk.LayerwiseTrainer([lk.Stage(8, 3, clusters=4), lk.Stage(8, 3)], num_classes=3,
...                               kmeans_data=x_train, verbose=0)
>>> model = lk.input_model(x_train.shape[1:])
"""

from layerwise_keras import registration
from layerwise_keras.lazy import lazy_attributes

__version__ = "0.1.0"

# Subpackages and modules loaded on first attribute access (`lk.datasets`, ...), as Keras does.
SUBMODULES = ("clustering", "compat", "datasets", "export", "growth", "monitoring", "registration", "runs",
              "saving", "tuning", "cli")

# Public names of the top level -> the module that defines them.
_EXPORTS = {
    "ClusterAssignment": "layerwise_keras.growth.layers",
    "CodeGate": "layerwise_keras.growth.layers",
    "KMeans": "layerwise_keras.clustering.kmeans",
    "LayerwiseSequential": "layerwise_keras.growth.builder",
    "LayerwiseTrainer": "layerwise_keras.growth.trainer",
    "Stage": "layerwise_keras.growth.stage",
    "assignments": "layerwise_keras.growth.inspect",
    "end_to_end_model": "layerwise_keras.growth.builder",
    "grown_model": "layerwise_keras.growth.builder",
    "input_model": "layerwise_keras.growth.builder",
    "purity": "layerwise_keras.clustering.purity",
    "stage_purities": "layerwise_keras.clustering.purity",
}

__all__ = sorted(_EXPORTS) + list(SUBMODULES)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, SUBMODULES)


registration.install()
