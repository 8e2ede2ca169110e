"""Layerwise growth of a Keras `Sequential` model inside one `model.fit` call.

The algorithm of Malach & Shalev-Shwartz (arXiv 1803.09522): for each stage,
train a two-layer network (an s x s convolution + ReLU, then a linear readout)
on the image labels by gradient descent, on top of the frozen earlier stages;
k-means-cluster the convolution's per-position embeddings; freeze the
convolution and append a `ClusterAssignment` layer, so the next stage sees
the map of cluster ids ("semantic classes") instead of raw embeddings.

`LayerwiseTrainer` is a `keras.callbacks.Callback` that performs the growth:

```python
trainer = layerwise_keras.LayerwiseTrainer(stages, num_classes=10, kmeans_data=x_train)
model = layerwise_keras.input_model((27, 27, 1))
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
model.fit(train_ds, epochs=trainer.total_epochs, validation_data=val_ds, callbacks=[trainer])
```

Two details of Keras' trainer are handled deliberately:

* `fit` keeps one train function per call. After growing, the trainer
  re-compiles the model (from `model.get_compile_config()`, so the optimizer
  is a *fresh* instance of the same config: an optimizer refuses variables it
  was not built with) and forces `model.make_train_function(force=True)`; the
  running `fit` picks the new function up on its next step.
* Validation in `fit` runs before `on_epoch_end`, so the `val_*` figures of a
  stage's last epoch belong to that stage, before it is clustered.
"""

import contextlib
import dataclasses
import math
import time
import warnings

import keras
import numpy as np

from layerwise_keras.kmeans import KMeans
from layerwise_keras.layers import ASSIGNMENTS, ClusterAssignment

READOUTS = ("flatten", "global_avg")


def _pair(value, name):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"Stage: {name} must be a positive int or a pair of them, got {value!r}.")
    return value


