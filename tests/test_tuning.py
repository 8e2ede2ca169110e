"""Tests for layerwise_keras.tuning: keras-tuner searches over whole layerwise growths.

Real keras-tuner (the pinned 1.4.8), no mocks; tiny synthetic data (the
`hierarchical_2level` model, 9x9 images, 600/200/200 examples), one epoch per
stage, widths 8-16.
"""

import json
import math
import sys

import keras
import keras_tuner
import numpy as np
import pytest

from layerwise_keras import cli, tuning
from layerwise_keras.runs.config import load_config
from layerwise_keras.growth.layers import ClusterAssignment
from layerwise_keras.runs.pipeline import grow, load_splits

BASE = load_config("hierarchical_2level")
BASE["dataset"].update(train=600, val=200, test=200)
SPACE = {
    "width": [8, 16],
    "clusters": [8, 16],
    "assignment": ["hard", "soft"],
    "epochs": 1,
    "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"},
}
CHOICES = {"stage1_width": [8, 16], "stage2_width": [8, 16], "stage1_clusters": [8, 16],
           "stage1_assignment": ["hard", "soft"], "stage1_epochs": [1], "stage2_epochs": [1]}


class CapturePredictions(keras.callbacks.Callback):
    """Records the validation logits of each trial's model at the end of its `fit`.

    keras-tuner deep-copies the callbacks of every trial, so the record is a
    class attribute; trial i is the i-th `fit` (every trial completes).
    """

    x_val = None
    logits = []

    def on_train_end(self, logs=None):
        CapturePredictions.logits.append(self.model.predict(CapturePredictions.x_val, verbose=0))


@pytest.fixture(scope="module")
def splits():
    return load_splits(BASE["dataset"], seed=0)


def _search(tuner, splits):
    CapturePredictions.x_val = splits["x_val"]
    CapturePredictions.logits = []
    tuner.search(splits["x_train"], splits["y_train"], validation_data=(splits["x_val"], splits["y_val"]),
                 callbacks=[CapturePredictions()], verbose=0)
    return list(CapturePredictions.logits)


def _trials(tuner):
    return sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))


def _check_reload(tuner, logits, splits):
    """The reloaded best model is the model at the end of the best trial."""
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]
    reloaded = model.predict(splits["x_val"], verbose=0)
    assert np.abs(reloaded - logits[int(best.trial_id)]).max() <= 1e-5
    figures = model.evaluate(splits["x_val"], splits["y_val"], batch_size=64, verbose=0, return_dict=True)
    assert figures["accuracy"] == best.score  # the trial's recorded val_accuracy, exactly
    return best, model


@pytest.fixture(scope="module")
def random_search(splits, tmp_path_factory):
    """A stock `keras_tuner.RandomSearch` over `LayerwiseHyperModel`: 3 trials."""
    hypermodel = tuning.LayerwiseHyperModel(BASE, splits["x_train"].shape[1:], splits["num_classes"],
                                            space=SPACE, seed=0)
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=3, seed=0,
                                     directory=str(tmp_path_factory.mktemp("random")), project_name="search")
    logits = _search(tuner, splits)
    return tuner, hypermodel, logits


def test_random_search_runs_whole_growths_within_the_space(random_search, splits):
    tuner, hypermodel, logits = random_search
    trials = _trials(tuner)
    assert [t.status for t in trials] == ["COMPLETED"] * 3 and len(logits) == 3
    assert len({json.dumps(t.hyperparameters.values, sort_keys=True) for t in trials}) == 3
    for trial in trials:
        values = trial.hyperparameters.values
        assert set(values) == set(CHOICES) | {"learning_rate"}
        for name, allowed in CHOICES.items():
            assert values[name] in allowed
        assert 1e-3 <= values["learning_rate"] <= 1e-2
        # The trial's score is the validation accuracy of the model at the end of its growth.
        predicted = logits[int(trial.trial_id)].argmax(-1)
        assert trial.score == pytest.approx(float((predicted == splits["y_val"]).mean()), abs=1e-6)
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == max(t.score for t in trials)
    # The score is the final (grown) model's, and the checkpoint holds that model.
    stages = hypermodel.stages_for(best.hyperparameters)
    assert [s.width for s in stages] == [best.hyperparameters["stage1_width"], best.hyperparameters["stage2_width"]]


