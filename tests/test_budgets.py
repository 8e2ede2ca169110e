"""Stage budgets: epochs, gradient steps, or until converged; warnings on starved stages; resume mid-stage."""

import copy
import json
import os
import warnings

import keras
import numpy as np
import pytest

import layerwise_keras as lk
from helpers import TINY_CLI_CONFIG
from layerwise_keras import datasets
from layerwise_keras.growth.diagnostics import StageWarning, diagnose
from layerwise_keras.runs.config import load_config, validate_config
from layerwise_keras.runs.pipeline import grow, load_splits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def problem():
    model = datasets.HierarchicalModel(levels=2, patch_size=3, classes_per_level=(6, 4), variants_per_class=2,
                                       variant_changes=1, noise=0.1, num_labels=4, seed=0)
    x, y, _ = model.sample(600, seed=1)
    return x, y


def _model(x):
    model = lk.input_model(x.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=LOSS, metrics=["accuracy"])
    return model


class _ScriptedLoss(keras.callbacks.Callback):
    """Runs before the trainer: replaces the epoch's `loss` by a scripted value and keeps stage 1's kernel."""

    def __init__(self, losses):
        super().__init__()
        self.losses = list(losses)
        self.kernels = []

    def on_epoch_end(self, epoch, logs=None):
        logs["loss"] = self.losses[epoch]
        conv = self.model.get_layer("stage1_conv")
        self.kernels.append(keras.ops.convert_to_numpy(conv.kernel).copy())


def test_converging_stages_end_after_patience_restore_their_best_epoch_and_stop_fit(problem):
    x, y = problem
    stages = [lk.Stage(8, clusters=6, epochs=10, patience=2, monitor="loss"),
              lk.Stage(8, epochs=10, patience=1, monitor="loss")]
    trainer = lk.LayerwiseTrainer(stages, 4, kmeans_data=x, verbose=0)
    assert trainer.total_epochs == 20  # the upper bound fit is given
    # Stage 1: best at epoch 2 (1-based), no improvement for 2 epochs -> ends after epoch 4.
    # Stage 2: best at epoch 5, no improvement at epoch 6 -> ends after epoch 6, and fit stops there.
    script = _ScriptedLoss([1.0, 0.5, 0.6, 0.7, 0.4, 0.45] + [0.1] * 14)
    model = _model(x)
    history = model.fit(x, y, batch_size=64, epochs=trainer.total_epochs, callbacks=[script, trainer], verbose=0)
    assert history.history["stage"] == [1, 1, 1, 1, 2, 2]
    assert trainer.ended_epochs() == [3, 5] and trainer.finished
    first, second = trainer.stage_results
    assert (first["epochs"], first["best_epoch"], first["converged"]) == (4, 2, True)
    assert (second["epochs"], second["best_epoch"], second["converged"]) == (2, 5, True)
    assert first["loss"] == 0.5  # the figures of the best epoch
    # The clustered (frozen) stage-1 kernel is the one of its best epoch, not of its last.
    frozen = keras.ops.convert_to_numpy(model.get_layer("stage1_conv").kernel)
    np.testing.assert_array_equal(frozen, script.kernels[1])
    assert not np.array_equal(frozen, script.kernels[3])


def test_a_stage_that_never_stops_improving_uses_its_whole_budget(problem):
    x, y = problem
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=6, epochs=3, patience=2, monitor="loss"), lk.Stage(8)], 4,
                                  kmeans_data=x, verbose=0)
    script = _ScriptedLoss([0.9, 0.8, 0.7, 0.6])
    _model(x).fit(x, y, batch_size=64, epochs=trainer.total_epochs, callbacks=[script, trainer], verbose=0)
    assert trainer.stage_results[0]["converged"] is False and trainer.stage_results[0]["epochs"] == 3
    assert trainer.ended_epochs() == [2, 3]