@dataclasses.dataclass
class Stage:
    """One stage of layerwise growth: a two-layer net, then k-means.

    Args:
        width: int, number of filters of the stage's convolution.
        kernel_size: int or pair, the convolution's window (s in the paper).
        strides: int or pair, or `None` for `kernel_size` (non-overlapping
            s x s patches, as in the paper).
        clusters: int K, the number of k-means clusters the stage's
            embeddings are grouped into, or `None` for the last stage, whose
            readout is the final classifier.
        epochs: int, training epochs of the stage's two-layer net.
        assignment: how embeddings become the next stage's input: `"hard"`
            (one-hot of the nearest centroid, the paper), `"soft"` or
            `"triangle"` (see `ClusterAssignment`).
        temperature: softmax temperature of the `"soft"` assignment.
        readout: `"flatten"` (flatten + dense) or `"global_avg"`
            (global average pooling + dense): the paper does not say which.
        padding: `"valid"` or `"same"`, the convolution's padding.
        kmeans: dict of extra `layerwise_keras.KMeans` arguments
            (`max_iter`, `tol`, `max_points_per_centroid`, `init`, ...).

    Returns:
        A `Stage` (a dataclass; `to_config()` / `Stage.from_config()` convert
        it to and from a JSON-able dict).

    Example:

    >>> stages = [Stage(width=32, kernel_size=3, clusters=16, epochs=2),
    ...           Stage(width=64, kernel_size=3, epochs=3)]
    """

    width: int
    kernel_size: object = 3
    strides: object = None
    clusters: object = None
    epochs: int = 1
    assignment: str = "hard"
    temperature: float = 1.0
    readout: str = "flatten"
    padding: str = "valid"
    kmeans: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if int(self.width) != self.width or self.width < 1:
            raise ValueError(f"Stage: width must be a positive integer, got {self.width!r}.")
        self.kernel_size = _pair(self.kernel_size, "kernel_size")
        self.strides = self.kernel_size if self.strides is None else _pair(self.strides, "strides")
        if self.clusters is not None and (int(self.clusters) != self.clusters or self.clusters < 2):
            raise ValueError(
                f"Stage: clusters must be an integer >= 2 or None, got {self.clusters!r}."
            )
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"Stage: epochs must be a positive integer, got {self.epochs!r}.")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(
                f"Stage: assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}."
            )
        if self.readout not in READOUTS:
            raise ValueError(f"Stage: readout must be one of {READOUTS}, got {self.readout!r}.")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Stage: padding must be 'valid' or 'same', got {self.padding!r}.")
        unknown = set(self.kmeans) - set(KMeans.__init__.__code__.co_varnames[1:])
        if unknown or "n_clusters" in self.kmeans:
            raise ValueError(
                f"Stage: unknown or reserved kmeans options {sorted(unknown | ({'n_clusters'} & set(self.kmeans)))}; "
                "set the number of clusters with Stage(clusters=...)."
            )

    def to_config(self):
        """Returns the stage as a JSON-able dict."""
        config = dataclasses.asdict(self)
        config["kernel_size"] = list(self.kernel_size)
        config["strides"] = list(self.strides)
        return config

    @classmethod
    def from_config(cls, config):
        """Creates a stage from `to_config()`'s dict (unknown keys are an error)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - fields
        if unknown:
            raise ValueError(f"Stage: unknown keys {sorted(unknown)}; expected a subset of {sorted(fields)}.")
        return cls(**config)


def stage_conv(stage, n, seed=0):
    """Returns stage `n`'s (1-based) convolution + ReLU layer, seeded.

    Args:
        stage: the `Stage`.
        n: 1-based stage index (names the layer `stage{n}_conv`).
        seed: int; the initialiser's seed is derived from it and `n`.

    Returns:
        A `keras.layers.Conv2D`.
    """
    return keras.layers.Conv2D(
        stage.width,
        stage.kernel_size,
        strides=stage.strides,
        padding=stage.padding,
        activation="relu",
        kernel_initializer=keras.initializers.HeUniform(seed=seed * 1000 + n),
        name=f"stage{n}_conv",
    )


def stage_readout(stage, n, num_classes, seed=0):
    """Returns stage `n`'s readout layers: flatten (or pool) + dense logits.

    Args:
        stage: the `Stage` (its `readout` picks flatten or global pooling).
        n: 1-based stage index (names the layers `stage{n}_readout*`).
        num_classes: int, the number of logits.
        seed: int; the initialiser's seed is derived from it and `n`.

    Returns:
        A list of two layers.
    """
    if stage.readout == "flatten":
        reduce = keras.layers.Flatten(name=f"stage{n}_readout_flatten")
    else:
        reduce = keras.layers.GlobalAveragePooling2D(name=f"stage{n}_readout_pool")
    dense = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 1000 + n + 500),
        name=f"stage{n}_readout",
    )
    return [reduce, dense]


def input_model(input_shape, name="layerwise"):
    """Returns the empty `keras.Sequential` model a `LayerwiseTrainer` grows.

    Args:
        input_shape: shape of one image, e.g. `(27, 27, 1)`.
        name: the model's name.

    Returns:
        A `keras.Sequential` holding only its `keras.Input`.

    Example:

    >>> model = input_model((27, 27, 1))
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"input_model: expected an image shape (height, width, channels), got {input_shape}."
        )
    return keras.Sequential([keras.Input(input_shape)], name=name)


def _strategy(model):
    """The model's `tf.distribute` strategy on the TensorFlow backend (None elsewhere)."""
    if keras.backend.backend() != "tensorflow":
        return None
    from layerwise_keras.distribute import model_strategy

    return model_strategy(model)


def _replicated_strategy(model):
    """The model's strategy if it has more than one replica (k-means then runs on all of them), else None."""
    strategy = _strategy(model)
    return strategy if strategy is not None and strategy.num_replicas_in_sync > 1 else None


def _kmeans_distribute(model):
    """What the stage's k-means runs on: the model's replicated strategy, `"processes"` (several JAX processes), or None."""
    strategy = _replicated_strategy(model)
    if strategy is not None:
        return strategy
    if keras.backend.backend() == "jax":
        from layerwise_keras.distribute_jax import process_count

        if process_count() > 1:
            return "processes"
    return None


def _strategy_scope(model):
    """Where new layers and optimizer variables are created: the model's strategy scope, if any."""
    strategy = _strategy(model)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _image_batches(data, batch_size):
    """Yields float32 numpy image batches from an array or a batched tf.data.Dataset."""
    if hasattr(data, "as_numpy_iterator"):
        for element in data.as_numpy_iterator():
            if isinstance(element, (tuple, list)):
                element = element[0]
            yield np.asarray(element, dtype="float32")
    else:
        data = np.asarray(data, dtype="float32")
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]


