"""The private Keras / keras-tuner / JAX APIs of `layerwise_keras.compat`, checked against the installed releases.

Each test exercises one function the way the package uses it; a release that
renames or changes the private API it wraps fails here, loudly, before any
growth does.
"""

import warnings

import keras
import numpy as np
import pytest

from layerwise_keras import compat


def test_the_installed_keras_is_in_the_supported_range():
    assert compat.keras_version_supported(), (keras.__version__, compat.KERAS_VERSIONS)
    assert compat.keras_version_supported("3.13.0") and compat.keras_version_supported("3.15.1")
    assert not compat.keras_version_supported("3.12.9") and not compat.keras_version_supported("3.16.0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compat.check_keras_version()  # no warning for the installed release


def test_setup_cfg_declares_the_same_keras_range():
    import configparser
    import os

    parser = configparser.ConfigParser()
    parser.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg"))
    requires = [line.strip() for line in parser["options"]["install_requires"].splitlines() if line.strip()]
    low, high = compat.KERAS_VERSIONS
    assert f"keras>={low},<{high}" in requires, requires


def test_symbolic_build_creates_the_optimizer_and_metric_state():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    assert not model.optimizer.built
    compat.symbolic_build(model, (np.zeros((1, 4), "float32"), np.zeros((1,), "int32")))
    assert model.optimizer.built and len(model.optimizer.variables) > 0
    assert len(model.metrics_variables) > 0  # loss tracker and accuracy state


def test_sequential_layers_include_the_input_layer():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    layers = compat.sequential_layers(model)
    assert isinstance(layers[0], keras.layers.InputLayer) and [layer.name for layer in layers[1:]] == ["d"]
    assert [layer.name for layer in model.layers] == ["d"]  # the public list hides it


def test_is_argmax_op_finds_the_ops_argmax_node_of_a_functional_graph():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.ops.one_hot(keras.ops.argmax(keras.layers.Dense(5)(inputs), axis=-1), 5))
    found = [op for op in model.operations if compat.is_argmax_op(op)]
    assert len(found) == 1 and found[0].axis == -1  # the attribute the converter rewrite reads
    assert not any(compat.is_argmax_op(layer) for layer in model.layers)


def test_is_save_best_epoch_recognises_keras_tuners_checkpoint_callback():
    keras_tuner = pytest.importorskip("keras_tuner")
    from keras_tuner.src.engine import tuner_utils

    callback = tuner_utils.SaveBestEpoch(objective=keras_tuner.Objective("val_accuracy", "max"), filepath="x")
    assert compat.is_save_best_epoch(callback)
    assert not compat.is_save_best_epoch(keras.callbacks.ModelCheckpoint("x.keras"))


def test_jax_backends_started_answers():
    pytest.importorskip("jax")
    from jax._src import xla_bridge  # the private module it wraps must still exist

    assert callable(xla_bridge.backends_are_initialized)
    assert isinstance(compat.jax_backends_started(), bool)


def _my_loss(y_true, y_pred):
    return keras.losses.mean_squared_error(y_true, y_pred)


def _my_metric(y_true, y_pred):
    return keras.ops.mean(y_pred)


def test_compiled_functions_finds_the_plain_functions_given_to_compile():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", _my_loss, metrics=["accuracy", _my_metric, keras.metrics.MeanSquaredError()])
    assert compat.compiled_functions(model) == {"_my_loss": _my_loss, "_my_metric": _my_metric}
    with keras.saving.custom_object_scope(compat.compiled_functions(model)):
        model.compile_from_config(model.get_compile_config())  # what the trainer does at every stage
    assert model.loss is _my_loss


def test_monitor_direction_follows_keras_early_stopping():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse", metrics=["accuracy"])
    model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
    assert compat.monitor_direction(model, "val_loss") == -1
    assert compat.monitor_direction(model, "val_accuracy") == 1
    with pytest.raises(ValueError):
        compat.monitor_direction(model, "unknown_quantity")
