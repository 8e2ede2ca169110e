"""Tests for layerwise_keras.runs.pipeline pieces not exercised through the CLI: training data and options."""

import os

import numpy as np
import pytest

from helpers import TINY_CLI_CONFIG
from layerwise_keras import datasets
from layerwise_keras.runs import pipeline, training
from layerwise_keras.runs.config import load_config, validate_config
from layerwise_keras.runs.variants import smoke_config, uncached_config


def _config(**options):
    config = validate_config(dict(TINY_CLI_CONFIG))
    config["dataset"]["options"] = dict(options)
    return config


def _splits(config):
    return pipeline.load_splits(config["dataset"], seed=config["seed"])


def test_training_data_is_tf_data_by_default_and_numpy_batches_to_augment_or_checkpoint():
    config = _config()
    splits = _splits(config)
    train, val = training.train_data(config, splits, seed=0)
    assert hasattr(train, "as_numpy_iterator")  # tf.data on the TensorFlow backend
    for cfg, arrays in ((_config(augment=True), False), (config, True)):  # (splits of the un-augmented config)
        train, val = training.train_data(cfg, splits, seed=0, epoch=3, arrays=arrays)
        assert isinstance(train, datasets.ArrayBatches) and train.epoch == 3
        assert train.augment is bool(cfg["dataset"]["options"].get("augment"))
        assert isinstance(val, tuple) and len(val[0]) == len(splits["y_val"])


SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared", "data")


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED, "cifar10", "test.npz")),
                    reason=f"no local CIFAR-10 copy at {SHARED}/cifar10")
def test_augmented_cifar_growth_trains_uncached_and_cached_with_augmented_copies():
    # The bundled config grows cached: first its uncached growth.
    config = uncached_config(smoke_config(load_config("cifar10_best"), train=300, val=100, test=100))
    config["dataset"]["options"]["data_dir"] = SHARED
    assert config["dataset"]["options"]["augment"] is True
    splits = pipeline.load_splits(config["dataset"], seed=0)
    model, figures = pipeline.grow(config, splits, seed=0, verbose=0)
    assert len(figures["history"]["loss"]) == len(config["stages"])  # one epoch per stage
    assert np.isfinite(figures["history"]["loss"]).all()
    # The figure is the grown model's own accuracy on the test split.
    predicted = model.predict(splits["x_test"], verbose=0).argmax(-1)
    assert figures["test_accuracy"] == pytest.approx(float((predicted == splits["y_test"]).mean()))
    with pytest.raises(ValueError, match="needs cache_variants"):  # how many augmented copies is the user's call
        validate_config(dict(config, cache=True))
    cached = validate_config(dict(config, cache=True, cache_variants=2))
    model, figures = pipeline.grow(cached, splits, seed=0, verbose=0)
    assert [s["cache_variants"] for s in figures["stages"]] == [0, 2, 2]
    assert len(figures["history"]["loss"]) == len(config["stages"]) and np.isfinite(figures["history"]["loss"]).all()
    predicted = model.predict(splits["x_test"], verbose=0).argmax(-1)
    assert figures["test_accuracy"] == pytest.approx(float((predicted == splits["y_test"]).mean()))


def test_augment_is_an_option_of_real_datasets_only():
    with pytest.raises(ValueError, match="bad options"):
        _splits(_config(augment=True))