class _EmbeddingStream:
    """A re-iterable stream of per-position embeddings, for `KMeans.fit`."""

    def __init__(self, embed_fn, data, batch_size):
        self._embed_fn = embed_fn
        self._data = data
        self._batch_size = batch_size

    def as_numpy_iterator(self):
        for images in _image_batches(self._data, self._batch_size):
            emb = np.asarray(self._embed_fn(images))
            yield emb.reshape(-1, emb.shape[-1])


class LayerwiseTrainer(keras.callbacks.Callback):
    """Grows a `Sequential` model stage by stage inside one `model.fit` call.

    Pass it first in `callbacks` (before `keras.callbacks.TensorBoard`), so
    the per-stage figures it adds to the epoch `logs` are recorded by the
    callbacks after it and by `History`:

    * every epoch: `stage` (1-based index of the stage trained that epoch);
    * at the end of each clustered stage: `kmeans_inertia` (sum of squared
      distances over the points k-means ran on), `kmeans_mean_sq_dist`,
      `kmeans_iterations`, `kmeans_seconds`, `cluster_usage` (fraction of
      non-empty clusters), `cluster_entropy` (usage entropy / log K),
      `dead_clusters`, and `stage_seconds` (wall time of the stage,
      training + clustering).

    `stage_results[i]` holds the same figures for stage i + 1 (the epoch
    logs of its last epoch, then its clustering figures) and, for a
    clustered stage, `kmeans_counts`: the list of points per cluster at
    k-means' final assignment (over the points Lloyd ran on).

    Args:
        stages: list of `Stage`; every stage but the last needs `clusters`.
        num_classes: int, number of labels (the readout's width).
        kmeans_data: the training images the embeddings are clustered on:
            a float array `[n, H, W, C]` or a batched `tf.data.Dataset`
            yielding images or `(images, labels)`. Streamed batch by batch.
            With several JAX processes (`keras.distribution`), each process's
            own images: k-means then runs with `distribute="processes"`.
        kmeans_batch_size: batch size used to embed array `kmeans_data`.
        seed: int, seeds weight initialisation and k-means.
        verbose: 0 silent, 1 one line per stage.

    Returns:
        A callback; after `fit`, `stage_results` holds one dict per stage.

    Example:

    >>> trainer = LayerwiseTrainer([Stage(16, 3, clusters=8), Stage(32, 3)],
    ...                            num_classes=10, kmeans_data=x_train)
    >>> model = input_model(x_train.shape[1:])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...               metrics=["accuracy"])
    >>> model.fit(x_train, y_train, epochs=trainer.total_epochs, callbacks=[trainer])
    """

    def __init__(self, stages, num_classes, kmeans_data, kmeans_batch_size=256, seed=0, verbose=1):
        super().__init__()
        stages = [s if isinstance(s, Stage) else Stage.from_config(s) for s in stages]
        if not stages:
            raise ValueError("LayerwiseTrainer: at least one Stage is required.")
        for i, stage in enumerate(stages[:-1], start=1):
            if stage.clusters is None:
                raise ValueError(
                    f"LayerwiseTrainer: stage {i} is not the last stage, so it needs "
                    "Stage(clusters=K) to feed the next stage."
                )
        if stages[-1].clusters is not None:
            raise ValueError(
                "LayerwiseTrainer: the last stage's readout is the classifier; "
                f"set clusters=None on it (got clusters={stages[-1].clusters})."
            )
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"LayerwiseTrainer: num_classes must be an integer >= 2, got {num_classes!r}.")
        if kmeans_data is None:
            raise ValueError("LayerwiseTrainer: kmeans_data (the training images) is required.")
        if not hasattr(kmeans_data, "as_numpy_iterator"):
            from layerwise_keras.datasets import check_images

            kmeans_data = check_images(kmeans_data, name="kmeans_data")
        self.stages = stages
        self.num_classes = int(num_classes)
        self.kmeans_data = kmeans_data
        self.kmeans_batch_size = int(kmeans_batch_size)
        self.seed = int(seed)
        self.verbose = verbose
        self.stage_results = []
        self._last_epoch_of_stage = np.cumsum([s.epochs for s in stages]) - 1
        self._stage_start = None
        self._resumed_at = None

    @property
    def total_epochs(self):
        """The `epochs` to pass to `model.fit`: the sum of the stages' epochs."""
        return int(sum(s.epochs for s in self.stages))

    def stage_of_epoch(self, epoch):
        """Returns the 0-based stage index trained during 0-based `epoch`."""
        return int(np.searchsorted(self._last_epoch_of_stage, epoch))

    # -- growth -------------------------------------------------------------

    def grown_stages(self, model=None):
        """Returns how many stages the model holds (the last may be in training)."""
        model = model or self.model
        return sum(1 for layer in model.layers if layer.name.startswith("stage") and layer.name.endswith("_conv"))

    def _add_stage(self, model, index):
        n = index + 1
        model.add(stage_conv(self.stages[index], n, self.seed))
        if len(model.input_shape) != 4:
            raise ValueError(
                f"LayerwiseTrainer: the model's input must be images (batch, H, W, C), got {model.input_shape}."
            )
        spatial = model.output_shape[1:3]
        if any(d is not None and d < 1 for d in spatial):
            raise ValueError(f"LayerwiseTrainer: stage {n} leaves no spatial positions (output {model.output_shape}).")
        for layer in stage_readout(self.stages[index], n, self.num_classes, self.seed):
            model.add(layer)

    def _recompile(self, model):
        config = model.get_compile_config()
        if not config:
            raise RuntimeError("LayerwiseTrainer: compile the model before calling fit.")
        model.compile_from_config(config)
        if _replicated_strategy(model) is not None or keras.distribution.distribution() is not None:
            # Under keras.distribution (JAX) the train function's shardings are fixed when it is made,
            # so the new optimizer's and metrics' variables must exist by then.
            self._build_compiled_state(model)
        model.make_train_function(force=True)

    def _build_compiled_state(self, model):
        """Builds the fresh optimizer's, loss' and metrics' variables before the next train step.

        Under `tf.distribute`, variables created lazily inside the train step
        would be created in a replica context, which fails, and under
        `keras.distribution` (JAX) the train function's shardings would miss
        them; `fit` builds them symbolically before training, and this does
        the same after a stage is added (with a class-id label batch, or
        one-hot if the loss wants it).
        """
        x = np.zeros((1,) + tuple(model.input_shape[1:]), "float32")
        labels = (np.zeros((1,), "int32"), np.zeros((1, self.num_classes), "float32"))
        for y in labels:
            try:
                model._symbolic_build(data_batch=(x, y))  # what fit does before its first step
                return
            except (ValueError, TypeError):
                continue
        model.optimizer.build(model.trainable_variables)

    def _check_model(self, model):
        if not isinstance(model, keras.Sequential):
            raise TypeError(
                f"LayerwiseTrainer grows a keras.Sequential model; got {type(model).__name__}. "
                "Start from layerwise_keras.input_model(input_shape)."
            )
        if not any(isinstance(l, keras.layers.InputLayer) for l in model._layers):
            raise ValueError(
                "LayerwiseTrainer: the model must start with a keras.Input of image shape (H, W, C). "
                "Start from layerwise_keras.input_model(input_shape)."
            )

    def begin(self, model):
        """Adds stage 1 (convolution + readout) to an empty compiled model and re-compiles it.

        `fit` does this itself on the TensorFlow backend. The JAX and PyTorch
        trainers build the model from a data batch before any callback runs,
        which fails on a model holding only its `keras.Input`: on those
        backends call `trainer.begin(model)` after `compile` and before
        `fit`. Calling it when stage 1 is already there does nothing.

        Args:
            model: the compiled `keras.Sequential` from `input_model`.

        Returns:
            `model`.

        Example:

        >>> model.compile(...)
        >>> trainer.begin(model)
        >>> model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer])
        """
        if self.grown_stages(model) == 0:
            self._check_model(model)
            with _strategy_scope(model):
                self._add_stage(model, 0)
                self._recompile(model)
        return model

    def restore(self, stage_results, epochs_done):
        """Continues an interrupted growth: the stages done and the epochs run so far.

        Use it with the model saved at the end of epoch `epochs_done` (it
        already holds the stages grown by then) and `fit(...,
        initial_epoch=epochs_done)`; `layerwise_keras.pipeline.run(...,
        resume=True)` does all of this from a run's checkpoint.

        Args:
            stage_results: the `stage_results` list at the time of the save.
            epochs_done: int, the number of epochs completed.

        Returns:
            `self`.

        Example:

        >>> trainer.restore(state["stage_results"], state["epochs_done"])
        >>> model.fit(..., epochs=trainer.total_epochs, initial_epoch=state["epochs_done"], callbacks=[trainer])
        """
        epochs_done = int(epochs_done)
        if not 0 <= epochs_done <= self.total_epochs:
            raise ValueError(f"LayerwiseTrainer.restore: epochs_done must be in 0..{self.total_epochs}, got {epochs_done}.")
        finished = int(np.searchsorted(self._last_epoch_of_stage, epochs_done - 1, side="right")) if epochs_done else 0
        if len(stage_results) != finished:
            raise ValueError(
                f"LayerwiseTrainer.restore: after {epochs_done} epochs {finished} stage(s) are done, "
                f"but {len(stage_results)} stage result(s) were given."
            )
        self.stage_results = [dict(r) for r in stage_results]
        self._resumed_at = epochs_done
        return self

    def on_train_begin(self, logs=None):
        model = self.model
        epochs = self.params.get("epochs")
        if epochs is not None and epochs != self.total_epochs:
            raise ValueError(
                f"LayerwiseTrainer: fit(epochs={epochs}) must equal trainer.total_epochs="
                f"{self.total_epochs} (the sum of the stages' epochs)."
            )
        if self._resumed_at is not None:
            expected = min(len(self.stage_results) + 1, len(self.stages))
            if self.grown_stages(model) != expected:
                raise ValueError(
                    f"LayerwiseTrainer: resuming after {self._resumed_at} epochs needs a model with {expected} "
                    f"stage(s); this one has {self.grown_stages(model)}."
                )
            return
        if self.grown_stages(model) == 0:
            self.begin(model)
        elif self.grown_stages(model) != 1 or self.stage_results:
            raise ValueError(
                "LayerwiseTrainer: this model has already been grown; build a new one with "
                "layerwise_keras.input_model() to grow again."
            )

    def on_epoch_begin(self, epoch, logs=None):
        if self._stage_start is None:
            self._stage_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        index = self.stage_of_epoch(epoch)
        logs["stage"] = index + 1
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise ValueError(
                f"LayerwiseTrainer: the training loss is {float(loss)} at stage {index + 1}, "
                f"epoch {epoch + 1}. The inputs may hold NaN/Inf values "
                "(layerwise_keras.datasets.check_images finds them) or the learning rate is too high."
            )
        if epoch != self._last_epoch_of_stage[index]:
            return
        result = {"stage": index + 1}
        result.update({k: float(v) for k, v in logs.items() if k != "stage"})
        if self.stages[index].clusters is not None:
            figures = self._cluster_and_grow(index)
            counts = figures.pop("kmeans_counts")  # a list: stage_results only, not the epoch logs
            logs.update(figures)
            result.update(figures)
            result["kmeans_counts"] = counts
        stage_seconds = time.perf_counter() - self._stage_start
        logs["stage_seconds"] = stage_seconds
        result["stage_seconds"] = stage_seconds
        self._stage_start = None
        self.stage_results.append(result)
        if self.verbose:
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()
                     if k != "kmeans_counts"}
            print(f"\nLayerwiseTrainer: stage {index + 1}/{len(self.stages)} done: {shown}")

    def _cluster_and_grow(self, index):
        model = self.model
        stage = self.stages[index]
        conv = model.get_layer(f"stage{index + 1}_conv")
        position = model.layers.index(conv)
        prefix = keras.Sequential(
            [keras.Input(model.input_shape[1:])] + model.layers[: position + 1],
            name=f"stage{index + 1}_embedding",
        )
        stream = _EmbeddingStream(
            lambda images: prefix(images, training=False), self.kmeans_data, self.kmeans_batch_size
        )
        kmeans, figures = cluster_stage(stage, index + 1, stream, self.seed, distribute=_kmeans_distribute(model))

        # Freeze the stage, drop its readout, append the assignment and the next stage.
        conv.trainable = False
        while model.layers[-1] is not conv:
            model.pop()
        with _strategy_scope(model):  # mirrored variables under tf.distribute
            assign = ClusterAssignment(
                stage.clusters,
                assignment=stage.assignment,
                temperature=stage.temperature,
                name=f"stage{index + 1}_assign",
            )
            model.add(assign)
            assign.set_centroids(kmeans.cluster_centers_)
            self._add_stage(model, index + 1)
            self._recompile(model)
        return figures