def test_best_model_reloads_with_the_trials_predictions(random_search, splits):
    tuner, hypermodel, logits = random_search
    best, model = _check_reload(tuner, logits, splits)
    assert [layer.name for layer in model.layers] == [
        "stage1_conv", "stage1_assign", "stage2_conv", "stage2_readout_flatten", "stage2_readout"]
    assign = model.get_layer("stage1_assign")
    assert isinstance(assign, ClusterAssignment) and assign.n_clusters == best.hyperparameters["stage1_clusters"]
    assert np.abs(keras.ops.convert_to_numpy(assign.centroids)).sum() > 0  # loaded, not the zero init
    assert not model.get_layer("stage1_conv").trainable


def test_best_config_loads_and_grow_reproduces_the_trial(random_search, splits, tmp_path):
    tuner, hypermodel, _ = random_search
    best = tuner.oracle.get_best_trials(1)[0]
    path = tmp_path / "best.json"
    path.write_text(json.dumps(hypermodel.config_for(best.hyperparameters)))
    config = load_config(str(path))
    assert config["stages"][0]["width"] == best.hyperparameters["stage1_width"]
    assert config["stages"][0]["clusters"] == best.hyperparameters["stage1_clusters"]
    assert math.isclose(config["optimizer"]["config"]["learning_rate"], best.hyperparameters["learning_rate"])
    _, figures = grow(config, splits, seed=config["seed"], verbose=0)
    assert figures["stages"][-1]["val_accuracy"] == best.score  # the same seeded run


def test_hyperband_end_to_end(splits, tmp_path):
    space = {k: v for k, v in SPACE.items() if k != "epochs"}
    hypermodel = tuning.LayerwiseHyperModel(BASE, splits["x_train"].shape[1:], splits["num_classes"],
                                            space=space, seed=0)
    # max_epochs=2, factor=2: two trials at 1 epoch per stage, then the better one continued at 2
    # (re-grown from scratch); max_trials caps the search there (before the next bracket).
    tuner = tuning.make_tuner(hypermodel, "hyperband", max_trials=3, max_epochs=2, factor=2,
                              directory=str(tmp_path), project_name="hb")
    logits = _search(tuner, splits)
    trials = _trials(tuner)
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials) and len(logits) == 3
    assert [t.hyperparameters.values["tuner/epochs"] for t in trials] == [1, 1, 2]
    continued = trials[2].hyperparameters.values
    assert continued["tuner/trial_id"] in (trials[0].trial_id, trials[1].trial_id)
    best, model = _check_reload(tuner, logits, splits)
    config = hypermodel.config_for(best.hyperparameters)
    assert [s["epochs"] for s in config["stages"]] == [best.hyperparameters.values["tuner/epochs"]] * 2


def test_hyperband_refuses_a_space_that_tunes_epochs(splits):
    hypermodel = tuning.LayerwiseHyperModel(BASE, (9, 9, 1), 4, space={"epochs": [1, 2]})
    with pytest.raises(ValueError, match="Hyperband sets the epochs"):
        tuning.make_tuner(hypermodel, "hyperband", max_trials=2, directory="unused")


def test_geometry_pruning_keeps_only_valid_kernel_strides():
    digits = load_config("hierarchical_digits")  # 27x27, 3 stages: only 3/3 everywhere fits
    with pytest.warns(UserWarning, match="pruned 7 of 8 kernel/stride combinations"):
        space = tuning.validate_space({"geometry": ["3/3", "4/4"]}, digits, (27, 27, 1))
    assert space["geometry"] == [[(3, 3), (3, 3), (3, 3)]]
    assert tuning.feature_map_sizes((27, 27, 1), [(2, 2)] * 3) == [(13, 13), (6, 6), (3, 3)]
    hp = keras_tuner.HyperParameters()
    hypermodel = tuning.LayerwiseHyperModel(BASE, (9, 9, 1), 4, space={"geometry": [["3/3", 2], ["3/3"]]})
    model = hypermodel.build(hp)
    assert hp.values["geometry"] in ("3/3,3/3", "2/2,3/3")
    assert model.get_layer("stage1_conv").strides == (int(hp.values["geometry"][2]),) * 2


