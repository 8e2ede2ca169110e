"""Layerwise growth on cached stage inputs (TensorFlow-only: its epoch orders are `tf.data`'s shuffles).

Frozen layers never change, so everything a stage's trainable layers see --
the frozen stages before it, its own input pooling and, for a cluster-first
stage (`Stage(cluster="patches")`), its frozen patch code and the head's
average pooling -- can be computed once and kept compactly, instead of
running it again in every epoch. `grow_cached` grows the same
`keras.Sequential` the `LayerwiseTrainer` grows, with the same builder steps
(`append_stage`, `freeze_stage`, `append_readout`, `drop_readout`), and
trains each stage's trainable layers alone (a `keras.Sequential` sharing
them) on the cached output of the frozen layers in front of them:

* an int16 map of cluster ids `[n, h, w]` when that output is a hard code
  (`growth.kinds.caches_as_ids`: `assignment="hard"`, or `"nearest"` with
  `q=1`): one-hot again per batch, exactly;
* float16 otherwise: a pooled code (a stage's `input_pool`, or a pooled
  head's average pooling over a cluster-first code), a soft / triangle /
  multi-hot code, a handed-on bottleneck, the code and patch a gated head
  (`Stage(gate=...)`) reads (K + patch channels per position), rounded to a
  relative 2**-11; a value beyond float16's range is an error, not an `inf`.

It follows the uncached path otherwise: the same initialisers, a fresh
optimiser of the same config per stage, the same per-epoch shuffle order as
`datasets.from_arrays(..., shuffle=True, seed=seed)` iterated once per epoch,
the same k-means streams (over the cached inputs). Stage 1 of a paper-order
growth trains on the images themselves, so its losses are the uncached ones;
later stages differ by the float16 rounding and by float differences between
the eager layers that fill a cache and the compiled training graph, which can
move a later k-means run a little (tests/test_cached.py bounds both).

Data augmentation (`augment_variants=V`): augmented images change every
epoch, so nothing computed from them stays the same. Stage 1, whose input is
the images, then trains its frozen and trainable layers together on freshly
augmented batches every epoch (`datasets.ArrayBatches(augment=True)`), as
the `LayerwiseTrainer` does; every later stage's input -- everything frozen
in front of it -- is cached for V augmented copies of the training images,
and epoch e trains on copy e mod V (its own frozen code runs per batch, as
it is cheap after stage 1's pooling and a code of K channels per position
would not fit in memory). V copies cost V passes of the frozen front instead
of one per epoch of every later stage; fewer copies than epochs means a
stage sees each augmented image more than once. k-means and validation use
the un-augmented images, as in the trainer.

With `checkpoint_dir`, the growth is checkpointed after every epoch and
`resume=True` continues it (`growth.checkpoint` holds the files).

Not covered: convergence budgets (`Stage(patience=...)`).
"""

import copy
import json
import math
import time

import keras
import numpy as np
import tensorflow as tf

from layerwise_keras.datasets.augment import augment_batch
from layerwise_keras.datasets.batches import ArrayBatches
from layerwise_keras.growth.builder import check_stages, input_model
from layerwise_keras.growth.checkpoint import OPTIMIZER_FILE, read_checkpoint, write_checkpoint
from layerwise_keras.growth.kinds import caches_as_ids
from layerwise_keras.growth.layers import ClusterAssignment
from layerwise_keras.growth.lifecycle import HISTORY_KEYS, begin_stage, end_stage, report_stage
from layerwise_keras.growth.stage_clustering import EmbeddingStream, cluster_stage

FLOAT16_MAX = float(np.finfo(np.float16).max)


def _epoch_orders(n, seed):
    """Yields the per-epoch permutations `from_arrays(shuffle=True, seed=seed)` uses."""
    # One batch of all n: the same permutation, without n Python-level iterator steps (seconds at n = 45,000).
    order = tf.data.Dataset.range(n).shuffle(n, seed=int(seed), reshuffle_each_iteration=True).batch(n)
    while True:
        yield next(iter(order)).numpy()