def cluster_stage(stage, n, stream, seed=0, distribute=None):
    """Runs stage `n`'s k-means on a stream of its embeddings.

    Args:
        stage: the `Stage` (its `clusters` and `kmeans` options are used).
        n: 1-based stage index (seeds k-means with `seed + n - 1`; names the
            stage in errors).
        stream: the embeddings `[points, dim]`: anything `KMeans.fit` takes.
        seed: the growth's seed.
        distribute: what `KMeans(distribute=...)` takes: a
            `tf.distribute.Strategy`, `"processes"`, or None.

    Returns:
        `(kmeans, figures)`: the fitted `KMeans` and the per-stage figures
        the trainer logs (`kmeans_inertia`, `kmeans_iterations`,
        `cluster_usage`, ...; `kmeans_counts` too, for `stage_results` only).
    """
    options = {"seed": seed + n - 1}
    options.update(stage.kmeans)
    if distribute is not None:
        options["distribute"] = distribute
    kmeans = KMeans(stage.clusters, **options)
    start = time.perf_counter()
    try:
        kmeans.fit(stream)
    except ValueError as err:
        raise ValueError(f"LayerwiseTrainer: k-means of stage {n} failed: {err}") from err
    kmeans_seconds = time.perf_counter() - start
    counts = np.asarray(kmeans.counts_, dtype="float64")
    used = counts > 0
    p = counts[used] / counts.sum()
    entropy = float(-(p * np.log(p)).sum() / math.log(stage.clusters))
    if kmeans.n_reseeded_:
        warnings.warn(f"LayerwiseTrainer: k-means of stage {n} re-seeded {kmeans.n_reseeded_} empty clusters.")
    return kmeans, {
        "kmeans_inertia": float(kmeans.inertia_),
        "kmeans_mean_sq_dist": float(kmeans.inertia_) / max(kmeans.n_points_, 1),
        "kmeans_iterations": int(kmeans.n_iter_),
        "kmeans_seconds": kmeans_seconds,
        "cluster_usage": float(used.mean()),
        "cluster_entropy": entropy,
        "dead_clusters": int((~used).sum()),
        "kmeans_counts": [int(c) for c in kmeans.counts_],
    }


