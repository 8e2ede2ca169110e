"""Keras' built-in callbacks beside the `LayerwiseTrainer`: each does what the user means, or is refused at once.

The matrix (docs/callbacks.md): EarlyStopping,
ModelCheckpoint(save_best_only=True) and BackupAndRestore are refused when
`fit` starts, with what to use instead; ReduceLROnPlateau and
LearningRateScheduler are refused beside a `Stage(schedule=...)`, and work
without one (ReduceLROnPlateau restarts at each stage); ModelCheckpoint every
epoch (weights-only too), CSVLogger, TensorBoard and TerminateOnNaN work, and
a `fit` that ends before the growth says so.
"""

import csv
import glob
import math
import os

import keras
import numpy as np
import pytest

import layerwise_keras as lk
from layerwise_keras.datasets import hierarchical_digits
from layerwise_keras.growth.diagnostics import GrowthIncompleteWarning


class BatchCounter(keras.callbacks.Callback):
    """Counts training batches and records the learning rate each epoch begins with (after the callbacks before it)."""

    def __init__(self):
        super().__init__()
        self.batches, self.rates = 0, []

    def on_train_batch_begin(self, batch, logs=None):
        self.batches += 1

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


@pytest.fixture(scope="module")
def data():
    images, labels, _ = hierarchical_digits(360, seed=3)
    return images[:300], labels[:300], images[300:], labels[300:]


def _setup(x, stages=None, rate=0.003):
    stages = stages or [lk.Stage(8, 3, strides=3, clusters=8, epochs=2), lk.Stage(16, 3, strides=3, epochs=2)]
    trainer = lk.LayerwiseTrainer(stages, 10, kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return trainer, model


def _fit(model, trainer, data, callbacks, **kwargs):
    x, y, xv, yv = data
    return model.fit(x, y, batch_size=50, epochs=trainer.total_epochs, validation_data=(xv, yv),
                     callbacks=callbacks, verbose=0, **kwargs)


@pytest.mark.parametrize("callback, match", [
    (keras.callbacks.EarlyStopping(monitor="val_loss", patience=1), r"EarlyStopping.*Stage\(\.\.\., patience=1, "
                                                                    r"monitor='val_loss'"),
    (keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3, restore_best_weights=True),
     r"restore_best_weights.*patience=3, monitor='val_accuracy'"),
    (keras.callbacks.ModelCheckpoint("best.keras", save_best_only=True, monitor="val_accuracy"),
     r"save_best_only=True.*GrowthCheckpoint"),
    (keras.callbacks.BackupAndRestore("backup"), r"BackupAndRestore.*GrowthCheckpoint"),
], ids=["early_stopping", "early_stopping_restore", "checkpoint_best_only", "backup_and_restore"])
def test_callbacks_that_would_ruin_a_growth_are_refused_before_the_first_batch(data, callback, match, tmp_path,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer, model = _setup(data[0])
    counter = BatchCounter()
    with pytest.raises(ValueError, match=match):
        _fit(model, trainer, data, [trainer, callback, counter])
    assert counter.batches == 0
    assert os.listdir(tmp_path) == []  # nothing written


@pytest.mark.parametrize("make", [lambda: keras.callbacks.ReduceLROnPlateau(patience=0),
                                  lambda: keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr)],
                         ids=["reduce_lr_on_plateau", "learning_rate_scheduler"])
def test_learning_rate_callbacks_are_refused_beside_stage_schedules(data, make):
    stages = [lk.Stage(8, 3, strides=3, clusters=8, epochs=2, schedule="cosine"), lk.Stage(16, 3, strides=3)]
    trainer, model = _setup(data[0], stages)
    counter = BatchCounter()
    with pytest.raises(ValueError, match=r"Stage\(schedule=\.\.\.\) \(stage\(s\) \[1\]\).*Keep one"):
        _fit(model, trainer, data, [trainer, make(), counter])
    assert counter.batches == 0


def test_reduce_lr_on_plateau_works_within_each_stage_and_restarts_at_the_next(data):
    stages = [lk.Stage(8, 3, strides=3, clusters=8, epochs=3), lk.Stage(16, 3, strides=3, epochs=3)]
    trainer, model = _setup(data[0], stages, rate=0.004)
    # min_delta so large that no epoch improves on a stage's first (the first always does): with patience 0
    # the rate halves after each stage's second epoch.
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0, min_delta=1e9)
    counter = BatchCounter()
    history = _fit(model, trainer, data, [plateau, trainer, counter])
    assert trainer.finished
    # Stage 2 starts again at 0.004 (not at the 0.002 of stage 1's end) and is halved in its turn.
    np.testing.assert_allclose(counter.rates, [0.004, 0.004, 0.002, 0.004, 0.004, 0.002], rtol=1e-6)
    assert history.history["stage"] == [1, 1, 1, 2, 2, 2]