@pytest.mark.parametrize(
    "space, message",
    [
        ({"depth": [2]}, "unknown keys ['depth']"),
        ({"width": [0, 8]}, "width values must be integers >= 1"),
        ({"clusters": [[8], [8]]}, "clusters has 2 lists, one per clustered stage; the configuration has 1"),
        ({"assignment": ["closest"]}, "assignment values must be in"),
        ({"geometry": ["4/4", 5]}, "no kernel/stride combination fits the input 9x9 with 2 stages"),
        ({"geometry": ["3x3"]}, "'kernel/stride' strings"),
        ({"learning_rate": {"min": 0.1, "max": 0.01}}, "min < max"),
        ({"width": [8, [16]]}, "mixes values and lists"),
    ],
    ids=["unknown_key", "width_0", "clusters_count", "assignment", "no_geometry", "geometry_syntax", "lr_range",
         "mixed"],
)
def test_invalid_search_space_is_a_clear_error(space, message):
    with pytest.raises(ValueError, match="search space") as info:
        tuning.LayerwiseHyperModel(BASE, (9, 9, 1), 4, space=space)
    assert message in str(info.value)


def test_default_space_is_derived_from_the_config():
    space = tuning.default_space(BASE)
    assert space["width"] == [[32, 64, 128], [16, 32, 64]]
    assert space["clusters"] == [[12, 24, 48]]
    assert space["assignment"] == [["hard", "soft", "triangle"]]
    assert space["epochs"] == [[1, 3, 6], [1, 3, 6]]
    assert space["learning_rate"] == {"min": 0.001, "max": 0.009, "sampling": "log"}
    assert "epochs" not in tuning.default_space(BASE, tune_epochs=False)
    assert tuning.validate_space(space, BASE, (9, 9, 1))["geometry"] is None  # the config's own 3/3


def _write(tmp_path, name, payload):
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return str(path)


