"""Layerwise growth on cached stage inputs (TensorFlow-only: it feeds `tf.data`).

Frozen stages never change, so stage i's input -- the map of cluster ids the
earlier stages produce -- can be computed once and kept as a compact int16
array `[n, h, w]`, instead of running the frozen convolutions and
assignments again in every epoch. `grow_cached` trains each stage's two-layer
net (`stage_conv` + `stage_readout`) on `one_hot(cached ids)`, clusters its
embeddings with the same `cluster_stage` as `LayerwiseTrainer`, caches the new
ids and moves on; at the end it assembles the same `keras.Sequential` the
trainer grows (the layer objects are shared, so the weights are the ones
trained).

It reproduces the uncached path: the same initialisers, a fresh optimiser of
the same config per stage, the same per-epoch shuffle order as
`datasets.from_arrays(..., shuffle=True, seed=seed)` iterated once per epoch,
the same k-means stream. Forward values are the same numbers (a hard
assignment is exactly `one_hot(argmax(scores))`), so the two paths agree up to
floating-point differences between the compiled graphs.

What caching does not cover:

* `"soft"` and `"triangle"` assignments: their outputs are float vectors, not
  ids; use the uncached `LayerwiseTrainer` path (an error says so).
* data augmentation: augmented images change every epoch, so stage 1 sees new
  pixels each time and the ids of later stages would have to be recomputed per
  epoch; with augmentation, use the uncached path. (Stage 1 itself never uses
  a cache: it trains on the images.)
"""

import copy
import time

import keras
import numpy as np
import tensorflow as tf

from layerwise_keras.growth.builder import check_stages, input_model, stage_assignment, stage_net
from layerwise_keras.growth.trainer import _EmbeddingStream, cluster_stage

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _epoch_orders(n, seed):
    """Yields the per-epoch permutations `from_arrays(shuffle=True, seed=seed)` uses."""
    order = tf.data.Dataset.range(n).shuffle(n, seed=int(seed), reshuffle_each_iteration=True)
    while True:
        yield np.fromiter(order.as_numpy_iterator(), dtype=np.int64, count=n)


def _dataset(inputs, labels, depth, batch_size):
    ds = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size)
    if depth is not None:
        ds = ds.map(lambda ids, y: (tf.one_hot(tf.cast(ids, tf.int32), depth), y))
    return ds.prefetch(tf.data.AUTOTUNE)


def _as_input(batch, depth):
    if depth is None:
        return batch
    return keras.ops.one_hot(keras.ops.cast(batch, "int32"), depth)


def _cluster_ids(conv, assign, inputs, depth, batch_size):
    """The next stage's cached input: nearest-centroid ids, int16 `[n, h, w]`."""
    out = []
    for start in range(0, len(inputs), batch_size):
        emb = conv(_as_input(inputs[start:start + batch_size], depth), training=False)
        out.append(keras.ops.convert_to_numpy(keras.ops.argmax(assign.scores(emb), axis=-1)))
    return np.concatenate(out).astype(np.int16)


