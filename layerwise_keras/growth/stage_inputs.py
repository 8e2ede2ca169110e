"""Cached stage inputs for `growth.cached` (TensorFlow-only: compiled fills, `tf.data`'s shuffle orders).

A stage's input is the output of the frozen layers in front of it. It is
computed once (or once per augmented copy) and kept compactly:

* an int16 map of cluster ids `[n, h, w]` when that output is a hard code
  (`growth.kinds.caches_as_ids`: `assignment="hard"`, or `"nearest"` with
  `q=1`), one-hot again inside the network that reads it (`IdsOneHot`),
  exactly;
* float16 otherwise: a pooled code (a stage's `input_pool`, or a pooled
  head's average pooling over a cluster-first code), a soft / triangle /
  multi-hot code, a handed-on bottleneck, the code and patch a gated head
  (`Stage(gate=...)`) reads (K + patch channels per position), rounded to a
  relative 2**-11; a value beyond float16's range is an error, not an `inf`.

The frozen layers that fill a cache run as one XLA-compiled function per
list of layers (the ids' argmax included), not as eager layer calls.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from layerwise_keras.datasets.augment import augment_batch
from layerwise_keras.growth.kinds import caches_as_ids
from layerwise_keras.growth.layers import ClusterAssignment
from layerwise_keras.growth.names import CACHED
from layerwise_keras.growth.stage_clustering import EmbeddingStream

FLOAT16_MAX = float(np.finfo(np.float16).max)
_FRONTS = {}  # (layer ids, depth, hard) -> (layers, compiled function); the layers held keep their ids unique
_MAX_FRONTS = 16


def epoch_orders(n, seed):
    """Yields the per-epoch permutations `datasets.from_arrays(shuffle=True, seed=seed)` uses."""
    # One batch of all n: the same permutation, without n Python-level iterator steps (seconds at n = 45,000).
    order = tf.data.Dataset.range(n).shuffle(n, seed=int(seed), reshuffle_each_iteration=True).batch(n)
    while True:
        yield next(iter(order)).numpy()


def first_trainable(model, start):
    """The index of the first layer from `start` on with trainable weights (len(layers) if none)."""
    for index in range(start, len(model.layers)):
        if model.layers[index].trainable_weights:
            return index
    return len(model.layers)


def _is_hard(layer):
    return isinstance(layer, ClusterAssignment) and caches_as_ids(layer.assignment, layer.q, layer.keep_input)


class IdsOneHot(keras.layers.Layer):
    """The one-hot code of an int cluster-id map `[..., h, w]` -> `[..., h, w, depth]` (cached inputs only).

    The first layer of the network a cached stage trains on an id cache,
    and of the compiled function that runs frozen layers on one; it is never
    part of the grown model, so it is not registered for saving.

    Args:
        depth: int, the number of clusters.

    Returns:
        A float32 tensor, the input's shape plus `depth`.

    Example:

    >>> tuple(IdsOneHot(3)(np.array([[0, 2]], "int32")).shape)
    (1, 2, 3)
    """

    def __init__(self, depth, **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)

    def call(self, ids):
        return keras.ops.one_hot(keras.ops.cast(ids, "int32"), self.depth)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.depth,)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


def _front(layers, depth, hard):
    """The compiled `layers` (inference mode) on a stored batch: ids one-hot first; a hard code's ids out."""
    key = (tuple(id(layer) for layer in layers), depth, hard)
    if key not in _FRONTS:
        if len(_FRONTS) >= _MAX_FRONTS:
            _FRONTS.pop(next(iter(_FRONTS)))
        one_hot = None if depth is None else IdsOneHot(depth)  # the training network's own first layer

        @tf.function(jit_compile=True)
        def run(batch):
            x = one_hot(batch) if one_hot is not None else tf.cast(batch, tf.float32)
            for layer in layers:
                x = layer(x, training=False)
            return tf.argmax(x, axis=-1, output_type=tf.int32) if hard else x

        _FRONTS[key] = (list(layers), run)
    return _FRONTS[key][1]


