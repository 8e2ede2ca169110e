"""layerwise_keras: grow deep CNNs layer by layer in Keras 3.

The algorithm of Malach & Shalev-Shwartz, "A Provably Correct Algorithm for
Deep Learning that Actually Works" (arXiv 1803.09522): each stage trains a
two-layer network (an s x s convolution + a linear readout) by gradient
descent, k-means-clusters the convolution's per-position embeddings, and
replaces every position by its cluster; the next stage trains on that map.
"""

from layerwise_keras.kmeans import KMeans
from layerwise_keras.layers import ClusterAssignment
from layerwise_keras.metrics import purity, stage_purities
from layerwise_keras.trainer import LayerwiseTrainer, Stage, assignments, input_model

__version__ = "0.1.0"

__all__ = [
    "ClusterAssignment",
    "KMeans",
    "LayerwiseTrainer",
    "Stage",
    "assignments",
    "input_model",
    "purity",
    "stage_purities",
]