def _is_hard(layer):
    return isinstance(layer, ClusterAssignment) and caches_as_ids(layer.assignment, layer.q, layer.keep_input)


def _apply(layers, x):
    for layer in layers:
        x = layer(x, training=False)
    return x


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
        """A float32 batch of the stored examples (one-hot ids for an id map)."""
        if self.depth is None:
            return batch.astype(np.float32, copy=False)
        return np.eye(self.depth, dtype=np.float32)[batch.astype(np.int64)]

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
        out = []
        for start in range(0, len(self.data), batch_size):
            batch = self.decode(self.data[start:start + batch_size])
            y = keras.ops.convert_to_numpy(_apply(layers, batch if rng is None else augment_batch(batch, rng)))
            if hard:
                out.append(y.argmax(-1).astype(np.int16))
                continue
            if not np.isfinite(y).all() or np.abs(y).max(initial=0.0) > FLOAT16_MAX:
                raise ValueError(
                    f"grow_cached: the output of {layers[-1].name!r} holds values beyond float16's range "
                    f"(|x| <= {FLOAT16_MAX:g}) or non-finite ones, so it cannot be cached; scale the inputs "
                    "(dataset option normalize) or use the uncached LayerwiseTrainer path.")
            out.append(y.astype(np.float16))
        return StageInputs(np.concatenate(out), layers[-1].n_clusters if hard else None)


class _Batches(keras.utils.PyDataset):
    """Decoded batches of a `StageInputs` in a given order (None: as stored)."""

    def __init__(self, inputs, labels, batch_size, order=None):
        super().__init__()
        self.inputs, self.labels, self.batch_size = inputs, np.asarray(labels), int(batch_size)
        self.order = np.arange(len(self.labels)) if order is None else order

    def __len__(self):
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.inputs.decode(self.inputs.data[rows]), self.labels[rows]


class _Slices:
    """Batches of a stored cache as they are (`image_batches` casts each one, not the whole cache, to float32)."""

    def __init__(self, data, batch_size):
        self.data, self.batch_size = data, int(batch_size)

    def as_numpy_iterator(self):
        for start in range(0, len(self.data), self.batch_size):
            yield self.data[start:start + self.batch_size]


def _stream(layers, inputs, batch_size, n):
    """The k-means stream of `layers`' output over a cache, checked for non-finite values."""
    return EmbeddingStream(lambda batch: _apply(layers, inputs.decode(batch)), _Slices(inputs.data, batch_size),
                            batch_size, stage=n)


def _first_trainable(model, start):
    """The index of the first layer from `start` on with trainable weights (len(layers) if none)."""
    for index in range(start, len(model.layers)):
        if model.layers[index].trainable_weights:
            return index
    return len(model.layers)