class StageInputs:
    """A cached stage input: the frozen layers' output over a dataset, stored compactly.

    Args:
        data: the stored array: float32 images, float16 features, or int16
            cluster ids `[n, h, w]` (then `depth` is set).
        depth: int, the number of clusters of an id map, else None.

    Example:

    `x`: 128 images 27x27x1; `model`: a grown model whose first layers are
    stage 1's 3x3/3 convolution (8 filters) and its hard assignment (K=8).

    >>> images = StageInputs(x)
    >>> embeddings = images.advance(model.layers[:1], batch_size=64)
    >>> embeddings.data.dtype, embeddings.shape
    (dtype('float16'), (9, 9, 8))
    >>> ids = images.advance(model.layers[:2], batch_size=64)  # one int16 cluster id per position
    >>> ids.data.dtype, ids.data.shape, ids.shape
    (dtype('int16'), (128, 9, 9), (9, 9, 8))
    """

    def __init__(self, data, depth=None):
        self.data = data
        self.depth = depth

    @property
    def shape(self):
        """The decoded per-example shape (an id map's one-hot depth included)."""
        shape = tuple(self.data.shape[1:])
        return shape + (self.depth,) if self.depth is not None else shape

    @property
    def nbytes(self):
        """Bytes held by the cache."""
        return int(self.data.nbytes)

    def decode(self, batch):
        """A float32 NumPy batch of the stored examples (one-hot ids for an id map).

        The NumPy reading of a cache, for tests and inspection: training and
        the compiled fills one-hot ids inside their graphs (`IdsOneHot`).
        """
        if self.depth is None:
            return batch.astype(np.float32, copy=False)
        return np.eye(self.depth, dtype=np.float32)[batch.astype(np.int64)]

    def network(self, layers, name=None):
        """A `keras.Sequential` of `layers` on this cache's stored batches: ids one-hot, float16 cast, inside it.

        Args:
            layers: the layers to train on the cache (shared, not copied).
            name: the network's name.

        Returns:
            An uncompiled `keras.Sequential`.
        """
        # Batches go in as stored (int16 ids, float16 features): the first layer casts them (Keras' autocast).
        head = [keras.Input(self.data.shape[1:], dtype=str(self.data.dtype))]
        if self.depth is not None:
            head.append(IdsOneHot(self.depth, name="cached_ids_one_hot"))
        return keras.Sequential(head + list(layers), name=name)

    def embed(self, layers):
        """A function of a stored batch: `layers`' output on it (compiled; for k-means streams)."""
        return _front(list(layers), self.depth, False)

    def advance(self, layers, batch_size, rng=None):
        """Returns the cache of `layers`' output (run in inference mode) over this one.

        A hard `ClusterAssignment` last is stored as int16 ids, anything
        else as float16.

        Args:
            layers: the layers to run, in order.
            batch_size: int, examples per batch.
            rng: a `numpy.random.Generator` to augment every batch with
                (`datasets.augment_batch`) before `layers`; images only.

        Raises:
            ValueError: an output beyond float16's range, or non-finite.
        """
        layers = list(layers)
        if rng is not None and (self.depth is not None or len(self.shape) != 3):
            raise ValueError(f"grow_cached: only images [n, H, W, C] can be augmented, not a cache of shape "
                             f"{self.shape}.")
        if not layers:
            if rng is not None:
                raise ValueError("grow_cached: augmenting a cache needs the layers to run on the augmented images.")
            return self
        hard = _is_hard(layers[-1])
        if hard and layers[-1].n_clusters > np.iinfo(np.int16).max:
            raise ValueError(f"grow_cached: {layers[-1].n_clusters} clusters do not fit an int16 id map.")
        run = _front(layers, self.depth, hard)
        out = []
        for start in range(0, len(self.data), batch_size):
            batch = self.data[start:start + batch_size]
            y = run(batch if rng is None else augment_batch(batch, rng)).numpy()
            if hard:
                out.append(y.astype(np.int16))
                continue
            if not np.isfinite(y).all() or np.abs(y).max(initial=0.0) > FLOAT16_MAX:
                raise ValueError(
                    f"grow_cached: the output of {layers[-1].name!r} holds values beyond float16's range "
                    f"(|x| <= {FLOAT16_MAX:g}) or non-finite ones, so it cannot be cached; scale the inputs "
                    "(dataset option normalize) or use the uncached LayerwiseTrainer path.")
            out.append(y.astype(np.float16))
        return StageInputs(np.concatenate(out), layers[-1].n_clusters if hard else None)


class StageBatches(keras.utils.PyDataset):
    """Batches of a `StageInputs` for its `network`, in a given order (None: as stored)."""

    def __init__(self, inputs, labels, batch_size, order=None):
        super().__init__()
        self.inputs, self.labels, self.batch_size = inputs, np.asarray(labels), int(batch_size)
        self.order = np.arange(len(self.labels)) if order is None else order

    def __len__(self):
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.inputs.data[rows], self.labels[rows]


class _CachedEmbeddings(EmbeddingStream):
    """The k-means stream over a cache: its batches go to the compiled front as stored, not cast to float32."""

    def _batches(self):
        for start in range(0, len(self._data), self._batch_size):
            yield self._data[start:start + self._batch_size]


def embedding_stream(layers, inputs, batch_size, n):
    """The k-means stream of `layers`' output over the cache `inputs` (stage `n`), checked for non-finite values."""
    return _CachedEmbeddings(inputs.embed(layers), inputs.data, batch_size, stage=n, owner=CACHED)
