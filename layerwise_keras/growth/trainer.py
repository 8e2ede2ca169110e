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

After a stage grows, the model is compiled again (`growth.compiling`): `fit`
picks up the new train function on its next step. Validation in `fit` runs
before `on_epoch_end`, so the `val_*` figures of a stage's last epoch belong
to that stage, before it is clustered. What `fit` checks first is
`growth.fit_checks`; a stage's clustering step is `growth.stage_clustering`,
its convergence `growth.convergence`, its warnings `growth.diagnostics`.
"""

import json
import math
import time
import warnings

import keras
import numpy as np

from layerwise_keras.datasets.checks import check_images
from layerwise_keras.growth.builder import check_stages, grown_model
from layerwise_keras.growth.checkpoint import fresh_progress, progress_after
from layerwise_keras.growth.compiling import recompile_for_stage
from layerwise_keras.growth.convergence import Convergence, trainable_values
from layerwise_keras.growth.diagnostics import (GrowthIncompleteWarning, check_finite, epoch_figure_keys,
                                                incomplete_message, stage_line, stage_start_line)
from layerwise_keras.growth.fit_checks import check_fit, check_fit_params, check_growable_model
from layerwise_keras.growth.lifecycle import begin_stage, end_stage, report_stage
from layerwise_keras.growth.names import count_stages
from layerwise_keras.growth.stage_clustering import EmbeddingStream, cluster_stage
from layerwise_keras.growth.strategy import kmeans_distribute, strategy_scope


class LayerwiseTrainer(keras.callbacks.Callback):
    """Grows a `Sequential` model stage by stage inside one `model.fit` call.

    The model of `input_model` moves it before Keras' own callbacks in
    `fit`'s `callbacks` (and checks `fit`'s arguments first:
    `growth.fit_checks`), so the per-stage figures it adds to the epoch
    `logs` are recorded by the callbacks after it (`CSVLogger`,
    `TensorBoard`, `History`); with a plain `keras.Sequential`, pass it
    first yourself:

    `stage` (1-based) every epoch, and the figures of a clustered stage's
    end (`growth.diagnostics.epoch_figure_keys`: k-means inertia, usage,
    times, ...; NaN in the other epochs, so every key is there from the first).

    Keras' callbacks beside it: see `growth.fit_checks` (which are refused,
    and why) and docs/callbacks.md.

    `stage_results[i]` holds the same figures for stage i + 1 (the epoch
    logs of its last epoch, or of its best epoch when it stopped on
    convergence, then its clustering figures), `epochs` and `steps` (what
    it trained), with `patience` `converged` and `best_epoch`, `warnings`
    (messages about a likely failed stage: near-chance accuracy, collapsed
    clusters; also issued as `StageWarning`) and, for a clustered stage,
    `kmeans_counts`: the list of points per cluster at k-means' final
    assignment (over the points Lloyd ran on). A cluster-first stage
    (`Stage(cluster="patches")`) is clustered when it begins, before its
    epochs; its figures are reported with the rest at its end.

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
        steps_per_epoch: int, the training batches per epoch `fit` runs;
            needed when a stage's budget is `Stage(steps=...)`.

    Returns:
        A callback; after `fit`, `stage_results` holds one dict per stage.

    Example (`x`, `y`: 128 images 27x27x1 and their labels, 10 classes):

    >>> from layerwise_keras.growth.builder import input_model
    >>> from layerwise_keras.growth.stage import Stage
    >>> trainer = LayerwiseTrainer([Stage(16, 3, clusters=8), Stage(32, 3)],
    ...                            num_classes=10, kmeans_data=x, verbose=0)
    >>> model = input_model(x.shape[1:])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...               metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    >>> trainer.finished, [int(stage) for stage in history.history["stage"]]
    (True, [1, 2])
    >>> len(trainer.stage_results), len(trainer.stage_results[0]["kmeans_counts"])
    (2, 8)
    """

    def __init__(self, stages, num_classes, kmeans_data, kmeans_batch_size=256, seed=0, verbose=1,
                 steps_per_epoch=None):
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
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or int(steps_per_epoch) != steps_per_epoch
                                            or steps_per_epoch < 1):
            raise ValueError(f"LayerwiseTrainer: steps_per_epoch must be a positive integer, got {steps_per_epoch!r}.")
        for i, stage in enumerate(stages, start=1):
            if stage.steps is not None and steps_per_epoch is None:
                raise ValueError(
                    f"LayerwiseTrainer: stage {i} has a budget of steps={stage.steps}; pass "
                    "steps_per_epoch=(training batches per epoch) so that its epochs are known before fit."
                )
        self.steps_per_epoch = None if steps_per_epoch is None else int(steps_per_epoch)
        self.stage_results = []
        self._budgets = [stage.budget(self.steps_per_epoch) for stage in stages]
        self._figure_keys = epoch_figure_keys(stages)  # in every epoch's logs
        self._progress = fresh_progress()
        self._best_weights = None
        self._stage_start = None
        self._resumed_at = None
        self._scheduled = None  # (initial, scheduled) learning rate of the epoch in progress
        self._first_learning_rate = None  # the learning rate of the first compile (each stage starts from it)
        self._callbacks = []  # fit's callbacks (before_fit), to restart ReduceLROnPlateau at each stage

    @property
    def total_epochs(self):
        """The `epochs` to pass to `model.fit`: the sum of the stages' budgets in epochs.

        An upper bound when stages stop on convergence (`Stage(patience=...)`):
        the trainer then stops `fit` after the last stage ends.
        """
        return int(sum(self._budgets))

    @property
    def finished(self):
        """Whether every stage has ended (the growth is complete)."""
        return bool(self._progress["finished"])

    def stage_budgets(self):
        """Returns each stage's budget in epochs (`epochs`, or `ceil(steps / steps_per_epoch)`).

        Example:

        >>> from layerwise_keras.growth.stage import Stage
        >>> LayerwiseTrainer([Stage(8, clusters=4, steps=100), Stage(8, epochs=2)], 4, x,
        ...                  steps_per_epoch=30).stage_budgets()
        [4, 2]
        """
        return list(self._budgets)

    def ended_epochs(self):
        """Returns the 0-based epochs at whose end a stage ended (so far)."""
        return list(self._progress["ended"])

    # -- growth -------------------------------------------------------------

    def grown_stages(self, model=None):
        """Returns how many stages the model holds (the last may be in training)."""
        return count_stages(model or self.model)

    def _add_stage(self, model, index):
        """Appends stage `index + 1`; returns a cluster-first stage's clustering figures (else None).

        A `Stage(cluster="patches")` is clustered here, when it begins: its
        patch convolution, k-means of its (whitened) patches, its assignment,
        then the readout its epochs train on the code.
        """
        return begin_stage(model, self.stages[index], index + 1, self.num_classes, self._cluster(model, index),
                           self.seed, scope=strategy_scope)  # mirrored variables under tf.distribute

    def _recompile(self, model):
        rate = recompile_for_stage(model, self.num_classes, self._first_learning_rate, self.verbose)
        self._first_learning_rate = rate if self._first_learning_rate is None else self._first_learning_rate

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

        Example (`x`: 128 images 27x27x1):

        >>> from layerwise_keras.growth.builder import input_model
        >>> from layerwise_keras.growth.stage import Stage
        >>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8), Stage(8, 3)], 10, kmeans_data=x, verbose=0)
        >>> model = input_model(x.shape[1:])
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> [layer.name for layer in trainer.begin(model).layers]
        ['stage1_conv', 'stage1_readout_flatten', 'stage1_readout']
        """
        if self.grown_stages(model) == 0:
            check_growable_model(model)
            self._stage_start = time.perf_counter()
            self._progress["patch_figures"] = self._add_stage(model, 0)
            with strategy_scope(model):
                self._recompile(model)
        return model

    def before_fit(self, model, fit_args=None):
        """Called by `LayerwiseSequential.fit` before Keras builds the model: checks, then adds stage 1.

        With `fit_args` (the arguments of `fit`), runs every check of
        `growth.fit_checks.check_fit` first -- callbacks, loss, labels,
        images, `kmeans_data`, the whole planned network's shapes -- and moves
        the trainer before Keras' callbacks in `fit_args["callbacks"]`. Then
        adds stage 1 (see `begin`).

        Args:
            model: the compiled `LayerwiseSequential`.
            fit_args: dict of `fit`'s arguments, or None (no checks).

        Returns:
            None.
        """
        if fit_args is not None and self._resumed_at is None and self.grown_stages(model) == 0:
            fit_args["callbacks"] = check_fit(model, self, fit_args)
        if fit_args is not None:
            self._callbacks = list(fit_args.get("callbacks") or ())
        self.begin(model)

    def planned_model(self, input_shape):
        """Returns the network this trainer will grow on `input_shape` images, untrained (for `summary()`).

        The model `fit` starts from holds only its input until the growth
        adds stage 1; this is the whole planned network (`grown_model`):
        every stage's layers and output shapes.

        Args:
            input_shape: image shape `(height, width, channels)`.

        Returns:
            A built `keras.Sequential`.

        Example:

        >>> from layerwise_keras.growth.stage import Stage
        >>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=4), Stage(8, 3)], 3,
        ...                            np.zeros((8, 9, 9, 1), "float32"), verbose=0)
        >>> trainer.planned_model((9, 9, 1)).output_shape
        (None, 3)
        """
        return grown_model(self.stages, input_shape, self.num_classes, seed=self.seed)

    def restore(self, stage_results, epochs_done, progress=None, best_weights=None):
        """Continues an interrupted growth: the stages done and the epochs run so far.

        Use it with the model saved at the end of epoch `epochs_done` (it
        already holds the stages grown by then) and `fit(...,
        initial_epoch=epochs_done)`; `layerwise_keras.runs.run(...,
        resume=True)` does all of this from a run's checkpoint.

        Args:
            stage_results: the `stage_results` list at the time of the save.
            epochs_done: int, the number of epochs completed.
            progress: `progress()` at the time of the save (where the stage
                in training stands: its epochs, its best monitored value);
                None for a growth of fixed budgets, where it follows from
                `epochs_done`.
            best_weights: `best_weights()` at the time of the save (the best
                epoch's weights of a converging stage), or None.

        Returns:
            `self`.

        Example (a growth of fixed budgets, 1 + 1 epochs, stopped after stage 1;
        `growth.checkpoint` shows a whole resume from a checkpoint):

        >>> from layerwise_keras.growth.stage import Stage
        >>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8), Stage(8, 3)], 10, kmeans_data=x, verbose=0)
        >>> trainer.restore([{"stage": 1}], epochs_done=1).progress()["stage"], trainer.finished
        (1, False)
        """
        epochs_done = int(epochs_done)
        if not 0 <= epochs_done <= self.total_epochs:
            raise ValueError(f"LayerwiseTrainer.restore: epochs_done must be in 0..{self.total_epochs}, got {epochs_done}.")
        if progress is None:
            if any(stage.patience is not None for stage in self.stages):
                raise ValueError("LayerwiseTrainer.restore: stages that stop on convergence need the saved progress.")
            progress = progress_after(self._budgets, epochs_done)
        else:
            progress = {**fresh_progress(), **progress}
        if len(stage_results) != progress["stage"]:
            raise ValueError(
                f"LayerwiseTrainer.restore: after {epochs_done} epochs {progress['stage']} stage(s) are done, "
                f"but {len(stage_results)} stage result(s) were given."
            )
        self.stage_results = [dict(r) for r in stage_results]
        self._progress = progress
        self._best_weights = None if best_weights is None else [np.asarray(w) for w in best_weights]
        self._resumed_at = epochs_done
        return self

    def progress(self):
        """Returns where the growth stands, as a JSON-able dict (saved by checkpoints, for `restore`).

        Keys: `stage` (0-based index of the stage in training), `stage_epochs`
        (its epochs so far), `best`, `best_epoch`, `best_logs`, `wait` (its
        convergence tracking), `ended` (epochs at whose end a stage ended),
        `finished`.
        """
        return json.loads(json.dumps(self._progress))

    def best_weights(self):
        """Returns the best epoch's trainable weights of the converging stage in training (or None)."""
        return None if self._best_weights is None else list(self._best_weights)

    def on_train_begin(self, logs=None):
        model = self.model
        check_fit_params(self, self.params)
        if self._resumed_at is not None:
            if self.finished:
                raise ValueError(
                    "LayerwiseTrainer: this growth is complete; there is nothing to resume (evaluate the model)."
                )
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
        index = self._progress["stage"]
        if index < len(self.stages) and self._progress["stage_epochs"] == 0:
            if self.verbose:
                line = stage_start_line(self.stages[index], index + 1, len(self.stages), self._budgets[index])
                print(line, flush=True)
            if index > 0 and self._first_learning_rate is not None:
                # A new stage starts at the first compile's rate, whatever ReduceLROnPlateau did at the last
                # stage's end, and the plateau is measured afresh.
                self.model.optimizer.learning_rate = self._first_learning_rate
                for callback in self._callbacks:
                    if isinstance(callback, keras.callbacks.ReduceLROnPlateau):
                        callback.on_train_begin()
        if index < len(self.stages) and self.stages[index].schedule is not None:
            # The scheduled rate holds for this epoch only: on_epoch_end puts the initial one back, so the
            # compile config, checkpoints and the next stage's optimizer all keep the initial rate.
            stage = self.stages[index]
            base = self._initial_learning_rate(index)
            rate = stage.learning_rate(base, self._progress["stage_epochs"], self._budgets[index])
            self.model.optimizer.learning_rate = rate
            self._scheduled = (base, rate)

    def _initial_learning_rate(self, index):
        config = (self.model.get_compile_config() or {}).get("optimizer")
        rate = config.get("config", {}).get("learning_rate") if isinstance(config, dict) else None
        if not isinstance(rate, (int, float)) or isinstance(rate, bool):
            raise ValueError(
                f"LayerwiseTrainer: stage {index + 1} has schedule={self.stages[index].schedule!r}, which needs the "
                f"model compiled with a constant learning rate (got {rate!r}); drop the schedule or the "
                "optimizer's LearningRateSchedule."
            )
        return float(rate)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self._scheduled is not None:
            self.model.optimizer.learning_rate, logs["learning_rate"] = self._scheduled
            self._scheduled = None
        elif "learning_rate" in self._figure_keys:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        progress = self._progress
        index = progress["stage"]
        if index >= len(self.stages):
            raise RuntimeError(f"LayerwiseTrainer: epoch {epoch + 1} ran after the growth was complete.")
        logs["stage"] = index + 1
        for key in self._figure_keys:
            logs.setdefault(key, float("nan"))  # known only at a clustered stage's end
        check_finite(self.model, index + 1, epoch, logs)
        progress["stage_epochs"] += 1
        stage = self.stages[index]
        converged = False
        if stage.patience is not None:
            converged, improved = Convergence(progress).update(stage, epoch, logs, self.model)
            if improved:
                self._best_weights = trainable_values(self.model)
        if not converged and progress["stage_epochs"] < self._budgets[index]:
            return
        if progress["best_epoch"] is not None and progress["best_epoch"] != epoch:
            for variable, value in zip(self.model.trainable_variables, self._best_weights):
                variable.assign(value)  # the stage's best epoch
        stage_logs = progress["best_logs"] if progress["best_logs"] is not None else logs
        result = {"stage": index + 1}
        result.update({k: float(v) for k, v in stage_logs.items()
                       if k != "stage" and not (k in self._figure_keys and math.isnan(float(v)))})
        result["epochs"] = progress["stage_epochs"]
        if self.params.get("steps"):
            result["steps"] = progress["stage_epochs"] * int(self.params["steps"])
        if stage.patience is not None:
            result["converged"] = bool(converged)
            result["best_epoch"] = progress["best_epoch"] + 1  # 1-based, of the whole growth
        pending, next_start = None, None
        if stage.clusters is not None:
            figures, pending, next_start = self._cluster_and_grow(index)
            figures = dict(figures)
            counts = figures.pop("kmeans_counts")  # a list: stage_results only, not the epoch logs
            logs.update(figures)
            result.update(figures)
            result["kmeans_counts"] = counts
        end = time.perf_counter() if next_start is None else next_start
        logs["stage_seconds"] = result["stage_seconds"] = end - self._stage_start
        self._stage_start = next_start  # the next stage's time starts with its growth (a cluster-first k-means)
        previous = self.stage_results[-1] if self.stage_results else None
        self.stage_results.append(result)
        ended = progress["ended"] + [int(epoch)]
        self._progress = fresh_progress()
        self._progress.update(stage=index + 1, ended=ended, finished=index + 1 == len(self.stages),
                              patch_figures=pending)
        self._best_weights = None
        if self.verbose:
            print("\n" + stage_line(result, index + 1, len(self.stages)))
        report_stage(result, index + 1, self.num_classes, previous)
        if self.finished and epoch + 1 < self.params.get("epochs", epoch + 1):
            self.model.stop_training = True  # the last stage converged before fit's epochs ran out

    def on_train_end(self, logs=None):
        if not self.finished:
            index = self._progress["stage"]
            warnings.warn(incomplete_message(index + 1, len(self.stages), self._progress["stage_epochs"],
                                             self._budgets[index]), GrowthIncompleteWarning, stacklevel=2)

    def _cluster(self, model, index):
        """The `cluster` of stage `index + 1`'s lifecycle: k-means of a layer's output over `kmeans_data` (the
        model's prefix up to that layer, run on the images)."""

        def cluster(layer):
            front = model.layers[:model.layers.index(layer) + 1]
            prefix = keras.Sequential([keras.Input(model.input_shape[1:])] + front, name=f"stage{index + 1}_embedding")
            stream = EmbeddingStream(lambda images: prefix(images, training=False), self.kmeans_data,
                                     self.kmeans_batch_size, stage=index + 1)
            return cluster_stage(self.stages[index], index + 1, stream, self.seed,
                                 distribute=kmeans_distribute(model), verbose=self.verbose)

        return cluster

    def _cluster_and_grow(self, index):
        """Ends clustered stage `index + 1` and adds the next one.

        Returns:
            `(figures, next_figures, next_start)`: this stage's clustering
            figures, the next stage's when it clusters first (else None), and
            when the next stage's growth began.
        """
        model = self.model
        figures = end_stage(model, self.stages[index], index + 1, self._cluster(model, index),
                            begun=self._progress["patch_figures"], scope=strategy_scope)
        next_start = time.perf_counter()
        next_figures = self._add_stage(model, index + 1)
        with strategy_scope(model):
            self._recompile(model)
        return figures, next_figures, next_start