def _assign_layer_names(model):
    names = [l.name for l in model.layers if l.name.startswith("stage") and l.name.endswith("_assign")]
    return sorted(names, key=lambda name: int(name[len("stage"):-len("_assign")]))


def assignments(model, images, batch_size=256):
    """Returns the per-stage cluster-id maps of a grown model.

    Works on the grown `Sequential` (with `ClusterAssignment` layers) and on
    its portable form (`layerwise_keras.export.to_portable_model`, or its
    `.keras` file loaded with plain Keras), where each assignment is a frozen
    `Dense` layer `stage{i}_assign` of nearest-centroid scores.

    Args:
        model: a model grown by `LayerwiseTrainer`, or its portable form.
        images: float array `[n, H, W, C]`.
        batch_size: images per forward pass.

    Returns:
        A list with one int32 array `[n, h_i, w_i]` per clustered stage, in
        stage order: the id of the nearest centroid at every position.

    Example:

    >>> ids = assignments(model, x_test[:8])
    >>> [a.shape for a in ids]
    [(8, 9, 9), (8, 3, 3)]
    """
    from layerwise_keras.datasets import check_images

    images = check_images(images)
    names = _assign_layer_names(model)
    if not names:
        raise ValueError(f"assignments: model '{model.name}' has no stage*_assign layer (grow it first).")
    outputs = [[] for _ in names]
    if isinstance(model, keras.Sequential):
        for batch in _image_batches(images, batch_size):
            x, k = batch, 0
            for layer in model.layers:
                if k == len(names):
                    break
                if layer.name == names[k]:
                    outputs[k].append(keras.ops.convert_to_numpy(keras.ops.argmax(layer.scores(x), axis=-1)))
                    k += 1
                x = layer(x, training=False)
    else:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        probe = keras.Model(inputs, [model.get_layer(n).output for n in names])
        for batch in _image_batches(images, batch_size):
            scores_list = probe(batch, training=False)
            if not isinstance(scores_list, (list, tuple)):
                scores_list = [scores_list]
            for k, scores in enumerate(scores_list):
                outputs[k].append(keras.ops.convert_to_numpy(keras.ops.argmax(scores, axis=-1)))
    return [np.concatenate(o).astype("int32") for o in outputs]
