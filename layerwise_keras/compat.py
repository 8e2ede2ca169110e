"""The private APIs of Keras (and of keras-tuner and JAX) that layerwise_keras relies on, in one place.

Nothing else in the package touches a private name of those libraries; each
use is one function here, and `tests/test_compat.py` checks every one of
them against the installed releases, so a release that changes one fails
that test loudly rather than a growth somewhere later.

* `symbolic_build(model, data_batch)`: `Model._symbolic_build`, what `fit`
  does before its first step (creates the optimizer's, loss' and metrics'
  variables); the trainer calls it after adding a stage under
  `tf.distribute` / `keras.distribution`.
* `sequential_layers(model)`: `Sequential._layers`, which includes the
  `InputLayer` that `Sequential.layers` hides.
* `is_argmax_op(operation)`: a `keras.ops.argmax` node of a functional graph
  (class `keras.src.ops.numpy.Argmax`, not public), rewritten for the
  LiteRT/ONNX converters.
* `is_save_best_epoch(callback)`: keras-tuner's per-epoch checkpoint callback
  (`keras_tuner.src.engine.tuner_utils.SaveBestEpoch`), replaced by one
  checkpoint of the fully grown model.
* `jax_backends_started()`: whether JAX has initialised its backends
  (`jax._src.xla_bridge.backends_are_initialized`).

`KERAS_VERSIONS` is the range of Keras releases this package supports (the
same as `install_requires` in `setup.cfg`); `check_keras_version()` warns
outside it.
"""

import warnings

import keras

KERAS_VERSIONS = ("3.13", "3.16")  # supported: >= first, < second (setup.cfg: keras>=3.13,<3.16)


def _version_tuple(version):
    parts = []
    for piece in str(version).split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def keras_version_supported(version=None):
    """Whether a Keras version (default: the installed one) is in `KERAS_VERSIONS`.

    Example:

    >>> keras_version_supported("3.15.1")
    True
    """
    version = _version_tuple(keras.__version__ if version is None else version)
    low, high = (_version_tuple(v) for v in KERAS_VERSIONS)
    return low <= version < high


def check_keras_version():
    """Warns when the installed Keras is outside `KERAS_VERSIONS` (the private APIs below may have changed)."""
    if not keras_version_supported():
        warnings.warn(
            f"layerwise_keras supports Keras >={KERAS_VERSIONS[0]},<{KERAS_VERSIONS[1]}; found {keras.__version__}. "
            "Run tests/test_compat.py to check the private Keras APIs it relies on.",
            stacklevel=2,
        )


def symbolic_build(model, data_batch):
    """Builds a compiled model's optimizer, loss and metrics state from a `(x, y)` batch, as `fit` does.

    Args:
        model: a compiled Keras model.
        data_batch: `(x, y)` arrays of one batch.

    Returns:
        None.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((9, 9, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> symbolic_build(model, (np.zeros((1, 9, 9, 1)), np.zeros((1,), "int32")))
    >>> model.optimizer.built
    True
    """
    model._symbolic_build(data_batch=data_batch)


def sequential_layers(model):
    """Returns all layers of a `keras.Sequential`, its `InputLayer` included.

    Example:

    >>> [type(layer).__name__ for layer in sequential_layers(keras.Sequential([keras.Input((2,))]))]
    ['InputLayer']
    """
    return list(model._layers)


def is_argmax_op(operation):
    """Whether a node of a functional model's graph is a `keras.ops.argmax` operation (not a layer).

    Example:

    >>> inputs = keras.Input((3,)); model = keras.Model(inputs, keras.ops.argmax(inputs, axis=-1))
    >>> any(is_argmax_op(op) for op in model.operations)
    True
    """
    return type(operation).__name__ == "Argmax" and not isinstance(operation, keras.layers.Layer)


def compiled_functions(model):
    """The plain functions given to `model.compile` as loss or metrics, by name (`Trainer._compile_config`).

    `compile_from_config` finds a function only by a registered name; the
    trainer re-compiles the model at every stage, so it passes these as
    custom objects, and a user's unregistered loss or metric function works.

    Example:

    >>> def my_loss(y_true, y_pred):
    ...     return keras.ops.mean(keras.ops.square(y_true - y_pred))
    >>> def my_metric(y_true, y_pred):
    ...     return keras.ops.mean(keras.ops.abs(y_true - y_pred))
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("adam", my_loss, metrics=[my_metric])
    >>> sorted(compiled_functions(model))
    ['my_loss', 'my_metric']
    """
    config = getattr(getattr(model, "_compile_config", None), "config", None) or {}
    found = {}

    def visit(value):
        if isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif callable(value) and not isinstance(value, type) and hasattr(value, "__name__") \
                and not isinstance(value, (keras.losses.Loss, keras.metrics.Metric)):
            found[value.__name__] = value

    for key in ("loss", "metrics", "weighted_metrics"):
        visit(config.get(key))
    return found


def monitor_direction(model, monitor):
    """+1 if larger values of `monitor` are better, -1 if smaller are: Keras' `EarlyStopping(mode="auto")` rule.

    Uses `MonitorCallback._set_monitor_op` (losses are minimised; a compiled
    metric follows its `_direction`).

    Raises:
        ValueError: where Keras cannot tell (Keras' own message).

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> _ = model.evaluate(np.zeros((2, 2)), np.zeros(2), verbose=0)  # builds the compiled metrics
    >>> monitor_direction(model, "val_accuracy"), monitor_direction(model, "val_loss")
    (1, -1)
    """
    from keras.src import ops

    probe = keras.callbacks.EarlyStopping(monitor=monitor, mode="auto")
    probe.set_model(model)
    probe._set_monitor_op()
    return 1 if probe.monitor_op is ops.greater else -1


def is_save_best_epoch(callback):
    """Whether a callback is keras-tuner's per-epoch `SaveBestEpoch` checkpoint.

    Example:

    >>> is_save_best_epoch(keras.callbacks.History())
    False
    """
    return type(callback).__name__ == "SaveBestEpoch" and hasattr(callback, "filepath") and hasattr(
        callback, "objective"
    )


def jax_backends_started():
    """Whether JAX has initialised its backends (True when that cannot be told).

    Example:

    >>> jax_backends_started() in (True, False)
    True
    """
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return True
