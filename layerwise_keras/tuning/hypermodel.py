"""Hyperparameter search over whole layerwise growths, with keras-tuner.

A trial of the search is one complete multi-stage growth (every stage trained,
clustered and frozen inside one `model.fit`), scored by the *final* model's
validation figures. `LayerwiseHyperModel` is a `keras_tuner.HyperModel`, so it
works with the stock tuners (`keras_tuner.RandomSearch`, `Hyperband`,
`BayesianOptimization`); `make_tuner` builds one with sensible defaults and
`tune` runs a whole search from a configuration, as `layerwise-keras tune`
does.

The search space is a JSON-able dict over a base configuration
(`layerwise_keras.runs.config` format). Every key is optional; a knob that is not
in the space keeps the configuration's value:

```python
space = {
    "width": [8, 16],                  # stage widths (every stage)
    "geometry": ["3/3"],               # "kernel/stride" per stage; int k = "k/k"
    "clusters": [[8, 16], [12, 24]],   # K per clustered stage (all but the last)
    "assignment": ["hard", "soft"],    # per clustered stage
    "q": [1, 8],                       # q of "nearest" (other assignments use q = 1)
    "whiten": [0, 1e-2],               # ZCA epsilon before k-means; 0 (or null) = none
    "gate": [[64, 0]],                 # a gated stage's C (handoff="bottleneck" stages only); 0 = none
    "epochs": [1, 2],                  # epochs of each stage
    "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"},
}
```

A flat list gives every stage the same choices, each stage tuned on its own
(hyperparameters `stage1_width`, `stage2_width`, ...); a list of lists gives
one list per stage (per clustered stage for `clusters`, `assignment`, `q`,
`whiten` and `gate`: the keys of `growth.kinds.KNOBS`); a
scalar fixes the value. `learning_rate` is a `{"min", "max", "sampling"}`
range (`"log"` by default), a list of values, or one number. The geometry
(kernel size and stride) of all stages is one joint choice, hyperparameter
`geometry` with values like `"3/3,3/3"`: combinations whose feature maps
shrink to nothing for the given input shape are pruned (with a warning), and
a space with no valid combination is an error.

Hyperband: its budget `tuner/epochs` is the number of epochs of *every*
stage (a trial trains `n_stages * tuner/epochs` epochs in all), so the space
must not tune `epochs`. A grown model cannot resume training (its earlier
stages are clustered and frozen), so a trial that Hyperband continues with a
larger budget re-grows from scratch.

Reloading: `build(hp)` returns the *grown* network of `hp` (the layers the
`LayerwiseTrainer` will have added, untrained, see `grown_model`), compiled.
`fit` grows a fresh `input_model` with a `LayerwiseTrainer` inside
`model.fit` and checkpoints the fully grown model once, at the end of
training (keras-tuner's per-epoch checkpoint would save a half-grown model
whenever an early stage scored best); it returns the final epoch's figures, so
the trial's score is the grown model's. `tuner.get_best_models()` therefore
rebuilds the right structure and loads the checkpoint into it: the reloaded
model predicts exactly as the model at the end of its trial.

Determinism: every trial calls `keras.utils.set_random_seed(seed)` and grows
with that seed; the tuners' oracles are seeded too. NumPy inputs are batched
and shuffled the way `layerwise_keras.runs.pipeline.grow` does it (a seeded
`tf.data` pipeline, the configuration's batch size), so a trial is
reproduced by training its configuration (`config_for(hp)`) with
`pipeline.grow` or `layerwise-keras train --config`.
"""

import copy
import numbers
import warnings

try:
    import keras_tuner
except ImportError as err:  # an optional extra
    raise ImportError(
        "layerwise_keras.tuning needs keras-tuner: pip install layerwise_keras[tuning] "
        "(it pins keras-tuner==1.4.8)."
    ) from err

import keras
import numpy as np

from layerwise_keras import compat, datasets
from layerwise_keras.growth.builder import grown_model, input_model
from layerwise_keras.growth.diagnostics import STAGE_FIGURES
from layerwise_keras.growth.kinds import KNOBS
from layerwise_keras.growth.stage import Stage
from layerwise_keras.growth.trainer import LayerwiseTrainer
from layerwise_keras.runs.config import validate_config
from layerwise_keras.tuning.space import CLUSTERED_KEYS, default_space, geometry_name, parse_geometry, validate_space


TESTED_KERAS_TUNER = "1.4.8"


# Figures the trainer adds to the epoch logs: not trial metrics.
_TRAINER_LOGS = {"stage", "whiten_seconds", "learning_rate", *STAGE_FIGURES}


