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

import math
import time
import warnings

import keras
import numpy as np

from layerwise_keras import compat
from layerwise_keras.clustering.kmeans import KMeans
from layerwise_keras.datasets.batches import image_batches
from layerwise_keras.datasets.checks import check_images
from layerwise_keras.growth.builder import append_stage, check_stages, count_stages, freeze_stage, stage_layer
from layerwise_keras.growth.strategy import _kmeans_distribute, _replicated_strategy, _strategy_scope


class _EmbeddingStream:
    """A re-iterable stream of per-position embeddings, for `KMeans.fit`.

    With `stage` set, a chunk holding NaN/Inf is an error that names the
    stage (the trainer's own check, before k-means sees the points).
    """

    def __init__(self, embed_fn, data, batch_size, stage=None):
        self._embed_fn = embed_fn
        self._data = data
        self._batch_size = batch_size
        self._stage = stage

    def as_numpy_iterator(self):
        for images in image_batches(self._data, self._batch_size):
            emb = np.asarray(self._embed_fn(images))
            emb = emb.reshape(-1, emb.shape[-1])
            if self._stage is not None and not np.isfinite(emb).all():
                bad = int(emb.size - np.count_nonzero(np.isfinite(emb)))
                raise ValueError(
                    f"LayerwiseTrainer: stage {self._stage}'s embeddings hold {bad} non-finite values at the "
                    f"stage end, before k-means. {_NON_FINITE_HINT}"
                )
            yield emb


_NON_FINITE_HINT = (
    "The inputs may hold NaN/Inf values (layerwise_keras.datasets.check_images finds them) "
    "or the learning rate is too high."
)


def _non_finite_variables(model):
    """Names and non-finite counts of the model's trainable variables that hold NaN/Inf."""
    bad = []
    for variable in model.trainable_variables:
        value = keras.ops.convert_to_numpy(variable)
        count = int(value.size - np.count_nonzero(np.isfinite(value)))
        if count:
            bad.append(f"{variable.path} ({count} of {value.size})")
    return bad


def _stage_line(result, n, total):
    """One readable line for the end of stage `n`: accuracy, k-means figures, seconds."""
    parts = []
    for key in ("accuracy", "val_accuracy", "loss"):
        if key in result:
            parts.append(f"{key.replace('_', ' ')} {result[key]:.4f}")
    if "kmeans_iterations" in result:
        used = len(result["kmeans_counts"]) - result["dead_clusters"]
        parts.append(
            f"k-means {used}/{len(result['kmeans_counts'])} clusters used (entropy {result['cluster_entropy']:.2f}), "
            f"{result['kmeans_iterations']} iterations, {result['kmeans_seconds']:.1f} s"
        )
    return f"LayerwiseTrainer: stage {n}/{total} done in {result['stage_seconds']:.1f} s: " + ", ".join(parts)


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
        stages = check_stages(stages, num_classes)
        if kmeans_data is None:
            raise ValueError("LayerwiseTrainer: kmeans_data (the training images) is required.")
        if not hasattr(kmeans_data, "as_numpy_iterator"):
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
        return count_stages(model or self.model)

    def _add_stage(self, model, index):
        append_stage(model, self.stages[index], index + 1, self.num_classes, self.seed)

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
                compat.symbolic_build(model, (x, y))  # what fit does before its first step
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
        if not any(isinstance(l, keras.layers.InputLayer) for l in compat.sequential_layers(model)):
            raise ValueError(
                "LayerwiseTrainer: the model must start with a keras.Input of image shape (H, W, C). "
                "Start from layerwise_keras.input_model(input_shape)."
            )

    def begin(self, model):
        """Adds stage 1 (convolution + readout) to an empty compiled model and re-compiles it.

        `fit` does this itself: the model of `input_model` calls it (as
        `before_fit`) before Keras builds the model, on every backend, and
        on the TensorFlow backend `on_train_begin` also does it for a plain
        `keras.Sequential`. Call it yourself only to grow a plain
        `keras.Sequential` on the JAX or PyTorch backend, after `compile`
        and before `fit`. Calling it when stage 1 is already there does
        nothing.

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

    def before_fit(self, model):
        """Called by `LayerwiseSequential.fit` before Keras builds the model: adds stage 1 (see `begin`)."""
        self.begin(model)

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
        self._check_finite(index + 1, epoch, logs)
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
            print("\n" + _stage_line(result, index + 1, len(self.stages)))

    def _check_finite(self, n, epoch, logs):
        """Stops with a clear error when the loss or a trainable weight turned NaN/Inf during the epoch."""
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise ValueError(
                f"LayerwiseTrainer: the training loss is {float(loss)} at stage {n}, epoch {epoch + 1}. "
                + _NON_FINITE_HINT
            )
        bad = _non_finite_variables(self.model)
        if bad:
            raise ValueError(
                f"LayerwiseTrainer: non-finite weights at stage {n}, epoch {epoch + 1} (training loss {loss}): "
                f"{', '.join(bad)}. " + _NON_FINITE_HINT
            )

    def _cluster_and_grow(self, index):
        model = self.model
        stage = self.stages[index]
        conv = stage_layer(model, index + 1, "conv")
        position = model.layers.index(conv)
        prefix = keras.Sequential(
            [keras.Input(model.input_shape[1:])] + model.layers[: position + 1],
            name=f"stage{index + 1}_embedding",
        )
        stream = _EmbeddingStream(
            lambda images: prefix(images, training=False), self.kmeans_data, self.kmeans_batch_size,
            stage=index + 1,
        )
        kmeans, figures = cluster_stage(stage, index + 1, stream, self.seed, distribute=_kmeans_distribute(model))

        # Freeze the stage, drop its readout, append the assignment and the next stage.
        with _strategy_scope(model):  # mirrored variables under tf.distribute
            freeze_stage(model, stage, index + 1, kmeans.cluster_centers_)
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
