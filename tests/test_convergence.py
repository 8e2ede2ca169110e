"""Stage convergence follows Keras' own monitor semantics: direction from the metric, an error where it cannot tell."""

import keras
import numpy as np
import pytest

import layerwise_keras as lk
from layerwise_keras import compat
from layerwise_keras.growth.convergence import Convergence, direction


@pytest.fixture(scope="module")
def model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy", keras.metrics.AUC(name="auc"),
                                                         keras.metrics.MeanSquaredError(name="mse")])
    x = np.random.default_rng(0).random((8, 4), dtype="float32")
    model.fit(x, (x[:, 0] > 0.5).astype("float32"), epochs=1, verbose=0)  # builds the compiled metrics
    return model


@pytest.mark.parametrize("key, expected", [("val_loss", -1), ("loss", -1), ("val_accuracy", 1), ("val_auc", 1),
                                           ("auc", 1), ("val_mse", -1)])
def test_direction_comes_from_the_metric_as_in_keras(model, key, expected):
    assert direction(lk.Stage(8, patience=1), key, model) == expected
    assert compat.monitor_direction(model, key) == expected


def test_a_quantity_keras_cannot_tell_needs_a_mode(model):
    with pytest.raises(ValueError, match=r"cannot tell whether Stage\(monitor='my_score'\).*mode='max' or mode='min'"):
        direction(lk.Stage(8, patience=1, monitor="my_score"), "my_score", model)
    assert direction(lk.Stage(8, patience=1, monitor="my_score", mode="max"), "my_score", model) == 1
    assert direction(lk.Stage(8, patience=1, monitor="val_auc", mode="min"), "val_auc", model) == -1
    with pytest.raises(ValueError, match="mode must be one of"):
        lk.Stage(8, patience=1, mode="up")


def test_val_auc_is_maximised_not_minimised(model):
    """The old rule ('acc' in the name) minimised val_auc: a rising AUC then never counted as a gain."""
    progress = {"best": None, "best_epoch": None, "best_logs": None, "wait": 0}
    tracker, stage = Convergence(progress), lk.Stage(8, patience=2, monitor="val_auc")
    outcomes = [tracker.update(stage, epoch, {"val_auc": value}, model)
                for epoch, value in enumerate([0.6, 0.7, 0.65, 0.8, 0.79, 0.78])]
    assert [improved for _, improved in outcomes] == [True, True, False, True, False, False]
    assert [converged for converged, _ in outcomes] == [False, False, False, False, False, True]
    assert progress["best"] == 0.8 and progress["best_epoch"] == 3