class _SaveGrownModel(keras.callbacks.Callback):
    """Stands in for keras-tuner's `SaveBestEpoch`: checkpoints the grown model once, at the end.

    keras-tuner saves the weights at the best epoch; the model changes
    structure between stages, so only the final, fully grown model is saved
    (when its objective beats the trial's earlier executions).
    """

    def __init__(self, save_best, trainer):
        super().__init__()
        self.save_best = save_best
        self.trainer = trainer
        self.final_logs = None

    def on_epoch_end(self, epoch, logs=None):
        self.final_logs = dict(logs or {})

    def on_train_end(self, logs=None):
        if self.final_logs is None or not self.trainer.finished:  # stopped before the growth was complete
            return
        objective = self.save_best.objective
        if objective.has_value(self.final_logs):
            value = objective.get_value(self.final_logs)
            if not objective.better_than(value, self.save_best.best_value):
                return
            self.save_best.best_value = value
        self.model.save_weights(self.save_best.filepath)


class _FinalLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = None

    def on_epoch_end(self, epoch, logs=None):
        self.logs = dict(logs or {})


class LayerwiseHyperModel(keras_tuner.HyperModel):
    """A keras-tuner `HyperModel` whose trials are whole layerwise growths.

    `build(hp)` returns the grown network of `hp`'s stages, untrained and
    compiled (what `get_best_models` loads a trial's checkpoint into);
    `fit(hp, model, ...)` grows a fresh model with a `LayerwiseTrainer`
    inside `model.fit`, checkpoints the fully grown model and returns the
    final epoch's figures (`val_accuracy`, `val_loss`, `accuracy`, `loss`),
    so a trial is scored by its final model, not by an early stage's readout.
    Under `Hyperband`, `tuner/epochs` is the number of epochs of every stage.

    Arguments given to `tuner.search(...)` go to `model.fit`. NumPy images and
    labels (and a `(x_val, y_val)` `validation_data`) are batched with the
    configuration's `batch_size` (or `batch_size=`) and shuffled with `seed`,
    as `layerwise_keras.runs.pipeline.grow` does. The k-means of every stage runs
    on `kmeans_data`, or else on the training images (`x`).

    Args:
        config: the base configuration (`layerwise_keras.runs.config` format): the
            stages, optimizer and batch size of every knob not tuned.
        input_shape: image shape `(height, width, channels)`.
        num_classes: int, the number of labels.
        space: the search-space dict (see the module docstring), or `None`
            for `default_space(config)`.
        kmeans_data: images k-means runs on (default: the training images
            passed to `search`).
        seed: int, seeds each trial (default: the configuration's seed, or 0).
        verbose: 1 prints the `LayerwiseTrainer`'s line per stage.
        name: the hypermodel's and the models' name (default: the
            configuration's name).

    Returns:
        A `keras_tuner.HyperModel`.

    Example:

    >>> from layerwise_keras.datasets import load_splits
    >>> from layerwise_keras.runs.config import load_config
    >>> config = load_config("hierarchical_2level")
    >>> splits = load_splits(dict(config["dataset"], train=200, val=50, test=50))
    >>> hypermodel = LayerwiseHyperModel(config, splits["x_train"].shape[1:], splits["num_classes"],
    ...                                  space={"width": [8, 16], "epochs": 1})
    >>> tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=2,
    ...                                  seed=0, directory=tmp_dir, project_name="doc")
    >>> tuner.search(splits["x_train"], splits["y_train"],
    ...              validation_data=(splits["x_val"], splits["y_val"]), verbose=0)
    >>> best_model = tuner.get_best_models(1)[0]
    >>> [layer.name for layer in best_model.layers]
    ['stage1_conv', 'stage1_assign', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']
    """

    def __init__(self, config, input_shape, num_classes, space=None, kmeans_data=None, seed=None, verbose=0,
                 name=None):
        config = validate_config(config)
        self.config = config
        self.input_shape = tuple(int(d) for d in input_shape)
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"LayerwiseHyperModel: num_classes must be an integer >= 2, got {num_classes!r}.")
        self.num_classes = int(num_classes)
        self.space_spec = default_space(config) if space is None else copy.deepcopy(space)
        self.space = validate_space(self.space_spec, config, self.input_shape)
        self.kmeans_data = kmeans_data
        self.seed = int(config.get("seed", 0) if seed is None else seed)
        self.verbose = verbose
        super().__init__(name=name or config.get("name") or "layerwise")

    # -- hyperparameters -> stages / optimizer / configuration ---------------

    @property
    def tunes_epochs(self):
        """Whether the space tunes the stages' epochs (not allowed under Hyperband)."""
        return self.space["epochs"] is not None

    @staticmethod
    def _pick(hp, name, values):
        if len(values) == 1:
            return hp.Fixed(name, values[0])
        return hp.Choice(name, values)

    def _values(self, hp):
        """Registers the space in `hp` and returns the chosen values."""
        space = self.space
        chosen = {}
        if space["geometry"] is not None:
            chosen["geometry"] = parse_geometry(
                self._pick(hp, "geometry", [geometry_name(g) for g in space["geometry"]])
            )
        for i, stage in enumerate(self.config["stages"]):
            for key in ("width",) + CLUSTERED_KEYS + ("epochs",):
                lists = space[key]
                if lists is None or i >= len(lists) or lists[i] == [None]:  # [None]: a patch stage's width
                    continue
                knob = KNOBS.get(key)
                if knob is not None and knob.needs is not None and not knob.needs(Stage.from_config(stage)):
                    continue  # a field this stage does not have (a gate without a bottleneck hand-off)
                chosen[f"stage{i + 1}_{key}"] = self._pick(hp, f"stage{i + 1}_{key}", lists[i])
        lr = space["learning_rate"]
        if isinstance(lr, dict):
            chosen["learning_rate"] = hp.Float("learning_rate", lr["min"], lr["max"], sampling=lr["sampling"])
        elif lr is not None:
            chosen["learning_rate"] = self._pick(hp, "learning_rate", lr)
        return chosen

    def stages_for(self, hp):
        """Returns the `Stage` list of hyperparameters `hp` (Hyperband's `tuner/epochs` included)."""
        return [Stage.from_config(s) for s in self.config_for(hp)["stages"]]

    def optimizer_for(self, hp):
        """Returns a fresh optimizer of the configuration with `hp`'s learning rate."""
        return keras.optimizers.get(copy.deepcopy(self.config_for(hp)["optimizer"]))

    def config_for(self, hp):
        """Returns the layerwise configuration of hyperparameters `hp`.

        Args:
            hp: a `keras_tuner.HyperParameters` (e.g. a trial's, or
                `tuner.get_best_hyperparameters()[0]`).

        Returns:
            A configuration dict that `layerwise_keras.runs.config.load_config`
            accepts once written as JSON and that `pipeline.grow` /
            `layerwise-keras train --config` trains: the base configuration
            with the chosen stage settings, learning rate and seed.

        Example:

        >>> from layerwise_keras.runs.config import load_config
        >>> hypermodel = LayerwiseHyperModel(load_config("hierarchical_2level"), (9, 9, 1), 4,
        ...                                  space={"width": [8, 16], "epochs": 1})
        >>> hp = keras_tuner.HyperParameters()  # after a search: tuner.get_best_hyperparameters()[0]
        >>> config = hypermodel.config_for(hp)   # a choice not made yet takes its first value
        >>> [(stage["width"], stage["epochs"]) for stage in config["stages"]]
        [(8, 1), (8, 1)]
        >>> hp.values
        {'stage1_width': 8, 'stage1_epochs': 1, 'stage2_width': 8, 'stage2_epochs': 1}
        """
        chosen = self._values(hp)
        config = copy.deepcopy(self.config)
        budget = hp.values.get("tuner/epochs")
        for i, stage in enumerate(config["stages"]):
            n = i + 1
            if "geometry" in chosen:
                kernel, stride = chosen["geometry"][i]
                stage["kernel_size"], stage["strides"] = [kernel, kernel], [stride, stride]
            for key in ("width",) + CLUSTERED_KEYS + ("epochs",):
                if f"stage{n}_{key}" in chosen:
                    value = chosen[f"stage{n}_{key}"]
                    none = KNOBS[key].none if key in KNOBS else None
                    stage[key] = None if none is not None and value == none else value
            if stage.get("assignment", "hard") != "nearest":
                stage["q"] = 1  # q is the nearest assignment's; the others are q = 1
            if budget is not None:
                stage["epochs"] = int(budget)
        if "learning_rate" in chosen:
            lr = float(chosen["learning_rate"])
            optimizer = config["optimizer"]
            if isinstance(optimizer, str):
                optimizer = {"class_name": optimizer, "config": {}}
            optimizer = copy.deepcopy(optimizer)
            optimizer.setdefault("config", {})["learning_rate"] = lr
            config["optimizer"] = optimizer
        config["seed"] = self.seed
        return validate_config(config, source="tuned config")

    # -- keras-tuner API -----------------------------------------------------

    def build(self, hp):
        """Returns `hp`'s grown network, untrained, compiled (see `grown_model`).

        Args:
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            A compiled `keras.Sequential` with the structure of the model a
            trial with `hp` grows; its optimizer is built, so a trial's
            checkpoint (weights and optimizer state) loads into it.
        """
        stages = self.stages_for(hp)
        model = grown_model(stages, self.input_shape, self.num_classes, seed=self.seed, name=self.name)
        model.compile(
            optimizer=self.optimizer_for(hp),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.optimizer.build(model.trainable_variables)
        return model

    def _data(self, args, kwargs):
        args = list(args)
        x = args.pop(0) if args else kwargs.pop("x", None)
        y = args.pop(0) if args else kwargs.pop("y", None)
        if args:
            raise keras_tuner.errors.FatalValueError(
                "LayerwiseHyperModel.fit: pass search() arguments other than x and y by keyword."
            )
        if x is None:
            raise keras_tuner.errors.FatalValueError("LayerwiseHyperModel.fit: no training data (x).")
        kmeans_data = self.kmeans_data
        if isinstance(x, np.ndarray):

            if y is None:
                raise keras_tuner.errors.FatalValueError("LayerwiseHyperModel.fit: NumPy images need labels (y).")
            if "validation_split" in kwargs:
                raise keras_tuner.errors.FatalValueError(
                    "LayerwiseHyperModel.fit: pass validation_data=(x_val, y_val) rather than validation_split."
                )
            batch_size = kwargs.pop("batch_size", None) or self.config["batch_size"]
            shuffle = kwargs.pop("shuffle", True)
            train = datasets.from_arrays(x, y, batch_size=batch_size, shuffle=bool(shuffle), seed=self.seed)
            kwargs["shuffle"] = False  # `train` reshuffles itself every epoch
            val = kwargs.get("validation_data")
            if isinstance(val, (tuple, list)) and len(val) == 2 and isinstance(val[0], np.ndarray):
                kwargs["validation_data"] = datasets.from_arrays(val[0], val[1], batch_size=batch_size)
            return [train], kwargs, x if kmeans_data is None else kmeans_data
        if kmeans_data is None:
            if not hasattr(x, "as_numpy_iterator"):
                raise keras_tuner.errors.FatalValueError(
                    "LayerwiseHyperModel.fit: k-means needs the training images; give NumPy arrays or a "
                    "tf.data.Dataset to search(), or LayerwiseHyperModel(kmeans_data=...)."
                )
            kmeans_data = x
        return ([x] if y is None else [x, y]), kwargs, kmeans_data

    def fit(self, hp, model, *args, **kwargs):
        """Grows a model for `hp` inside one `model.fit` and returns its final figures.

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.
            model: the model `build(hp)` returned; its compile configuration
                (with any tuner overrides) compiles the fresh model that is
                grown (a grown network cannot be trained again).
            *args, **kwargs: `search()`'s arguments for `model.fit`
                (`x`, `y`, `validation_data`, `callbacks`, `verbose`, ...).
                `epochs` comes from the stages (under Hyperband, from
                `tuner/epochs`), so `search()` must not pass it.

        Returns:
            A dict of the final epoch's metrics (`loss`, `accuracy`,
            `val_loss`, `val_accuracy`, ...): the grown model's figures.
        """
        kwargs = dict(kwargs)
        callbacks = list(kwargs.pop("callbacks", None) or [])
        epochs = kwargs.pop("epochs", None)
        kwargs.pop("initial_epoch", None)  # Hyperband's: a grown model re-grows from scratch
        budget = hp.values.get("tuner/epochs")
        if budget is None and epochs is not None:
            raise keras_tuner.errors.FatalValueError(
                "LayerwiseHyperModel.fit: do not pass epochs to search(); each stage's epochs come from the "
                "configuration or the search space (the trial trains their sum)."
            )
        if budget is not None and self.tunes_epochs:
            warnings.warn(
                "LayerwiseHyperModel: Hyperband's tuner/epochs sets the epochs of every stage; the space's "
                "'epochs' are ignored (leave them out of a Hyperband search)."
            )
        keras.utils.set_random_seed(self.seed)  # first: the tf.data shuffle's seed depends on it
        args, kwargs, kmeans_data = self._data(args, kwargs)
        stages = self.stages_for(hp)
        trainer = LayerwiseTrainer(stages, self.num_classes, kmeans_data=kmeans_data, seed=self.seed,
                                   verbose=self.verbose)
        grown = input_model(self.input_shape, name=model.name)
        compile_config = model.get_compile_config()
        if compile_config:
            grown.compile_from_config(compile_config)
        else:
            grown.compile(optimizer=self.optimizer_for(hp),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        final = _FinalLogs()
        callbacks = [_SaveGrownModel(cb, trainer) if compat.is_save_best_epoch(cb) else cb for cb in callbacks]
        grown.fit(*args, epochs=trainer.total_epochs, callbacks=[trainer, final, *callbacks], **kwargs)
        if len(trainer.stage_results) < len(stages):
            raise keras_tuner.errors.FailedTrialError(
                f"LayerwiseHyperModel: training stopped after {len(trainer.stage_results)} of {len(stages)} "
                "stages (an EarlyStopping callback?); a layerwise trial needs all its epochs."
            )
        return {k: float(v) for k, v in (final.logs or {}).items()
                if k not in _TRAINER_LOGS and isinstance(v, numbers.Real)}
