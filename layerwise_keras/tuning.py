"""Hyperparameter search over whole layerwise growths, with keras-tuner.

A trial of the search is one complete multi-stage growth (every stage trained,
clustered and frozen inside one `model.fit`), scored by the *final* model's
validation figures. `LayerwiseHyperModel` is a `keras_tuner.HyperModel`, so it
works with the stock tuners (`keras_tuner.RandomSearch`, `Hyperband`,
`BayesianOptimization`); `make_tuner` builds one with sensible defaults and
`tune` runs a whole search from a configuration, as `layerwise-keras tune`
does.

The search space is a JSON-able dict over a base configuration
(`layerwise_keras.config` format). Every key is optional; a knob that is not
in the space keeps the configuration's value:

```python
space = {
    "width": [8, 16],                  # stage widths (every stage)
    "geometry": ["3/3"],               # "kernel/stride" per stage; int k = "k/k"
    "clusters": [[8, 16], [12, 24]],   # K per clustered stage (all but the last)
    "assignment": ["hard", "soft"],    # per clustered stage
    "epochs": [1, 2],                  # epochs of each stage
    "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"},
}
```

A flat list gives every stage the same choices, each stage tuned on its own
(hyperparameters `stage1_width`, `stage2_width`, ...); a list of lists gives
one list per stage (per clustered stage for `clusters` and `assignment`); a
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
and shuffled the way `layerwise_keras.pipeline.grow` does it (a seeded
`tf.data` pipeline, the configuration's batch size), so a trial is
reproduced by training its configuration (`config_for(hp)`) with
`pipeline.grow` or `layerwise-keras train --config`.
"""

import copy
import itertools
import json
import math
import numbers
import os
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

from layerwise_keras.config import validate_config
from layerwise_keras.layers import ASSIGNMENTS, ClusterAssignment
from layerwise_keras.trainer import LayerwiseTrainer, Stage, input_model, stage_conv, stage_readout

TESTED_KERAS_TUNER = "1.4.8"
if keras_tuner.__version__ != TESTED_KERAS_TUNER:  # pragma: no cover
    warnings.warn(
        f"layerwise_keras.tuning is tested with keras-tuner=={TESTED_KERAS_TUNER} "
        f"(pip install layerwise_keras[tuning]); found {keras_tuner.__version__}."
    )

TUNERS = ("random", "hyperband", "bayesian")
SPACE_KEYS = ("width", "geometry", "clusters", "assignment", "epochs", "learning_rate")
BEST_CONFIG = "best_config.json"
MAX_GEOMETRIES = 10000
# Figures the trainer adds to the epoch logs: not trial metrics.
_TRAINER_LOGS = {
    "stage", "stage_seconds", "kmeans_inertia", "kmeans_mean_sq_dist", "kmeans_iterations",
    "kmeans_seconds", "cluster_usage", "cluster_entropy", "dead_clusters",
}


# -- the search space ----------------------------------------------------------


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_int(minimum):
    def check(value, key):
        if not _is_int(value) or value < minimum:
            raise ValueError(f"search space: {key} values must be integers >= {minimum}, got {value!r}.")
        return int(value)

    return check


def _check_assignment(value, key):
    if value not in ASSIGNMENTS:
        raise ValueError(f"search space: {key} values must be in {ASSIGNMENTS}, got {value!r}.")
    return value


def _check_geometry(value, key):
    """`3` or `"3"` -> (3, 3); `"3/2"` -> (3, 2)."""
    if _is_int(value):
        kernel = stride = int(value)
    elif isinstance(value, str):
        parts = value.strip().split("/")
        try:
            if len(parts) not in (1, 2):
                raise ValueError
            kernel = int(parts[0])
            stride = int(parts[1]) if len(parts) == 2 else kernel
        except ValueError:
            raise ValueError(
                f"search space: {key} values must be 'kernel/stride' strings like '3/3' or ints, got {value!r}."
            ) from None
    else:
        raise ValueError(
            f"search space: {key} values must be 'kernel/stride' strings like '3/3' or ints, got {value!r}."
        )
    if kernel < 1 or stride < 1:
        raise ValueError(f"search space: {key}: kernel and stride must be >= 1, got {value!r}.")
    return kernel, stride