def test_steps_budgets_become_epochs_of_the_given_batches(problem):
    x, y = problem
    stages = [lk.Stage(8, clusters=6, steps=25), lk.Stage(8, steps=10)]
    trainer = lk.LayerwiseTrainer(stages, 4, kmeans_data=x, verbose=0, steps_per_epoch=10)  # 600 / 64 -> 10
    assert trainer.stage_budgets() == [3, 1] and trainer.total_epochs == 4
    history = _model(x).fit(x, y, batch_size=64, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    assert history.history["stage"] == [1, 1, 1, 2]
    assert [r["steps"] for r in trainer.stage_results] == [30, 10]


def test_budget_errors_are_clear(problem):
    x, y = problem
    with pytest.raises(ValueError, match="epochs or steps, not both"):
        lk.Stage(8, epochs=2, steps=100)
    with pytest.raises(ValueError, match="patience must be a positive integer"):
        lk.Stage(8, patience=0)
    with pytest.raises(ValueError, match="pass steps_per_epoch"):
        lk.LayerwiseTrainer([lk.Stage(8, clusters=4, steps=10), lk.Stage(8)], 4, kmeans_data=x)
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=4, steps=10), lk.Stage(8)], 4, kmeans_data=x,
                                  steps_per_epoch=7, verbose=0)
    with pytest.raises(ValueError, match="fit runs 10 steps per epoch, but the trainer was given steps_per_epoch=7"):
        _model(x).fit(x, y, batch_size=64, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=4, epochs=2, patience=1, monitor="val_accuracy"),
                                   lk.Stage(8)], 4, kmeans_data=x, verbose=0)
    with pytest.raises(ValueError, match=r"monitor='val_accuracy'\) is not in the epoch logs"):
        _model(x).fit(x, y, batch_size=64, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


def test_a_starved_growth_says_so_and_a_good_one_stays_silent():
    starved = validate_config(dict(TINY_CLI_CONFIG))  # 300 images, 1 epoch per stage: 5 gradient steps each
    splits = load_splits(starved["dataset"], seed=starved["seed"])
    with pytest.warns(StageWarning, match=r"stage 2 ended near chance accuracy .* after 5 gradient steps"):
        _, figures = grow(starved, splits, seed=starved["seed"], verbose=0)
    stage_warnings = [w for s in figures["stages"] for w in s["warnings"]]
    assert any("too few gradient steps" in w for w in stage_warnings), stage_warnings
    assert any("far worse than stage 1's (test purity" in w for w in figures["stages"][1]["warnings"]), stage_warnings

    good = validate_config(dict(TINY_CLI_CONFIG, stages=[
        lk.Stage(16, 3, clusters=16, steps=300).get_config(),
        lk.Stage(16, 3, clusters=24, steps=300).get_config(),
        lk.Stage(32, 3, steps=300).get_config()],
        dataset=dict(TINY_CLI_CONFIG["dataset"], train=1200)))
    splits = load_splits(good["dataset"], seed=good["seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", StageWarning)
        _, figures = grow(good, splits, seed=good["seed"], verbose=0)
    assert [s["warnings"] for s in figures["stages"]] == [[], [], []]
    # measured 1.0 (stage purities 0.997, 0.961) with TF_ENABLE_ONEDNN_OPTS=1 and 0 on the 2-core AMD EPYC
    assert figures["test_accuracy"] >= 0.9, figures["test_accuracy"]


RESUME_SCRIPT = r"""
import json, sys
import numpy as np
from layerwise_keras.runs.config import validate_config
from layerwise_keras.runs.pipeline import grow, load_splits

config = validate_config(json.loads(sys.argv[1]))
folder = sys.argv[2]
splits = load_splits(config["dataset"], seed=config["seed"])


class Killed(Exception):
    pass


import keras


class KillAt(keras.callbacks.Callback):  # runs before the checkpoint: the last one written is the epoch before
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed()


_, full = grow(config, splits, seed=config["seed"], verbose=0, checkpoint_dir=folder + "/full")
try:
    grow(config, splits, seed=config["seed"], verbose=0, checkpoint_dir=folder + "/killed",
         callbacks=[KillAt(int(sys.argv[3]))])
    raise SystemExit("not killed")
except Killed:
    pass
with open(folder + "/killed/LATEST") as f:
    latest = f.read().strip()
with open(folder + "/killed/" + latest + "/state.json") as f:
    state = json.load(f)
import os
best_weights_saved = os.path.isfile(folder + "/killed/" + latest + "/best_weights.npz")
model, resumed = grow(config, splits, seed=config["seed"], verbose=0, checkpoint_dir=folder + "/killed", resume=True)
keep = ("stage", "epochs", "best_epoch", "converged", "loss", "val_loss")
print(json.dumps({
    "at": state["epochs_done"], "progress": state["trainer"],
    "best_weights_saved": best_weights_saved,
    "full": {"stages": [{k: s.get(k) for k in keep} for s in full["stages"]], "loss": full["history"]["loss"],
             "test_accuracy": full["test_accuracy"]},
    "resumed": {"stages": [{k: s.get(k) for k in keep} for s in resumed["stages"]], "loss": resumed["history"]["loss"],
                "test_accuracy": resumed["test_accuracy"]},
}))
"""


def test_resume_in_the_middle_of_a_converging_stage_equals_an_uninterrupted_run(tmp_path, fresh_python):
    config = dict(TINY_CLI_CONFIG, dataset=dict(TINY_CLI_CONFIG["dataset"], train=600), stages=[
        lk.Stage(8, 3, clusters=8, epochs=8, patience=2).get_config(),
        lk.Stage(8, 3, clusters=8, epochs=8, patience=2).get_config(),
        lk.Stage(8, 3, epochs=3).get_config()])
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    env_script = "import os, runpy, sys; os.environ['TF_DETERMINISTIC_OPS'] = '1'; " \
                 "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    kill_at = 4  # 0-based epoch 4: inside stage 1 or 2, whichever is converging then
    result = fresh_python(["-c", env_script, str(script), json.dumps(config), str(tmp_path), str(kill_at)], tmp_path,
                          timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["at"] == kill_at  # resumed from the checkpoint after epoch 4 (1-based)
    assert out["progress"]["stage_epochs"] >= 1 and out["progress"]["best"] is not None  # mid-stage, tracking
    assert out["best_weights_saved"]
    full, resumed = out["full"], out["resumed"]
    assert [(s["stage"], s["epochs"], s["best_epoch"], s["converged"]) for s in resumed["stages"]] == \
        [(s["stage"], s["epochs"], s["best_epoch"], s["converged"]) for s in full["stages"]]
    np.testing.assert_allclose(resumed["loss"], full["loss"], rtol=1e-4, atol=1e-6)
    assert resumed["test_accuracy"] == full["test_accuracy"]


# Issue 12's target for the bundled config, whatever budget rule it ships with: >= 0.95 test accuracy from
# 300 training images, >= 0.99 from 600. Measured on a 2-core AMD EPYC (test 2,000 images): 300 images, seeds
# 0-2: 0.980, 0.963, 0.979; 600 images, seeds 0-2: 0.999, 0.9995, 1.000. The 300-image figure is stated over
# three seeds (their median) because single seeds spread by 2 points.
@pytest.mark.parametrize("train, target, seeds", [(300, 0.95, (0, 1, 2)), (600, 0.99, (0,))])
def test_bundled_digits_config_learns_from_few_images(train, target, seeds):
    config = load_config("hierarchical_digits")
    config["dataset"]["train"] = train
    accuracies = []
    for seed in seeds:
        splits = load_splits(config["dataset"], seed=seed)
        _, figures = grow(copy.deepcopy(config), splits, seed=seed, verbose=0)
        accuracies.append(figures["test_accuracy"])
    assert np.median(accuracies) >= target, accuracies


def test_a_diverged_stage_is_named_as_such_not_as_starved(problem):
    """Near chance with a loss far above a uniform guess' (ln K) is divergence; near ln K it is too few steps."""
    # Measured on the 2-core CPU: Adam(1.0) on the digits drove a stage to training loss 106 at 0.13 validation
    # accuracy (chance 0.1); the CIFAR-10 ablation's rows without BatchNorm ended their stage 3 at loss 33 and 59.
    diverged = diagnose({"loss": 106.0, "val_accuracy": 0.26, "epochs": 2}, 1, 4)
    assert len(diverged) == 1 and "its training diverged" in diverged[0] and "76x a uniform guess'" in diverged[0]
    assert "Lower the learning rate" in diverged[0] and "too few gradient steps" not in diverged[0]
    starved = diagnose({"loss": 1.39, "val_accuracy": 0.26, "epochs": 2}, 1, 4)
    assert len(starved) == 1 and "too few gradient steps" in starved[0] and "diverged" not in starved[0]
    assert diagnose({"loss": 106.0, "val_accuracy": 0.9, "epochs": 2}, 1, 4) == []  # not near chance


def test_a_starved_stage_is_told_what_its_growth_path_accepts():
    """The uncached path suggests a convergence budget; the cached path, which refuses `patience`, does not."""
    from layerwise_keras.growth.cached import grow_cached
    from layerwise_keras.growth.names import CACHED, TRAINER

    starved = {"loss": 1.39, "val_accuracy": 0.26, "epochs": 2}
    (trainer,) = diagnose(starved, 1, 4, owner=TRAINER)
    (cached,) = diagnose(starved, 1, 4, owner=CACHED)
    assert trainer.startswith("LayerwiseTrainer: ") and "Stage(patience=..., epochs=...)" in trainer
    assert cached.startswith("grow_cached: ") and "patience" not in cached and "Stage(epochs=...)" in cached
    with pytest.raises(ValueError, match="patience"):  # what the hint must not suggest
        grow_cached([lk.Stage(8, 3, clusters=4, patience=2), lk.Stage(8, 3)], np.zeros((8, 8, 8, 1), "float32"),
                    np.zeros(8, "int64"), 2, "adam", 4, verbose=0)