def grow_cached(stages, x_train, y_train, num_classes, optimizer, batch_size, x_val=None, y_val=None,
                seed=0, verbose=1, kmeans_batch_size=256, name="layerwise", augment_variants=None,
                checkpoint_dir=None, resume=False, config=None, checkpoint_every=1):
    """Grows a network stage by stage, each stage training on its cached input.

    Args:
        stages: list of `Stage` (or config dicts), any kinds but
            convergence budgets (`patience`).
        x_train, y_train: training images `[n, H, W, C]` and int labels.
        num_classes: int, the number of labels.
        optimizer: an optimizer config or identifier (`keras.optimizers.get`);
            every stage gets a fresh instance.
        batch_size: int.
        x_val, y_val: optional validation data, evaluated after every epoch.
        seed: int; the caller should also call `keras.utils.set_random_seed`.
        verbose: Keras verbosity for each stage's `fit`.
        kmeans_batch_size: examples per batch when caching and embedding for k-means.
        name: the grown model's name.
        augment_variants: int V >= 1 to train on augmented images (random
            crop + flip): stage 1 on fresh batches every epoch, each later
            stage on V cached augmented copies of its input, in turn (see
            the module docstring); None (default): no augmentation.
        checkpoint_dir: a folder to checkpoint the growth into after every
            epoch (`checkpoint.write_checkpoint`: the model, the stage's
            optimizer state and the progress), or None.
        resume: continue from the latest checkpoint in `checkpoint_dir`,
            which must come from a growth with the same stages, data sizes,
            optimizer, batch size, seed, `augment_variants` and `config`.
            Stage inputs are cached again from the saved model; a later
            stage's may then differ from the first run's by float16 rounding.
        config: an optional JSON-able dict stored with every checkpoint (a
            run's configuration); `resume` refuses a checkpoint of another.
        checkpoint_every: int >= 1, checkpoint after every this many epochs
            of the growth and after every stage's last epoch.

    Returns:
        `(model, stage_results, history)`: the grown `keras.Sequential` (the
        same layers as `LayerwiseTrainer` grows), one dict per stage like
        `LayerwiseTrainer.stage_results` (plus `cache_bytes` and
        `cache_dtype`, what the stage trained on, and `cache_variants`, the
        augmented copies of it), and per-epoch lists
        `loss`, `accuracy`, `val_loss`, `val_accuracy`, `stage`,
        `learning_rate` (each stage follows its `Stage.schedule`, as in the
        `LayerwiseTrainer`) and `seconds` (wall time since the growth began,
        caching and k-means included).

    Example:

    `x`, `y`: 128 images 27x27x1 and their labels (10 classes).

    >>> from layerwise_keras.growth.stage import Stage
    >>> model, results, history = grow_cached([Stage(8, 3, clusters=8), Stage(8, 3)], x, y, 10,
    ...                                       {"class_name": "Adam", "config": {}}, 32, verbose=0)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage1_assign', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']
    >>> history["stage"], [r["cache_dtype"] for r in results]
    ([1, 2], ['float32', 'int16'])
    """
    stages = check_stages(stages, num_classes, owner="grow_cached")
    for n, stage in enumerate(stages, start=1):
        if stage.patience is not None:
            raise ValueError(
                f"grow_cached: stage {n} stops on convergence (patience={stage.patience}); the cached path trains "
                "fixed budgets (epochs or steps) only. Use the uncached LayerwiseTrainer path, or drop patience."
            )
    if augment_variants is not None and (isinstance(augment_variants, bool) or not isinstance(augment_variants, int)
                                         or augment_variants < 1):
        raise ValueError(f"grow_cached: augment_variants must be an integer >= 1 or None, got {augment_variants!r}.")
    if resume and checkpoint_dir is None:
        raise ValueError("grow_cached: resume=True needs the checkpoint_dir to resume from.")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"grow_cached: checkpoint_every must be an integer >= 1, got {checkpoint_every!r}.")
    augment = augment_variants is not None
    steps_per_epoch = -(-len(x_train) // int(batch_size))
    y_train = np.asarray(y_train)
    orders = _epoch_orders(len(y_train), seed)
    images = StageInputs(np.asarray(x_train, dtype=np.float32))
    val_images = None if x_val is None else StageInputs(np.asarray(x_val, dtype=np.float32))
    growth = {"stages": [stage.get_config() for stage in stages], "num_classes": int(num_classes),
              "optimizer": optimizer if isinstance(optimizer, (str, dict)) else keras.optimizers.serialize(optimizer),
              "batch_size": int(batch_size), "seed": int(seed), "augment_variants": augment_variants,
              "train": len(y_train), "val": None if x_val is None else len(x_val)}
    saved = _read_saved(checkpoint_dir, growth, config) if resume else None
    if saved is None:
        model, first, results = input_model(images.shape, name=name), 0, []
        history, orders_used, offset = {k: [] for k in HISTORY_KEYS + ("seconds",)}, 0, 0.0
    else:
        model, state = saved
        first, results, history = state["stage_index"], state["stage_results"], state["history"]
        orders_used, offset = state["orders_used"], state["seconds"]
        for _ in range(orders_used):  # the epoch orders the epochs before the checkpoint drew
            next(orders)
    train, val, copies = images, val_images, []  # augmented: the stage input's copies (none while it is the images)
    if saved is not None and state["begin"]:  # the input of the stage in training, cached again
        front = model.layers[:state["begin"]]
        train = images.advance(front, kmeans_batch_size)
        val = None if val_images is None else val_images.advance(front, kmeans_batch_size)
        if augment:
            copies = [images.advance(front, kmeans_batch_size, _copy_rng(seed, v)) for v in range(augment_variants)]
    last = len(stages) - 1
    began = time.perf_counter() - offset
    for index in range(first, len(stages)):
        stage, n = stages[index], index + 1
        resuming = saved is not None and index == first
        if resuming:
            result, begin, begun = dict(state["result"]), state["begin"], state["begun"]
            done = state["stage_epochs_done"]
            result["resumed_from_epoch"] = state["epochs_done"]  # of the growth, not of the stage
            start = time.perf_counter() - state["stage_seconds"]
        else:
            result, begin, begun, done = {"stage": n}, len(model.layers), None, 0
            start = time.perf_counter()

        def cluster(layer, inputs=train, start=begin, stage=stage, n=n):
            # k-means of `layer`'s output, computed from the cached input of the layers from `start` on
            layers = model.layers[start:model.layers.index(layer) + 1]
            stream = _stream(layers, inputs, kmeans_batch_size, n)
            return cluster_stage(stage, n, stream, seed, verbose=int(bool(verbose)))

        if not resuming:  # begun (and clustered, if cluster-first) before the checkpoint otherwise
            begun = begin_stage(model, stage, n, num_classes, cluster, seed, owner="grow_cached")
            result.update(begun or {})
        # Augmented, a stage trains its own frozen layers too: their output changes with every augmented batch.
        split = begin if augment else _first_trainable(model, begin)
        base, val_base = train, val
        train = train.advance(model.layers[begin:split], kmeans_batch_size)
        val = None if val is None else val.advance(model.layers[begin:split], kmeans_batch_size)
        cached = copies if augment and index else [train]
        result.update(cache_bytes=sum(c.nbytes for c in cached), cache_dtype=str(train.data.dtype),
                      cache_variants=len(copies) if augment and index else 0)
        net = keras.Sequential([keras.Input(train.shape)] + model.layers[split:], name=f"stage{n}_net")
        net.compile(optimizer=keras.optimizers.get(copy.deepcopy(optimizer)),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        initial = float(keras.ops.convert_to_numpy(net.optimizer.learning_rate))  # the schedule's start
        if resuming and state["optimizer_weights"] is not None:  # (the learning rate among them)
            _restore_optimizer(net.optimizer, net.trainable_variables, state["optimizer_weights"])
        val_batches = None if val is None else _Batches(val, y_val, batch_size)
        budget = stage.budget(steps_per_epoch)
        for done in range(done, budget):
            if stage.schedule is not None:  # as the LayerwiseTrainer does: the stage's schedule, epoch by epoch
                net.optimizer.learning_rate = stage.learning_rate(initial, done, budget)
            history["learning_rate"].append(float(keras.ops.convert_to_numpy(net.optimizer.learning_rate)))
            if augment and not index:  # the images themselves, augmented afresh
                batches = ArrayBatches(train.data, y_train, batch_size, augment=True, seed=seed, epoch=done)
            else:
                batches = _Batches(cached[done % len(cached)], y_train, batch_size, next(orders))
                orders_used += 1
            fit = net.fit(batches, epochs=1, validation_data=val_batches, verbose=verbose, shuffle=False)
            logs = {k: float(v[-1]) for k, v in fit.history.items()}
            if not np.isfinite(logs["loss"]):
                raise ValueError(f"grow_cached: the training loss is {logs['loss']} at stage {n}.")
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if key in logs:
                    history[key].append(logs[key])
            history["stage"].append(n)
            history["seconds"].append(time.perf_counter() - began)
            result.update(logs)
            if checkpoint_dir is not None and (len(history["stage"]) % checkpoint_every == 0 or done + 1 == budget):
                state = {"epochs_done": len(history["stage"]), "stage_results": results, "history": history,
                         "config": config, "growth": growth, "stage_index": index, "stage_epochs_done": done + 1,
                         "begin": begin, "begun": begun, "result": result, "orders_used": orders_used,
                         "seconds": history["seconds"][-1], "stage_seconds": time.perf_counter() - start}
                weights = [keras.ops.convert_to_numpy(v) for v in net.optimizer.variables]
                write_checkpoint(checkpoint_dir, model, state, {OPTIMIZER_FILE: weights})
        if index < last:
            # A paper-order stage clusters its embeddings from the cache it trained on.
            figures = end_stage(model, stage, n, lambda layer: cluster(layer, train, split), begun)
            result.update(figures or {})
            # The next stage's input, from the cache this stage trained on when its layers are all still
            # there, else (a dropped pooled head) from this stage's input.
            if len(model.layers) >= split:
                train = train.advance(model.layers[split:], kmeans_batch_size)
                val = None if val is None else val.advance(model.layers[split:], kmeans_batch_size)
            else:
                train = base.advance(model.layers[begin:], kmeans_batch_size)
                val = None if val_base is None else val_base.advance(model.layers[begin:], kmeans_batch_size)
            if augment:  # the next stage's augmented copies: from the images, or from this stage's copies
                filled = time.perf_counter()
                _say(verbose, f"stage {n + 1}: caching its input for {augment_variants} augmented copies of the "
                              f"{len(y_train)} training images ...")
                copies = [(base.advance(model.layers[begin:], kmeans_batch_size, _copy_rng(seed, v)) if not index
                           else copies[v].advance(model.layers[begin:], kmeans_batch_size))
                          for v in range(augment_variants)]
                mib = sum(c.nbytes for c in copies) / 2**20
                _say(verbose, f"stage {n + 1}: {augment_variants} copies cached ({mib:.0f} MiB) in "
                              f"{time.perf_counter() - filled:.1f} s.")
        result["stage_seconds"] = time.perf_counter() - start
        result.update(epochs=budget, steps=budget * steps_per_epoch)
        report_stage(result, n, num_classes, results[-1] if results else None)  # the trainer's diagnosis
        results.append(result)
    return model, results, history


def _say(verbose, message):
    if verbose:
        print(f"grow_cached: {message}", flush=True)


def _copy_rng(seed, variant):
    """The augmentation draws of augmented copy `variant` of every cached stage input."""
    return np.random.default_rng([int(seed), 7919, int(variant)])


def _read_saved(folder, growth, config):
    """The latest checkpoint of a cached growth in `folder` as `(model, state)`, checked against this growth."""
    model, state = read_checkpoint(folder)
    if "growth" not in state:
        raise ValueError(f"the checkpoint in {folder} is not a cached growth's (grow_cached); resume it with the "
                         "path that wrote it.")
    if state["growth"] != json.loads(json.dumps(growth)) or state["config"] != json.loads(json.dumps(config)):
        raise ValueError(f"the checkpoint in {folder} belongs to a growth with other stages, data sizes, optimizer, "
                         "seed or configuration; resume with the same ones or start over in a new folder.")
    return model, state


def _restore_optimizer(optimizer, variables, weights):
    """Builds `optimizer` for `variables` and sets its state to the saved `weights`."""
    optimizer.build(variables)
    if len(optimizer.variables) != len(weights):
        raise ValueError(f"grow_cached: the checkpoint holds {len(weights)} optimizer variables, the stage's "
                         f"optimizer has {len(optimizer.variables)}; the checkpoint belongs to another growth.")
    for variable, value in zip(optimizer.variables, weights):
        variable.assign(value)