def test_cli_tune_writes_the_best_config_and_refuses_an_existing_search(tmp_path, capsys):
    config = _write(tmp_path, "base.json", BASE)
    space = _write(tmp_path, "space.json", SPACE)
    argv = ["tune", "--config", config, "--space", space, "--max-trials", "2", "--directory",
            str(tmp_path / "tuning"), "--project-name", "cli", "--seed", "0", "--verbose", "0"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    scores = [json.loads(path.read_text())["score"] for path in (tmp_path / "tuning" / "cli").glob("trial_*/trial.json")]
    assert summary["trials"] == len(scores) == 2 and summary["val_accuracy"] == max(scores)  # the best trial's figure
    for name, allowed in CHOICES.items():
        assert summary["best_hyperparameters"][name] in allowed
    best_path = tmp_path / "tuning" / "cli" / "best_config.json"
    assert summary["best_config"] == str(best_path)
    best = load_config(str(best_path))  # what `layerwise-keras train --config` reads
    assert best["stages"][0]["width"] == summary["best_hyperparameters"]["stage1_width"]
    assert best["seed"] == 0 and best["name"] == "cli_tuned"
    before = best_path.read_bytes()

    # The same folder again: refused before any training, nothing touched.
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("layerwise-keras: error:") and "--overwrite" in captured.err
    assert "not empty" in captured.err and captured.out == ""
    assert best_path.read_bytes() == before

    # --overwrite starts a new search there.
    assert cli.main(argv[:6] + ["1"] + argv[7:] + ["--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == 1
    assert load_config(str(best_path))["description"].startswith("Best of 1 random trials")


def test_cli_tune_bad_space_exits_2(tmp_path, capsys):
    config = _write(tmp_path, "base.json", BASE)
    space = _write(tmp_path, "space.json", {"geometry": ["5/5"]})
    code = cli.main(["tune", "--config", config, "--space", space, "--max-trials", "1",
                     "--directory", str(tmp_path / "tuning")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise-keras: error: search space: no kernel/stride combination fits")
    assert not (tmp_path / "tuning" / "hierarchical_2level").exists()


def test_missing_keras_tuner_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_tuner", None)  # `import keras_tuner` raises ImportError
    for name in [m for m in sys.modules if m == "layerwise_keras.tuning" or m.startswith("layerwise_keras.tuning.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r"pip install layerwise_keras\[tuning\]"):
        import layerwise_keras.tuning  # noqa: F401


def test_q_and_whiten_are_tunable_and_q_follows_the_assignment():
    space = {"assignment": [["nearest", "hard"]], "q": [[4]], "whiten": [[None, 1e-2]]}
    hypermodel = tuning.LayerwiseHyperModel(BASE, (9, 9, 1), 4, space=space)
    configs = {}
    for assignment in ("nearest", "hard"):
        for whiten in (0.0, 1e-2):
            hp = keras_tuner.HyperParameters()
            hp.Choice("stage1_assignment", ["nearest", "hard"], default=assignment)
            hp.Choice("stage1_whiten", [0.0, 1e-2], default=whiten)
            configs[assignment, whiten] = hypermodel.config_for(hp)["stages"][0]
    assert configs["nearest", 0.0]["q"] == 4 and configs["nearest", 0.0]["whiten"] is None
    assert configs["hard", 1e-2]["q"] == 1 and configs["hard", 1e-2]["whiten"] == 1e-2
    # Every chosen configuration is a valid stage, and builds a model with its whitening.
    model = hypermodel.build(_hp({"stage1_assignment": "nearest", "stage1_whiten": 1e-2}))
    assign = model.get_layer("stage1_assign")
    assert assign.q == 4 and assign.whiten
    with pytest.raises(ValueError, match="whiten values must be"):
        tuning.LayerwiseHyperModel(BASE, (9, 9, 1), 4, space={"whiten": [-1]})


def _hp(values):
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def test_a_cluster_first_stage_is_tunable_except_its_width():
    config = json.loads(json.dumps(BASE))
    config["stages"][0].update(width=None, cluster="patches", whiten=1e-2)
    space = tuning.default_space(config)
    assert space["width"][0] == [None] and len(space["width"][1]) == 3  # the patch size is not a knob
    hypermodel = tuning.LayerwiseHyperModel(config, (9, 9, 1), 4, space=space)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert "stage1_width" not in hp.values and "stage2_width" in hp.values and "stage1_clusters" in hp.values
    conv = model.get_layer("stage1_conv")
    assert not conv.trainable and conv.filters == 9 and model.get_layer("stage1_assign").whiten
    assert hypermodel.config_for(hp)["stages"][0]["width"] is None
    with pytest.raises(ValueError, match="its convolution's width is the patch size"):
        tuning.LayerwiseHyperModel(config, (9, 9, 1), 4, space={"width": [[8], [8]]})
    with pytest.raises(ValueError, match="width values must be integers"):
        tuning.LayerwiseHyperModel(BASE, (9, 9, 1), 4, space={"width": [[None], [8]]})


def test_a_gated_stage_follows_the_tuned_number_of_clusters():
    config = json.loads(json.dumps(BASE))
    config["stages"][0].update(width=None, cluster="patches", whiten=1e-2, readout="pooled", pool_size=1,
                               pool_strides=1, handoff="bottleneck", gate=6)
    hypermodel = tuning.LayerwiseHyperModel(config, (9, 9, 1), 4, space={"clusters": [[8, 16]]})
    for clusters in (8, 16):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("stage1_clusters", clusters)
        model = hypermodel.build(hp)
        gate = model.get_layer("stage1_readout_gate")
        patch = model.get_layer("stage1_conv").filters
        assert gate.n_clusters == clusters and gate.units == 6 and model.get_layer("stage1_assign").keep_input
        assert tuple(gate.input.shape[1:]) == tuple(model.get_layer("stage1_conv").output.shape[1:3]) + (
            clusters + patch,)
        assert hypermodel.config_for(hp)["stages"][0]["gate"] == 6
