"""What a growth checks when `fit` starts, before any epoch: callbacks, loss, data, the planned network.

`LayerwiseSequential.fit` hands its arguments to `LayerwiseTrainer.before_fit`,
which runs `check_fit` here. Every problem found is an error that names it
and says what to do, raised before the first epoch:

* **Keras callbacks** beside the trainer (`check_callbacks`): the trainer is
  moved before Keras' own callbacks, so they see the stage figures it logs.
  `EarlyStopping`, `ModelCheckpoint(save_best_only=True)` and
  `BackupAndRestore` compare or restore networks across stages that differ
  in structure, so they are refused with the growth's equivalent;
  `ReduceLROnPlateau` and `LearningRateScheduler` are refused where a stage
  has its own `Stage(schedule=...)`. The others (`ModelCheckpoint` every
  epoch, weights-only too, `CSVLogger`, `TensorBoard`, `TerminateOnNaN`,
  `ReduceLROnPlateau` and `LearningRateScheduler` without stage schedules,
  `History`, `ProgbarLogger`, `LambdaCallback`, your own) run unchanged;
  `ReduceLROnPlateau` starts each stage afresh (see `LayerwiseTrainer`).
* **The loss** (`logits_loss`): the network ends in logits. A loss given by
  its string name (`"sparse_categorical_crossentropy"`,
  `"categorical_crossentropy"`) is made right: compiled as the same loss
  with `from_logits=True`. A loss object that expects probabilities
  (`from_logits=False`) is refused, with the fix in the message.
* **Data** (`datasets.checks.check_fit_data`): labels, images against the
  model's input, `kmeans_data` against the model's input, empty data,
  0..255 pixel values (a warning).
* **The planned network** (`builder.grown_model`): every stage built
  symbolically on the model's input shape, so an input too small for stage
  3 is an error naming stage 3 and the sizes before stage 1 trains.

Example (`x`, `y`: 128 images 27x27x1 and their labels, 10 classes):

>>> from layerwise_keras import LayerwiseTrainer, Stage, input_model
>>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8), Stage(8, 3)], 10, kmeans_data=x, verbose=0)
>>> model = input_model(x.shape[1:])
>>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
>>> model.fit(x, y, epochs=trainer.total_epochs,  # check_fit runs first
...           callbacks=[trainer, keras.callbacks.EarlyStopping(patience=2)])
Traceback (most recent call last):
...
ValueError: LayerwiseTrainer: EarlyStopping beside the trainer would stop fit at a stage boundary, ...
"""

import keras

from layerwise_keras.growth.names import TRAINER

# Losses Keras users name by string that compute a cross-entropy on probabilities unless told otherwise.
_LOGITS_LOSSES = {
    "sparsecategoricalcrossentropy": ("SparseCategoricalCrossentropy", "sparse"),
    "categoricalcrossentropy": ("CategoricalCrossentropy", "one_hot"),
}


def _loss_key(name):
    return name.replace("_", "").lower()


def label_format(loss):
    """Returns what labels the compiled loss wants: "sparse" (class ids), "one_hot", or None (not known).

    Args:
        loss: the model's `loss` as given to `compile` (a string, a `keras.losses.Loss`, a function).

    Returns:
        "sparse", "one_hot" or None.

    Example:

    >>> label_format("sparse_categorical_crossentropy")
    'sparse'
    """
    if isinstance(loss, str):
        entry = _LOGITS_LOSSES.get(_loss_key(loss))
        return entry[1] if entry else None
    entry = _LOGITS_LOSSES.get(_loss_key(type(loss).__name__))
    if entry is None:
        entry = _LOGITS_LOSSES.get(_loss_key(getattr(loss, "__name__", "")))
    return entry[1] if entry else None


def logits_loss(loss):
    """Returns the loss to compile on the network's logits, or raises where it expects probabilities.

    Args:
        loss: the model's `loss` as given to `compile`.

    Returns:
        `(loss, changed)`: a `keras.losses` object with `from_logits=True` for a
        cross-entropy named by string, else `loss` itself; `changed` says
        whether it was replaced.

    Raises:
        ValueError: for a cross-entropy object or function that expects
            probabilities (`from_logits=False`), with the loss to use instead.

    Example:

    >>> loss, changed = logits_loss("sparse_categorical_crossentropy")
    >>> type(loss).__name__, loss.from_logits, changed
    ('SparseCategoricalCrossentropy', True, True)
    """
    if isinstance(loss, str):
        entry = _LOGITS_LOSSES.get(_loss_key(loss))
        if entry is None:
            return loss, False
        return getattr(keras.losses, entry[0])(from_logits=True), True
    entry = _LOGITS_LOSSES.get(_loss_key(type(loss).__name__)) or _LOGITS_LOSSES.get(
        _loss_key(getattr(loss, "__name__", "")))
    if entry is None:
        return loss, False
    from_logits = getattr(loss, "from_logits", None)
    if from_logits is None and isinstance(loss, keras.losses.Loss):
        from_logits = (loss.get_config() or {}).get("from_logits")
    if from_logits:
        return loss, False
    raise ValueError(
        f"LayerwiseTrainer: the model outputs logits (its readout has no softmax), but the loss {entry[0]} "
        "expects probabilities (from_logits=False), which trains badly without an error. Compile with "
        f"loss=keras.losses.{entry[0]}(from_logits=True) (or the string name "
        f"{'sparse_categorical_crossentropy' if entry[1] == 'sparse' else 'categorical_crossentropy'!r}, "
        "which the trainer compiles with from_logits=True)."
    )


