"""Code probes (`probe_epochs`): a fresh readout trained on each paper-order stage's frozen code, beside the
stage's own accuracy before its clustering step."""

import json

import keras
import numpy as np
import pytest

import layerwise_keras as lk
from layerwise_keras.growth.builder import code_probe_model
from layerwise_keras.growth.names import layer_name
from layerwise_keras.runs import pipeline, probes
from layerwise_keras.runs.config import validate_config

CONFIG = {
    "name": "probe_tiny",
    "dataset": {"name": "hierarchical_digits", "train": 1500, "val": 300, "test": 300},
    "stages": [
        lk.Stage(32, 3, clusters=32, epochs=3).get_config(),
        lk.Stage(None, 3, clusters=24, cluster="patches", whiten=1e-2, epochs=2).get_config(),
        lk.Stage(32, 3, epochs=2).get_config(),
    ],
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.003}},
    "batch_size": 64,
    "seed": 0,
    "probe_epochs": 3,
}


@pytest.fixture(scope="module")
def probed():
    config = validate_config(CONFIG)
    splits = pipeline.load_splits(config["dataset"], seed=0)
    model, figures = pipeline.grow(dict(config, probe_epochs=0), splits, seed=0, verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    before = model.predict(splits["x_test"], verbose=0)
    results = probes.probe_codes(model, config, splits, seed=0)
    return config, splits, model, figures, weights, before, results


def test_probe_trains_a_fresh_readout_on_the_frozen_code(probed):
    config, splits, model, figures, _, _, results = probed
    stage = lk.Stage.from_config(config["stages"][0])
    probe = code_probe_model(model, stage, 1, num_classes=10)
    names = [layer.name for layer in probe.layers]
    assert names[:2] == ["stage1_conv", "stage1_assign"] and names[-1] == layer_name(1, "readout")
    assert probe.layers[0] is model.get_layer("stage1_conv")  # shared, not copied
    assert all(not layer.trainable_weights for layer in probe.layers[:2])
    # Only paper-order stages are probed: stage 2 clusters its patches first (its accuracy already is a head on
    # its code), stage 3 is the classifier.
    assert sorted(results) == [1]
    result = results[1]
    assert result["code_probe_epochs"] == 3 and result["code_probe_seconds"] > 0
    # Digits have 10 classes (chance 0.1); the probe measured 0.90 here against the stage's own 0.99 (dev CPU).
    assert 0.4 < result["code_probe_val_accuracy"] <= 1.0
    assert figures["stages"][0]["val_accuracy"] > 0.4


def test_probing_leaves_the_grown_model_unchanged(probed):
    _, splits, model, _, weights, before, _ = probed
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.predict(splits["x_test"], verbose=0), before)


def test_grow_reports_probes_and_clustering_cost_in_metrics(tmp_path):
    config = dict(CONFIG, stages=CONFIG["stages"][:1] + CONFIG["stages"][2:], probe_epochs=1)
    metrics = pipeline.run(config, str(tmp_path / "run"), verbose=0)
    with open(tmp_path / "run" / "metrics.json") as f:
        written = json.load(f)
    stage = written["stages"][0]
    assert stage == json.loads(json.dumps(metrics["stages"][0]))
    assert stage["code_probe_epochs"] == 1
    assert stage["clustering_cost"] == pytest.approx(stage["val_accuracy"] - stage["code_probe_val_accuracy"])
    assert "code_probe_val_accuracy" not in written["stages"][1]  # the classifier stage


def test_code_probe_needs_a_clustered_frozen_stage(probed):
    _, _, model, _, _, _, _ = probed
    with pytest.raises(ValueError, match="no layer stage3_assign"):
        code_probe_model(model, lk.Stage(8, 3), 3, num_classes=10)
    growing = lk.input_model((9, 9, 1))
    growing.add(keras.layers.Conv2D(4, 3, name="stage1_conv"))
    growing.add(lk.ClusterAssignment(4, name="stage1_assign"))
    with pytest.raises(ValueError, match="code is not frozen"):
        code_probe_model(growing, lk.Stage(4, 3, clusters=4), 1, num_classes=3)


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_probe_epochs_must_be_a_non_negative_integer(value):
    with pytest.raises(ValueError, match="probe_epochs must be a non-negative integer"):
        validate_config(dict(CONFIG, probe_epochs=value))
    assert validate_config(dict(CONFIG, probe_epochs=2.0))["probe_epochs"] == 2