def _per_stage(value, key, count, check, what):
    """Normalises a flat list / list of lists / scalar into `count` lists of checked values."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"search space: {key} must not be empty.")
        nested = [isinstance(v, (list, tuple)) for v in value]
        if all(nested):
            if len(value) != count:
                raise ValueError(
                    f"search space: {key} has {len(value)} lists, one per {what}; the configuration has {count}."
                )
            lists = [list(v) for v in value]
        elif any(nested):
            raise ValueError(
                f"search space: {key} mixes values and lists; give one flat list for every {what} "
                f"or one list per {what}."
            )
        else:
            lists = [list(value)] * count
    else:
        lists = [[value]] * count
    result = []
    for i, choices in enumerate(lists, start=1):
        if not choices:
            raise ValueError(f"search space: {key} list {i} is empty.")
        checked = []
        for v in choices:
            v = check(v, key)
            if v not in checked:
                checked.append(v)
        result.append(checked)
    return result


def _check_learning_rate(value):
    def positive(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"search space: learning_rate values must be finite numbers > 0, got {v!r}.")
        return float(v)

    if isinstance(value, dict):
        unknown = set(value) - {"min", "max", "sampling"}
        if unknown or not {"min", "max"} <= set(value):
            raise ValueError(
                "search space: learning_rate range must be {'min': ..., 'max': ..., 'sampling': 'log'|'linear'}, "
                f"got {value!r}."
            )
        low, high = positive(value["min"]), positive(value["max"])
        sampling = value.get("sampling", "log")
        if sampling not in ("log", "linear"):
            raise ValueError(f"search space: learning_rate sampling must be 'log' or 'linear', got {sampling!r}.")
        if not low < high:
            raise ValueError(f"search space: learning_rate needs min < max, got {low} and {high}.")
        return {"min": low, "max": high, "sampling": sampling}
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("search space: learning_rate must not be empty.")
        return sorted({positive(v) for v in value})
    return [positive(value)]


def _output_size(size, kernel, stride, padding):
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1 if size >= kernel else 0


def feature_map_sizes(input_shape, geometry, paddings=None):
    """Returns the spatial size of every stage's output for a geometry.

    Args:
        input_shape: image shape `(height, width, channels)`.
        geometry: one `(kernel, stride)` pair per stage.
        paddings: one `"valid"`/`"same"` per stage (default all `"valid"`).

    Returns:
        A list of `(height, width)` pairs, one per stage; a stage whose
        output would be empty gets 0 there (and so do the stages after it).

    Example:

    >>> feature_map_sizes((27, 27, 1), [(3, 3), (3, 3), (3, 3)])
    [(9, 9), (3, 3), (1, 1)]
    """
    paddings = paddings or ["valid"] * len(geometry)
    h, w = int(input_shape[0]), int(input_shape[1])
    sizes = []
    for (kernel, stride), padding in zip(geometry, paddings):
        h, w = _output_size(h, kernel, stride, padding), _output_size(w, kernel, stride, padding)
        if h < 1 or w < 1:
            h = w = 0
        sizes.append((h, w))
    return sizes


def geometry_name(geometry):
    """Returns the `geometry` hyperparameter value of per-stage `(kernel, stride)` pairs.

    Example:

    >>> geometry_name([(3, 3), (2, 1)])
    '3/3,2/1'
    """
    return ",".join(f"{k}/{s}" for k, s in geometry)


def parse_geometry(name):
    """Inverse of `geometry_name`: `"3/3,2/1"` -> `[(3, 3), (2, 1)]`."""
    return [_check_geometry(part, "geometry") for part in name.split(",")]


def validate_space(space, config, input_shape):
    """Checks a search space against a configuration and an input shape.

    Args:
        space: the search-space dict (see the module docstring), or `None`
            for an empty one (nothing tuned).
        config: the base configuration (`layerwise_keras.config` format).
        input_shape: image shape `(height, width, channels)`.

    Returns:
        A normalised dict: `width`, `epochs` (one list of choices per stage),
        `clusters`, `assignment` (one list per clustered stage), `geometry`
        (the valid per-stage `(kernel, stride)` combinations), and
        `learning_rate` (a range dict or a list of values); a knob that is not
        tuned is `None`.

    Raises:
        ValueError: on unknown keys, bad values, lists that do not match the
            number of stages, or when no kernel/stride combination keeps
            every stage's feature map non-empty for `input_shape`.

    Example:

    >>> config = load_config("hierarchical_2level")
    >>> validate_space({"width": [8, 16], "geometry": ["3/3", "4/4"]}, config, (9, 9, 1))["geometry"]
    [[(3, 3), (3, 3)]]

    (with a warning: 3 of the 4 combinations leave no positions on 9x9.)
    """
    config = validate_config(config)
    space = {} if space is None else space
    if not isinstance(space, dict):
        raise ValueError(f"search space: must be a JSON object, got {type(space).__name__}.")
    unknown = sorted(set(space) - set(SPACE_KEYS))
    if unknown:
        raise ValueError(f"search space: unknown keys {unknown}; expected a subset of {list(SPACE_KEYS)}.")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"search space: expected an image shape (height, width, channels), got {input_shape}.")
    stages = config["stages"]
    n = len(stages)
    result = dict.fromkeys(SPACE_KEYS)
    if "width" in space:
        result["width"] = _per_stage(space["width"], "width", n, _check_int(1), "stage")
    if "epochs" in space:
        result["epochs"] = _per_stage(space["epochs"], "epochs", n, _check_int(1), "stage")
    for key, check in (("clusters", _check_int(2)), ("assignment", _check_assignment)):
        if key in space:
            if n == 1:
                raise ValueError(f"search space: {key} needs clustered stages; the configuration has one stage.")
            result[key] = _per_stage(space[key], key, n - 1, check, "clustered stage")
    if "learning_rate" in space:
        result["learning_rate"] = _check_learning_rate(space["learning_rate"])

    paddings = [s["padding"] for s in stages]
    if "geometry" not in space:  # the configuration's own (possibly non-square) kernels: check them
        h, w = input_shape[:2]
        for n, (stage, padding) in enumerate(zip(stages, paddings), start=1):
            (kh, kw), (sh, sw) = stage["kernel_size"], stage["strides"]
            h, w = _output_size(h, kh, sh, padding), _output_size(w, kw, sw, padding)
            if h < 1 or w < 1:
                raise ValueError(
                    f"search space: the configuration's stage {n} leaves no spatial positions "
                    f"for input {input_shape[0]}x{input_shape[1]}."
                )
        return result
    options = _per_stage(space["geometry"], "geometry", n, _check_geometry, "stage")
    count = math.prod(len(o) for o in options)
    if count > MAX_GEOMETRIES:
        raise ValueError(
            f"search space: {count} kernel/stride combinations (more than {MAX_GEOMETRIES}); narrow 'geometry'."
        )
    valid, invalid = [], []
    for combo in itertools.product(*options):
        sizes = feature_map_sizes(input_shape, combo, paddings)
        (valid if sizes[-1][0] >= 1 else invalid).append((list(combo), sizes))
    if not valid:
        examples = "; ".join(
            f"{geometry_name(c)} -> {' -> '.join('x'.join(map(str, s)) if s[0] else 'nothing' for s in sizes)}"
            for c, sizes in invalid[:4]
        )
        raise ValueError(
            f"search space: no kernel/stride combination fits the input {input_shape[0]}x{input_shape[1]} "
            f"with {n} stages (every stage needs a non-empty feature map): {examples}."
        )
    if invalid:
        warnings.warn(
            f"search space: pruned {len(invalid)} of {count} kernel/stride combinations that leave no "
            f"spatial positions for input {input_shape[0]}x{input_shape[1]}, e.g. "
            f"{', '.join(geometry_name(c) for c, _ in invalid[:3])}."
        )
    result["geometry"] = [c for c, _ in valid]
    return result


def _halve_double(value, minimum):
    return sorted({max(minimum, value // 2), value, 2 * value})


def _learning_rate_of(optimizer_config):
    try:
        value = keras.optimizers.get(copy.deepcopy(optimizer_config)).get_config().get("learning_rate")
    except (TypeError, ValueError):
        return None
    return float(f"{value:.6g}") if isinstance(value, numbers.Real) else None


def default_space(config, tune_epochs=True):
    """Returns the search space `layerwise-keras tune` uses when given no `--space`.

    Around the configuration's values: every stage's width in {w/2, w, 2w};
    every clustered stage's K in {K/2, K, 2K} and its assignment in `hard`,
    `soft`, `triangle` (the configuration's first); every stage's epochs in
    {e/2, e, 2e} (rounded down, at least 1; left out when `tune_epochs` is
    False, as Hyperband sets the epochs); the learning rate log-uniform in
    [lr/3, 3 lr]. Kernel sizes and strides stay the configuration's (they
    match the data's patch size); tune them with an explicit `geometry`.

    Args:
        config: the base configuration.
        tune_epochs: include the stages' epochs.

    Returns:
        A search-space dict (see the module docstring).

    Example:

    >>> default_space(load_config("hierarchical_2level"))["width"]
    [[32, 64, 128], [16, 32, 64]]
    """
    config = validate_config(config)
    stages = config["stages"]
    space = {"width": [_halve_double(s["width"], 1) for s in stages]}
    if len(stages) > 1:
        space["clusters"] = [_halve_double(s["clusters"], 2) for s in stages[:-1]]
        space["assignment"] = [
            [s["assignment"]] + [a for a in ASSIGNMENTS if a != s["assignment"]] for s in stages[:-1]
        ]
    if tune_epochs:
        space["epochs"] = [_halve_double(s["epochs"], 1) for s in stages]
    lr = _learning_rate_of(config["optimizer"])
    if lr is not None:
        space["learning_rate"] = {"min": float(f"{lr / 3:.6g}"), "max": float(f"{lr * 3:.6g}"), "sampling": "log"}
    return space


def load_space(path):
    """Reads a search-space JSON file (validated later, against the configuration).

    Args:
        path: a `.json` file holding a search-space object.

    Returns:
        The dict.

    Example:

    >>> space = load_space("space.json")
    """
    try:
        with open(path) as f:
            space = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"No search-space file {path!r}.") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read search space {path}: {err}") from err
    if not isinstance(space, dict):
        raise ValueError(f"search space {path}: must be a JSON object, got {type(space).__name__}.")
    return space


# -- the grown network without training ---------------------------------------


def grown_model(stages, input_shape, num_classes, seed=0, name="layerwise"):
    """Builds the network a `LayerwiseTrainer` grows, untrained.

    The same layers, names, order and frozen flags as after the growth
    (`stage{n}_conv`, `stage{n}_assign` for each clustered stage, the last
    stage's readout), with zero centroids: the structure to load a grown
    model's weights into (`model.load_weights`).

    Args:
        stages: list of `Stage` (or their config dicts); every stage but the
            last needs `clusters`.
        input_shape: image shape `(height, width, channels)`.
        num_classes: int, the number of logits.
        seed: int, the initialisers' seed (as `LayerwiseTrainer(seed=...)`).
        name: the model's name.

    Returns:
        A built `keras.Sequential` (not compiled).

    Example:

    >>> model = grown_model([Stage(8, 3, clusters=8), Stage(8, 3)], (9, 9, 1), num_classes=4)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage1_assign', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']
    """
    stages = [s if isinstance(s, Stage) else Stage.from_config(s) for s in stages]
    # The trainer's own checks (clusters on every stage but the last, num_classes).
    LayerwiseTrainer(stages, num_classes, kmeans_data=np.zeros((1,) + tuple(input_shape), "float32"), verbose=0)
    model = input_model(input_shape, name=name)
    last = len(stages) - 1
    for index, stage in enumerate(stages):
        n = index + 1
        conv = stage_conv(stage, n, seed)
        model.add(conv)
        if any(d is not None and d < 1 for d in model.output_shape[1:3]):
            raise ValueError(f"grown_model: stage {n} leaves no spatial positions (output {model.output_shape}).")
        if index < last:
            conv.trainable = False
            model.add(ClusterAssignment(stage.clusters, assignment=stage.assignment,
                                        temperature=stage.temperature, name=f"stage{n}_assign"))
        else:
            for layer in stage_readout(stage, n, num_classes, seed):
                model.add(layer)
    return model


# -- the hypermodel ------------------------------------------------------------


class _SaveGrownModel(keras.callbacks.Callback):
    """Stands in for keras-tuner's `SaveBestEpoch`: checkpoints the grown model once, at the end.

    keras-tuner saves the weights at the best epoch; the model changes
    structure between stages, so only the final, fully grown model is saved
    (when its objective beats the trial's earlier executions).
    """

    def __init__(self, save_best):
        super().__init__()
        self.save_best = save_best
        self.final_logs = None

    def on_epoch_end(self, epoch, logs=None):
        self.final_logs = dict(logs or {})

    def on_train_end(self, logs=None):
        if self.final_logs is None or getattr(self.model, "stop_training", False):
            return
        objective = self.save_best.objective
        if objective.has_value(self.final_logs):
            value = objective.get_value(self.final_logs)
            if not objective.better_than(value, self.save_best.best_value):
                return
            self.save_best.best_value = value
        self.model.save_weights(self.save_best.filepath)


def _is_save_best_epoch(callback):
    return type(callback).__name__ == "SaveBestEpoch" and hasattr(callback, "filepath") and hasattr(
        callback, "objective"
    )


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
    as `layerwise_keras.pipeline.grow` does. The k-means of every stage runs
    on `kmeans_data`, or else on the training images (`x`).

    Args:
        config: the base configuration (`layerwise_keras.config` format): the
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

    >>> config = load_config("hierarchical_2level")
    >>> splits = load_splits(dict(config["dataset"], train=600, val=200, test=200))
    >>> hypermodel = LayerwiseHyperModel(config, splits["x_train"].shape[1:], splits["num_classes"],
    ...                                  space={"width": [8, 16], "epochs": 1})
    >>> tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=2,
    ...                                  seed=0, directory="runs/tuning", project_name="doc")
    >>> tuner.search(splits["x_train"], splits["y_train"],
    ...              validation_data=(splits["x_val"], splits["y_val"]), verbose=0)
    >>> best_model = tuner.get_best_models(1)[0]
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
        space, n = self.space, len(self.config["stages"])
        chosen = {}
        if space["geometry"] is not None:
            chosen["geometry"] = parse_geometry(
                self._pick(hp, "geometry", [geometry_name(g) for g in space["geometry"]])
            )
        for i in range(n):
            for key in ("width", "clusters", "assignment", "epochs"):
                lists = space[key]
                if lists is not None and i < len(lists):
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
            A configuration dict that `layerwise_keras.config.load_config`
            accepts once written as JSON and that `pipeline.grow` /
            `layerwise-keras train --config` trains: the base configuration
            with the chosen stage settings, learning rate and seed.

        Example:

        >>> config = hypermodel.config_for(tuner.get_best_hyperparameters()[0])
        """
        chosen = self._values(hp)
        config = copy.deepcopy(self.config)
        budget = hp.values.get("tuner/epochs")
        for i, stage in enumerate(config["stages"]):
            n = i + 1
            if "geometry" in chosen:
                kernel, stride = chosen["geometry"][i]
                stage["kernel_size"], stage["strides"] = [kernel, kernel], [stride, stride]
            for key in ("width", "clusters", "assignment", "epochs"):
                if f"stage{n}_{key}" in chosen:
                    stage[key] = chosen[f"stage{n}_{key}"]
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
            from layerwise_keras import datasets

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
        callbacks = [_SaveGrownModel(cb) if _is_save_best_epoch(cb) else cb for cb in callbacks]
        grown.fit(*args, epochs=trainer.total_epochs, callbacks=[trainer, final, *callbacks], **kwargs)
        if len(trainer.stage_results) < len(stages):
            raise keras_tuner.errors.FailedTrialError(
                f"LayerwiseHyperModel: training stopped after {len(trainer.stage_results)} of {len(stages)} "
                "stages (an EarlyStopping callback?); a layerwise trial needs all its epochs."
            )
        return {k: float(v) for k, v in (final.logs or {}).items()
                if k not in _TRAINER_LOGS and isinstance(v, numbers.Real)}


# -- tuners and the whole search -----------------------------------------------


def make_tuner(hypermodel, tuner="random", max_trials=10, max_epochs=None, factor=3, objective="val_accuracy",
               directory="runs/tuning", project_name=None, seed=None, overwrite=False, **kwargs):
    """Builds a seeded keras-tuner tuner for a `LayerwiseHyperModel`.

    Args:
        hypermodel: a `LayerwiseHyperModel`.
        tuner: `"random"` (`RandomSearch`), `"hyperband"` or `"bayesian"`
            (`BayesianOptimization`).
        max_trials: int, the number of trials (for Hyperband, a cap on the
            trials its brackets would run).
        max_epochs: Hyperband only: the largest number of epochs *per stage*
            a trial gets (default: the configuration's largest stage epochs,
            at least 2).
        factor: Hyperband's reduction factor.
        objective: the metric to maximise or minimise (keras-tuner infers
            the direction), `"val_accuracy"` by default.
        directory, project_name: the search is kept in
            `directory/project_name` (default project: the hypermodel's name).
        seed: int, the oracle's seed (default: the hypermodel's seed).
        overwrite: keras-tuner's flag: `False` resumes an existing search of
            that folder, `True` deletes it first.
        **kwargs: other `keras_tuner.Tuner` arguments.

    Returns:
        The tuner.

    Example:

    >>> tuner = make_tuner(hypermodel, "hyperband", max_trials=6, max_epochs=3)
    """
    if tuner not in TUNERS:
        raise ValueError(f"make_tuner: tuner must be one of {TUNERS}, got {tuner!r}.")
    if not _is_int(max_trials) or max_trials < 1:
        raise ValueError(f"make_tuner: max_trials must be a positive integer, got {max_trials!r}.")
    seed = hypermodel.seed if seed is None else int(seed)
    common = dict(objective=objective, seed=seed, directory=directory,
                  project_name=project_name or hypermodel.name, overwrite=overwrite, **kwargs)
    if tuner == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if tuner == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if getattr(hypermodel, "tunes_epochs", False):
        raise ValueError(
            "make_tuner: Hyperband sets the epochs of every stage from its budget (max_epochs); "
            "leave 'epochs' out of the search space."
        )
    if max_epochs is None:
        max_epochs = max(2, max(s["epochs"] for s in hypermodel.config["stages"]))
    if not _is_int(max_epochs) or max_epochs < 1:
        raise ValueError(f"make_tuner: max_epochs must be a positive integer, got {max_epochs!r}.")
    result = keras_tuner.Hyperband(hypermodel, max_epochs=max_epochs, factor=factor, **common)
    if not result.oracle.trials:
        result.oracle.max_trials = max_trials
    return result


class TuningResult:
    """What `tune` returns.

    Attributes:
        tuner: the keras-tuner tuner (`tuner.get_best_models(1)[0]` reloads
            the best trial's grown model).
        hypermodel: the `LayerwiseHyperModel`.
        splits: the data (`pipeline.load_splits`).
        best_trial: the best `keras_tuner` trial.
        best_hyperparameters: dict of the best trial's values.
        best_score: float, its objective value (e.g. final val accuracy).
        best_config: the layerwise configuration of the best trial.
        best_config_path: where `best_config` was written.
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        return (f"TuningResult(best_score={self.best_score!r}, best_hyperparameters={self.best_hyperparameters!r}, "
                f"best_config_path={self.best_config_path!r})")


def check_tuner_folder(directory, project_name, overwrite=False):
    """Refuses an existing non-empty search folder unless `overwrite`.

    keras-tuner silently resumes a search found in its folder; a new search
    must not pick up someone else's trials, so an existing non-empty
    `directory/project_name` is an error unless `overwrite` (which deletes
    it).

    Args:
        directory: the tuner's `directory`.
        project_name: the tuner's `project_name`.
        overwrite: allow replacing it.

    Returns:
        The project folder's path.

    Example:

    >>> check_tuner_folder("runs/tuning", "digits")
    'runs/tuning/digits'
    """
    path = os.path.join(directory, project_name)
    for folder in (directory, path):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise FileExistsError(f"{folder} exists and is not a folder.")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise FileExistsError(
            f"Tuner folder {path} is not empty (an earlier search); refusing to resume or replace it. "
            "Pass --overwrite (overwrite=True) to delete it and start a new search, or choose another "
            "--directory / --project-name."
        )
    return path


def tune(config, space=None, tuner="random", max_trials=10, max_epochs=None, factor=3,
         objective="val_accuracy", directory="runs/tuning", project_name=None, seed=None, overwrite=False,
         splits=None, verbose=1):
    """Runs a whole search for a configuration and writes the best configuration.

    Loads the configuration's dataset (`pipeline.load_splits`), searches the
    space with a seeded tuner, and writes the best trial's configuration to
    `directory/project_name/best_config.json` (a file `layerwise-keras train
    --config` accepts; training it with the same seed reproduces the trial).

    Args:
        config: a configuration dict, or a bundled name / JSON path.
        space: a search-space dict, or `None` for `default_space(config)`
            (without `epochs` under Hyperband).
        tuner: `"random"`, `"hyperband"` or `"bayesian"`.
        max_trials, max_epochs, factor, objective: see `make_tuner`.
        directory, project_name: the search folder (project default: the
            configuration's name); an existing non-empty one is refused
            unless `overwrite`.
        seed: int overriding the configuration's seed (data, trials, oracle).
        overwrite: delete an earlier search in that folder first.
        splits: the data (`pipeline.load_splits`'s dict), default: loaded
            from the configuration's `dataset` with `seed`.
        verbose: keras-tuner's and `fit`'s verbosity.

    Returns:
        A `TuningResult`.

    Example:

    >>> result = tune("hierarchical_2level", max_trials=3, directory="runs/tuning")
    >>> result.best_score, result.best_config_path
    """
    from layerwise_keras.config import load_config
    from layerwise_keras.pipeline import load_splits

    config = load_config(config) if isinstance(config, str) else validate_config(config)
    seed = int(config.get("seed", 0) if seed is None else seed)
    config["seed"] = seed
    if tuner not in TUNERS:
        raise ValueError(f"tune: tuner must be one of {TUNERS}, got {tuner!r}.")
    project_name = project_name or config.get("name") or "layerwise"
    project = check_tuner_folder(directory, project_name, overwrite)
    if splits is None:
        splits = load_splits(config["dataset"], seed=seed)
    if space is None:
        space = default_space(config, tune_epochs=tuner != "hyperband")
    hypermodel = LayerwiseHyperModel(config, splits["x_train"].shape[1:], splits["num_classes"], space=space,
                                     kmeans_data=splits["x_train"], seed=seed)
    search = make_tuner(hypermodel, tuner, max_trials=max_trials, max_epochs=max_epochs, factor=factor,
                        objective=objective, directory=directory, project_name=project_name, seed=seed,
                        overwrite=overwrite)
    search.search(splits["x_train"], splits["y_train"], validation_data=(splits["x_val"], splits["y_val"]),
                  verbose=verbose)
    best = search.oracle.get_best_trials(1)
    if not best:
        raise RuntimeError(f"tune: no trial completed in {project}; see the trial messages there.")
    best = best[0]
    best_config = hypermodel.config_for(best.hyperparameters)
    best_config["name"] = f"{project_name}_tuned"
    best_config["description"] = (
        f"Best of {len(search.oracle.trials)} {tuner} trials (trial {best.trial_id}, "
        f"{objective} {best.score:.6g}) searched from configuration {config.get('name')!r}."
    )
    path = os.path.join(project, BEST_CONFIG)
    with open(path, "w") as f:
        json.dump(best_config, f, indent=2)
    values = {k: v for k, v in best.hyperparameters.values.items()
              if not k.startswith("tuner/") or k == "tuner/epochs"}
    return TuningResult(tuner=search, hypermodel=hypermodel, splits=splits, best_trial=best,
                        best_hyperparameters=values, best_score=float(best.score), best_config=best_config,
                        best_config_path=path)