def test_learning_rate_scheduler_sets_the_rate_of_every_epoch_across_stages(data):
    trainer, model = _setup(data[0])
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.001 * (epoch + 1))
    counter = BatchCounter()
    _fit(model, trainer, data, [trainer, scheduler, counter])
    assert trainer.finished
    np.testing.assert_allclose(counter.rates, [0.001, 0.002, 0.003, 0.004], rtol=1e-6)


def test_model_checkpoint_every_epoch_and_weights_only(data, tmp_path):
    trainer, model = _setup(data[0])
    full = keras.callbacks.ModelCheckpoint(str(tmp_path / "model_{epoch}.keras"))
    weights = keras.callbacks.ModelCheckpoint(str(tmp_path / "w_{epoch}.weights.h5"), save_weights_only=True)
    _fit(model, trainer, data, [full, weights, trainer])  # the trainer is moved first: files see the grown model
    assert trainer.finished
    assert sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "model_*.keras"))) == [
        f"model_{e}.keras" for e in range(1, 5)]
    x = data[2][:20]
    expected = model.predict(x, verbose=0)
    last = keras.saving.load_model(str(tmp_path / "model_4.keras"))
    np.testing.assert_allclose(last.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    # The file of stage 1's last epoch holds stage 1 clustered and frozen, stage 2 begun.
    after_stage_1 = keras.saving.load_model(str(tmp_path / "model_2.keras"))
    assert lk.growth.names.count_stages(after_stage_1) == 2
    planned = trainer.planned_model(x.shape[1:])
    planned.load_weights(str(tmp_path / "w_4.weights.h5"))
    np.testing.assert_allclose(planned.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_csv_logger_keeps_every_stage_figure_and_integer_stages(data, tmp_path):
    trainer, model = _setup(data[0])
    path = tmp_path / "log.csv"
    _fit(model, trainer, data, [keras.callbacks.CSVLogger(str(path)), trainer])  # listed before the trainer
    rows = list(csv.DictReader(open(path)))
    assert [row["stage"] for row in rows] == ["1", "1", "2", "2"]
    for key in ("kmeans_inertia", "kmeans_iterations", "cluster_usage", "dead_clusters", "stage_seconds"):
        assert key in rows[0], key
    assert math.isnan(float(rows[0]["kmeans_inertia"]))  # not known before stage 1 ends
    assert float(rows[1]["kmeans_inertia"]) == pytest.approx(trainer.stage_results[0]["kmeans_inertia"])
    assert float(rows[1]["cluster_usage"]) == pytest.approx(trainer.stage_results[0]["cluster_usage"])
    assert math.isnan(float(rows[2]["kmeans_inertia"])) and math.isnan(float(rows[3]["kmeans_inertia"]))
    assert float(rows[3]["stage_seconds"]) > 0  # the last stage ends too


def test_tensorboard_beside_the_trainer_records_the_whole_growth(data, tmp_path):
    trainer, model = _setup(data[0])
    _fit(model, trainer, data, [keras.callbacks.TensorBoard(str(tmp_path / "tb"), write_graph=False), trainer])
    assert trainer.finished
    assert glob.glob(str(tmp_path / "tb" / "train" / "events.out.tfevents.*"))
    assert glob.glob(str(tmp_path / "tb" / "validation" / "events.out.tfevents.*"))


def _nan_loss(y_true, y_pred):
    loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return loss + keras.ops.log(-keras.ops.ones_like(loss))  # log(-1): NaN on every backend and CPU


def test_terminate_on_nan_ends_in_a_clear_error_naming_the_stage(data):
    x = data[0]
    trainer = lk.LayerwiseTrainer([lk.Stage(8, 3, strides=3, clusters=8, epochs=2), lk.Stage(16, 3, strides=3)], 10,
                                  kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", _nan_loss)
    counter = BatchCounter()
    with pytest.raises(ValueError, match="training loss is nan at stage 1, epoch 1"):
        _fit(model, trainer, data, [trainer, keras.callbacks.TerminateOnNaN(), counter])
    assert counter.batches == 1  # TerminateOnNaN stopped the epoch at its first batch


def test_a_fit_stopped_early_by_another_callback_says_the_growth_is_incomplete(data):
    trainer, model = _setup(data[0])
    stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", True))
    with pytest.warns(GrowthIncompleteWarning, match=r"stage 1 of 2 in training after 1 of its 2 epoch"):
        _fit(model, trainer, data, [trainer, stop])
    assert not trainer.finished


def test_the_empty_model_summary_points_to_the_planned_network(data, capsys):
    trainer, model = _setup(data[0])
    model.summary()
    assert "trainer.planned_model(input_shape).summary()" in capsys.readouterr().out
    planned = trainer.planned_model(data[0].shape[1:])
    assert [l.name for l in planned.layers] == ["stage1_conv", "stage1_assign", "stage2_conv",
                                                "stage2_readout_flatten", "stage2_readout"]
    assert planned.output_shape == (None, 10)