def grow_cached(stages, x_train, y_train, num_classes, optimizer, batch_size, x_val=None, y_val=None,
                seed=0, verbose=1, kmeans_batch_size=256, name="layerwise"):
    """Grows a network stage by stage, each stage training on cached cluster ids.

    Args:
        stages: list of `Stage` (or config dicts); clustered stages must use
            `assignment="hard"`.
        x_train, y_train: training images `[n, H, W, C]` and int labels.
        num_classes: int, the number of labels.
        optimizer: an optimizer config or identifier (`keras.optimizers.get`);
            every stage gets a fresh instance.
        batch_size: int.
        x_val, y_val: optional validation data, evaluated after every epoch.
        seed: int; the caller should also call `keras.utils.set_random_seed`.
        verbose: Keras verbosity for each stage's `fit`.
        kmeans_batch_size: images per batch when embedding for k-means.
        name: the grown model's name.

    Returns:
        `(model, stage_results, history)`: the grown `keras.Sequential` (the
        same layers as `LayerwiseTrainer` grows), one dict per stage like
        `LayerwiseTrainer.stage_results`, and per-epoch lists `loss`,
        `accuracy`, `val_loss`, `val_accuracy`, `stage`.

    Example:

    >>> model, results, history = grow_cached(stages, x, y, 10, {"class_name": "Adam", "config": {}}, 64)
    """
    stages = check_stages(stages, num_classes, owner="grow_cached")
    for n, stage in enumerate(stages, start=1):
        if stage.patience is not None:
            raise ValueError(
                f"grow_cached: stage {n} stops on convergence (patience={stage.patience}); the cached path trains "
                "fixed budgets (epochs or steps) only. Use the uncached LayerwiseTrainer path, or drop patience."
            )
        if stage.cluster != "embeddings":
            raise ValueError(
                f"grow_cached: stage {n} clusters its input patches first (cluster={stage.cluster!r}); the cached "
                "path trains each stage's convolution before clustering it. Use the uncached LayerwiseTrainer path."
            )
        if stage.input_pool is not None:
            raise ValueError(
                f"grow_cached: stage {n} pools its input (input_pool={list(stage.input_pool)}); the cached path "
                "caches cluster ids, not pooled codes. Use the uncached LayerwiseTrainer path."
            )
    steps_per_epoch = -(-len(x_train) // int(batch_size))
    for n, stage in enumerate(stages[:-1], start=1):
        if stage.assignment != "hard" and not (stage.assignment == "nearest" and stage.q == 1):
            raise ValueError(
                f"grow_cached: stage {n} uses assignment={stage.assignment!r} (q={stage.q}); cached cluster ids "
                "stand for hard assignments (or nearest with q=1) only. Use the uncached LayerwiseTrainer path "
                "for the others."
            )
    x_train = np.asarray(x_train, dtype=np.float32)
    y_train = np.asarray(y_train)
    orders = _epoch_orders(len(x_train), seed)
    inputs, val_inputs, depth = x_train, None if x_val is None else np.asarray(x_val, np.float32), None
    model = input_model(x_train.shape[1:], name=name)
    results, history = [], {k: [] for k in HISTORY_KEYS + ("stage",)}
    for index, stage in enumerate(stages):
        n = index + 1
        start = time.perf_counter()
        in_shape = inputs.shape[1:] if depth is None else inputs.shape[1:] + (depth,)
        net, conv, readout = stage_net(stage, n, in_shape, num_classes, seed)
        net.compile(optimizer=keras.optimizers.get(copy.deepcopy(optimizer)),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        val = None if val_inputs is None else _dataset(val_inputs, y_val, depth, batch_size)
        logs = {}
        budget = stage.epochs if stage.steps is None else -(-stage.steps // steps_per_epoch)
        for _ in range(budget):
            order = next(orders)
            fit = net.fit(_dataset(inputs[order], y_train[order], depth, batch_size), epochs=1,
                          validation_data=val, verbose=verbose, shuffle=False)
            logs = {k: float(v[-1]) for k, v in fit.history.items()}
            if not np.isfinite(logs["loss"]):
                raise ValueError(f"grow_cached: the training loss is {logs['loss']} at stage {n}.")
            for key in HISTORY_KEYS:
                if key in logs:
                    history[key].append(logs[key])
            history["stage"].append(n)
        result = {"stage": n, **logs}
        model.add(conv)
        if stage.clusters is not None:
            stream = _EmbeddingStream(lambda batch: conv(_as_input(batch, depth), training=False),
                                      inputs, kmeans_batch_size, stage=n)
            kmeans, whitening, figures = cluster_stage(stage, n, stream, seed)
            result.update(figures)
            conv.trainable = False
            assign = stage_assignment(stage, n)
            model.add(assign)
            assign.set_centroids(kmeans.cluster_centers_)
            if whitening is not None:
                assign.set_whitening(*whitening)
            inputs = _cluster_ids(conv, assign, inputs, depth, kmeans_batch_size)
            if val_inputs is not None:
                val_inputs = _cluster_ids(conv, assign, val_inputs, depth, kmeans_batch_size)
            depth = stage.clusters
        else:
            for layer in readout:
                model.add(layer)
        result["stage_seconds"] = time.perf_counter() - start
        results.append(result)
    return model, results, history