def _stage_patience_hint(callback):
    monitor = getattr(callback, "monitor", "val_loss")
    patience = getattr(callback, "patience", 0)
    min_delta = abs(getattr(callback, "min_delta", 0.0))
    return f"Stage(..., patience={max(int(patience), 1)}, monitor={monitor!r}, min_delta={min_delta:g})"


def _is_keras_callback(callback):
    return type(callback).__module__.split(".")[0] == "keras"


def check_callbacks(callbacks, trainer):
    """Refuses the Keras callbacks that would silently ruin a growth; returns the list, the trainer moved up.

    The trainer is moved before every Keras built-in callback (a class of
    `keras.callbacks`: `CSVLogger`, `TensorBoard`, `ModelCheckpoint`, ...),
    so they see the figures it logs and the model it grew; your own
    callbacks keep their place (one listed before the trainer still runs
    before it, e.g. to change the logs it reads).

    Args:
        callbacks: the `callbacks` list given to `fit`.
        trainer: the `LayerwiseTrainer`.

    Returns:
        A new list: your callbacks listed before the trainer, the trainer,
        then the others in their order.

    Raises:
        ValueError: naming the callback and what to use instead (see the
            module docstring for which are refused and why).

    Example:

    `trainer`: a `LayerwiseTrainer`.

    >>> import os
    >>> logger = keras.callbacks.CSVLogger(os.path.join(tmp_dir, "log.csv"))
    >>> [type(c).__name__ for c in check_callbacks([logger, trainer], trainer)]
    ['LayerwiseTrainer', 'CSVLogger']
    """
    callbacks = list(callbacks or ())
    scheduled = [i + 1 for i, stage in enumerate(trainer.stages) if stage.schedule is not None]
    for callback in callbacks:
        name = type(callback).__name__
        if isinstance(callback, keras.callbacks.EarlyStopping):
            raise ValueError(
                f"LayerwiseTrainer: EarlyStopping beside the trainer would stop fit at a stage boundary, where "
                f"{callback.monitor!r} jumps because a fresh readout starts training (and with "
                "restore_best_weights it would put an earlier stage's weights into the grown network). Stop each "
                f"stage on convergence instead: {_stage_patience_hint(callback)} (the trainer keeps the stage's best "
                "epoch and stops fit when the last stage converges)."
            )
        if isinstance(callback, keras.callbacks.ModelCheckpoint) and callback.save_best_only:
            raise ValueError(
                "LayerwiseTrainer: ModelCheckpoint(save_best_only=True) would compare networks of different "
                "stages and keep an early stage's as 'best'. The model at the end of fit is the grown network; "
                "to keep every epoch use ModelCheckpoint(save_best_only=False), to resume a growth use "
                "layerwise_keras.growth.checkpoint.GrowthCheckpoint (what `layerwise-keras train --resume` uses), "
                "and for each stage's best epoch use Stage(patience=..., monitor=...)."
            )
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            raise ValueError(
                "LayerwiseTrainer: BackupAndRestore restores weights into the model fit starts from, but a growth "
                "changes the model's structure at every stage (and its trainer's progress is not in the backup). "
                "Use layerwise_keras.growth.checkpoint.GrowthCheckpoint with LayerwiseTrainer.restore, or "
                "`layerwise-keras train --resume` / layerwise_keras.runs.run(..., resume=True)."
            )
        if scheduled and isinstance(callback, (keras.callbacks.ReduceLROnPlateau,
                                               keras.callbacks.LearningRateScheduler)):
            raise ValueError(
                f"LayerwiseTrainer: {name} and Stage(schedule=...) (stage(s) {scheduled}) would both set the "
                "learning rate every epoch, and one would silently undo the other. Keep one: drop the stages' "
                f"schedule, or drop {name}."
            )
    position = next((i for i, c in enumerate(callbacks) if c is trainer), len(callbacks))
    before = [c for c in callbacks[:position] if not _is_keras_callback(c)]
    return before + [trainer] + [c for c in callbacks if c is not trainer and c not in before]


def check_growable_model(model):
    """Refuses a model the trainer cannot grow: not a `keras.Sequential`, or one without a `keras.Input`.

    Example:

    >>> from layerwise_keras import input_model
    >>> check_growable_model(input_model((9, 9, 1)))
    >>> inputs = keras.Input((9, 9, 1))
    >>> check_growable_model(keras.Model(inputs, keras.layers.Flatten()(inputs)))
    Traceback (most recent call last):
    ...
    TypeError: LayerwiseTrainer grows a keras.Sequential model; got Functional.
    Start from layerwise_keras.input_model(input_shape).
    """
    from layerwise_keras import compat

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


def check_fit_params(trainer, params):
    """Checks Keras' `fit` parameters (`Callback.params`: `epochs`, `steps`) against the trainer's budgets.

    Example:

    `trainer`: a `LayerwiseTrainer` of three one-epoch stages.

    >>> check_fit_params(trainer, {"epochs": trainer.total_epochs, "steps": 10})
    >>> check_fit_params(trainer, {"epochs": 5, "steps": 10})
    Traceback (most recent call last):
    ...
    ValueError: LayerwiseTrainer: fit(epochs=5) must equal trainer.total_epochs=3
    (the sum of the stages' budgets in epochs).
    """
    epochs = params.get("epochs")
    if epochs is not None and epochs != trainer.total_epochs:
        raise ValueError(
            f"LayerwiseTrainer: fit(epochs={epochs}) must equal trainer.total_epochs="
            f"{trainer.total_epochs} (the sum of the stages' budgets in epochs)."
        )
    steps = params.get("steps")
    if trainer.steps_per_epoch is not None and steps is not None and steps != trainer.steps_per_epoch:
        raise ValueError(
            f"LayerwiseTrainer: fit runs {steps} steps per epoch, but the trainer was given "
            f"steps_per_epoch={trainer.steps_per_epoch} (its stages' step budgets are counted with it)."
        )


def check_fit(model, trainer, fit_args):
    """Runs every check of a growth's `fit` before its first epoch (see the module docstring).

    Args:
        model: the compiled `LayerwiseSequential` (stage 1 not yet added).
        trainer: the `LayerwiseTrainer`.
        fit_args: dict of `fit`'s arguments (`x`, `y`, `epochs`, `callbacks`,
            `validation_data`, `validation_split`, `batch_size`, ...).

    Returns:
        The callbacks to run, the trainer first.

    Raises:
        ValueError, TypeError: naming the problem and the fix.

    Example:

    `x`, `y`: 128 images 27x27x1 and their labels; `trainer`: a
    `LayerwiseTrainer` for them (10 classes).

    >>> from layerwise_keras import input_model
    >>> model = input_model(x.shape[1:])
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> callbacks = check_fit(model, trainer, {"x": x, "y": y, "epochs": trainer.total_epochs,
    ...                                        "callbacks": [keras.callbacks.TerminateOnNaN(), trainer]})
    >>> [type(c).__name__ for c in callbacks]
    ['LayerwiseTrainer', 'TerminateOnNaN']
    >>> check_fit(model, trainer, {"x": x, "y": y + 10, "epochs": trainer.total_epochs})
    Traceback (most recent call last):
    ...
    ValueError: `y` must be class ids in 0..9 (10 classes), got max 19.
    """
    from layerwise_keras.datasets.checks import check_fit_data
    from layerwise_keras.growth.builder import grown_model, image_shape

    callbacks = check_callbacks(fit_args.get("callbacks"), trainer)
    epochs = fit_args.get("epochs")
    if epochs is not None and epochs != trainer.total_epochs:
        raise ValueError(
            f"LayerwiseTrainer: fit(epochs={epochs}) must equal trainer.total_epochs={trainer.total_epochs} "
            f"(the sum of the stages' budgets in epochs, {trainer.stage_budgets()})."
        )
    input_shape = image_shape(model)
    grown_model(trainer.stages, input_shape, trainer.num_classes, owner=TRAINER)
    fmt = label_format(getattr(model, "loss", None))
    check_fit_data(fit_args.get("x"), fit_args.get("y"), input_shape, trainer.num_classes, fmt, name="x")
    validation = fit_args.get("validation_data")
    if isinstance(validation, (tuple, list)) and len(validation) >= 2:
        check_fit_data(validation[0], validation[1], input_shape, trainer.num_classes, fmt, name="validation_data")
    elif validation is not None:
        check_fit_data(validation, None, input_shape, trainer.num_classes, fmt, name="validation_data")
    check_fit_data(trainer.kmeans_data, None, input_shape, trainer.num_classes, None, name="kmeans_data",
                   images_only=True)
    return callbacks
