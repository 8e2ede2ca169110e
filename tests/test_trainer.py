"""Tests of layerwise growth: Stage, LayerwiseTrainer, assignments.

The end-to-end tests grow models on instances of the paper's generative model
and check its practical promise: each stage's clusters recover the true
semantic classes of the next level (purity >= 0.98 with K >= the number of
true classes) and the grown network classifies near-perfectly.
"""

import glob
import os

import keras
import numpy as np
import pytest

import layerwise_keras as lk
from layerwise_keras import datasets
from layerwise_keras.runs.config import load_config
from layerwise_keras.export import to_portable_model
from layerwise_keras.growth.layers import ClusterAssignment
from layerwise_keras.runs.pipeline import grow, load_splits

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _compile(model, lr=3e-3):
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=LOSS, metrics=["accuracy"])
    return model


def _grow(x, y, stages, num_classes, x_val=None, y_val=None, callbacks=(), seed=0, batch_size=64):
    keras.utils.set_random_seed(seed)
    trainer = lk.LayerwiseTrainer(stages, num_classes, kmeans_data=x, seed=seed, verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    val = None if x_val is None else (x_val, y_val)
    history = model.fit(
        datasets.from_arrays(x, y, batch_size=batch_size, shuffle=True, seed=seed),
        epochs=trainer.total_epochs,
        validation_data=None if val is None else datasets.from_arrays(*val, batch_size=256),
        callbacks=[trainer, *callbacks],
        verbose=0,
        shuffle=False,  # the dataset reshuffles itself every epoch
    )
    return model, trainer, history


# -- Stage ------------------------------------------------------------------


def test_stage_defaults_to_non_overlapping_patches_and_round_trips():
    stage = lk.Stage(16, 3, clusters=8, epochs=2, kmeans={"n_init": 2})
    assert stage.strides == (3, 3) and stage.kernel_size == (3, 3)
    again = lk.Stage.from_config(stage.get_config())
    assert again == stage


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=0), "width"),
        (dict(width=8, kernel_size=0), "kernel_size"),
        (dict(width=8, clusters=1), "clusters"),
        (dict(width=8, epochs=0), "epochs"),
        (dict(width=8, assignment="closest"), "assignment"),
        (dict(width=8, readout="attention"), "readout"),
        (dict(width=8, kmeans={"n_clusters": 3}), "clusters"),
        (dict(width=8, kmeans={"max_iterations": 3}), "kmeans"),
    ],
)
def test_stage_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lk.Stage(**kwargs)


def test_stage_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        lk.Stage.from_config({"width": 8, "clustres": 4})


# -- LayerwiseTrainer: contract and errors -----------------------------------


@pytest.fixture(scope="module")
def small_problem():
    model = datasets.HierarchicalModel(
        levels=2, patch_size=3, classes_per_level=(6, 4), variants_per_class=2,
        variant_changes=1, noise=0.1, num_labels=4, seed=0,
    )
    x, y, latents = model.sample(600, seed=1)
    return x, y, latents


def test_trainer_requires_clusters_between_stages_and_none_on_the_last(small_problem):
    x, _, _ = small_problem
    with pytest.raises(ValueError, match="stage 1 is not the last stage"):
        lk.LayerwiseTrainer([lk.Stage(8), lk.Stage(8)], 4, kmeans_data=x)
    with pytest.raises(ValueError, match="last stage"):
        lk.LayerwiseTrainer([lk.Stage(8, clusters=4)], 4, kmeans_data=x)
    with pytest.raises(ValueError, match="at least one Stage"):
        lk.LayerwiseTrainer([], 4, kmeans_data=x)


def test_trainer_rejects_nan_kmeans_data(small_problem):
    x, _, _ = small_problem
    bad = x.copy()
    bad[3, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN|non-finite"):
        lk.LayerwiseTrainer([lk.Stage(8, clusters=4), lk.Stage(8)], 4, kmeans_data=bad)


def test_input_model_rejects_wrong_rank():
    with pytest.raises(ValueError, match="height, width, channels"):
        lk.input_model((27, 27))


def test_fit_epochs_must_match_total_epochs(small_problem):
    x, y, _ = small_problem
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=4, epochs=2), lk.Stage(8)], 4, kmeans_data=x, verbose=0)
    assert trainer.total_epochs == 3
    model = _compile(lk.input_model(x.shape[1:]))
    with pytest.raises(ValueError, match="total_epochs=3"):
        model.fit(x, y, epochs=2, callbacks=[trainer], verbose=0)


def test_trainer_refuses_a_functional_model(small_problem):
    x, y, _ = small_problem
    trainer = lk.LayerwiseTrainer([lk.Stage(8)], 4, kmeans_data=x, verbose=0)
    inputs = keras.Input(x.shape[1:])
    model = _compile(keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs))))
    with pytest.raises(TypeError, match="Sequential"):
        model.fit(x, y, epochs=1, callbacks=[trainer], verbose=0)


def test_nan_training_images_stop_with_a_clear_error(small_problem):
    import tensorflow as tf

    x, y, _ = small_problem
    bad = x.copy()
    bad[:, 0, 0, 0] = np.nan
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=4), lk.Stage(8)], 4, kmeans_data=x, verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    # Arrays are checked when fit starts, before any epoch.
    with pytest.raises(ValueError, match=r"`x` contains \d+ non-finite value\(s\)"):
        model.fit(bad, y, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    # A tf.data pipeline's values are not read before training: the trainer's own check at the epoch end.
    # Depending on the CPU's kernels the NaN pixels make the loss NaN, or the loss stays finite (ReLU may turn
    # NaN into 0) while the gradients turn the weights NaN: the trainer's own check names the stage either way,
    # before k-means ever sees an embedding.
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=4), lk.Stage(8)], 4, kmeans_data=x, verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    dataset = tf.data.Dataset.from_tensor_slices((bad, y)).batch(64)
    with pytest.raises(ValueError, match=r"LayerwiseTrainer: (the training loss is nan|non-finite weights) at stage 1, "
                                         r"epoch 1\b"):
        model.fit(dataset, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


class _CorruptWeight(keras.callbacks.Callback):
    """Sets one value of stage 1's kernel to +inf at the end of the first epoch (runs before the trainer)."""

    def on_epoch_end(self, epoch, logs=None):
        kernel = self.model.get_layer("stage1_conv").kernel
        value = keras.ops.convert_to_numpy(kernel).copy()
        value.flat[0] = np.inf
        kernel.assign(value)


def test_non_finite_weights_stop_at_the_epoch_they_appear(small_problem):
    x, y, _ = small_problem
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=4, epochs=2), lk.Stage(8)], 4, kmeans_data=x, verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    with pytest.raises(ValueError, match=r"non-finite weights at stage 1, epoch 1 .*stage1_conv/kernel \(1 of 72\)"):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[_CorruptWeight(), trainer], verbose=0)
    assert trainer.stage_results == []  # stopped before clustering


def test_non_finite_embeddings_stop_before_kmeans(small_problem):
    x, y, _ = small_problem
    bad = x.copy()
    bad[:3, 0, 0, 0] = np.nan  # only in the images k-means embeds, streamed unchecked
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=4), lk.Stage(8)], 4, kmeans_data=_UncheckedImages(bad),
                                  verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    with pytest.raises(ValueError, match=r"LayerwiseTrainer: stage 1's embeddings hold \d+ non-finite values at the "
                                         r"stage end, before k-means"):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


class _UncheckedImages:
    """A stand-in image stream (what a user's own tf.data pipeline may yield): batches of raw arrays."""

    def __init__(self, images):
        self.images = images

    def as_numpy_iterator(self):
        for start in range(0, len(self.images), 100):
            yield self.images[start:start + 100]


def test_dataset_smaller_than_k_is_a_clear_error(small_problem):
    x, y, _ = small_problem
    # 2 images x 3x3 positions = 18 embeddings < 32 clusters.
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=32), lk.Stage(8)], 4, kmeans_data=x[:2], verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    with pytest.raises(ValueError, match=r"stage 1 failed: .*at least 32 points, got 18"):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


def test_a_grown_model_cannot_be_grown_again(small_problem):
    x, y, _ = small_problem
    model, trainer, _ = _grow(x, y, [lk.Stage(8, clusters=6), lk.Stage(8)], 4)
    with pytest.raises(ValueError, match="already been grown"):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


# -- growth mechanics ---------------------------------------------------------


def test_begin_adds_stage_one_once_and_fit_continues_from_it(small_problem):
    x, y, _ = small_problem
    stages = [lk.Stage(8, clusters=6), lk.Stage(8)]
    trainer = lk.LayerwiseTrainer(stages, 4, kmeans_data=x, seed=0, verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    assert trainer.begin(model) is model
    names = [layer.name for layer in model.layers]
    assert names == ["stage1_conv", "stage1_readout_flatten", "stage1_readout"]
    trainer.begin(model)  # a second call changes nothing
    assert [layer.name for layer in model.layers] == names
    model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    assert trainer.grown_stages(model) == 2 and len(trainer.stage_results) == 2


def test_growth_structure_logs_and_tensorboard(small_problem, tmp_path):
    x, y, latents = small_problem
    stages = [lk.Stage(8, clusters=6, epochs=2), lk.Stage(12, epochs=1)]
    logdir = str(tmp_path / "tb")
    model, trainer, history = _grow(
        x, y, stages, 4, x_val=x[:100], y_val=y[:100],
        callbacks=[keras.callbacks.TensorBoard(logdir, histogram_freq=0, write_graph=False)],
    )
    names = [layer.name for layer in model.layers]
    assert names == ["stage1_conv", "stage1_assign", "stage2_conv", "stage2_readout_flatten", "stage2_readout"]
    assert not model.get_layer("stage1_conv").trainable
    assert model.get_layer("stage2_conv").trainable
    assert [w.name for w in model.trainable_weights] == ["kernel", "bias", "kernel", "bias"]
    centroids = keras.ops.convert_to_numpy(model.get_layer("stage1_assign").centroids)
    assert centroids.shape == (6, 8) and np.abs(centroids).sum() > 0

    # Per-stage figures reach History ...
    h = history.history
    # (every key in every epoch, aligned with the epochs: NaN where the epoch ended no clustered stage).
    assert h["stage"] == [1, 1, 2]
    assert len(h["kmeans_inertia"]) == 3 and h["kmeans_inertia"][1] > 0
    assert np.isnan(h["kmeans_inertia"][0]) and np.isnan(h["kmeans_inertia"][2])
    assert h["kmeans_iterations"][1] >= 1
    counts = np.asarray(trainer.stage_results[0]["kmeans_counts"])
    assert h["cluster_usage"][1] == pytest.approx((counts > 0).mean())
    p = counts[counts > 0] / counts.sum()
    assert h["cluster_entropy"][1] == pytest.approx(-(p * np.log(p)).sum() / np.log(len(counts)))
    assert np.isnan(h["stage_seconds"][0]) and min(h["stage_seconds"][1:]) > 0 and "val_accuracy" in h
    assert [r["stage"] for r in trainer.stage_results] == [1, 2]
    assert trainer.stage_results[0]["kmeans_inertia"] == h["kmeans_inertia"][1]

    # ... and TensorBoard, read back with TensorFlow's own event reader.
    import tensorflow as tf

    tags = set()
    for path in glob.glob(os.path.join(logdir, "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"epoch_stage", "epoch_kmeans_inertia", "epoch_cluster_usage", "epoch_loss"} <= tags


def test_assignments_match_nearest_centroid_and_portable_model(small_problem):
    x, y, _ = small_problem
    model, _, _ = _grow(x, y, [lk.Stage(8, clusters=6), lk.Stage(8)], 4)
    ids = lk.assignments(model, x[:50])
    assert len(ids) == 1 and ids[0].shape == (50, 3, 3) and ids[0].dtype == np.int32
    emb = keras.ops.convert_to_numpy(model.get_layer("stage1_conv")(x[:50]))
    c = keras.ops.convert_to_numpy(model.get_layer("stage1_assign").centroids)
    brute = ((emb[..., None, :] - c) ** 2).sum(-1).argmin(-1)
    assert (ids[0] == brute).mean() > 0.999  # ties/rounding aside
    portable = to_portable_model(model)
    assert not any(isinstance(layer, ClusterAssignment) for layer in portable.layers)
    np.testing.assert_array_equal(lk.assignments(portable, x[:50])[0], ids[0])
    with pytest.raises(ValueError, match="no stage"):
        lk.assignments(lk.input_model(x.shape[1:]), x[:5])


def test_grown_model_saves_and_loads_as_keras_file(small_problem, tmp_path):
    x, y, _ = small_problem
    model, _, _ = _grow(x, y, [lk.Stage(8, clusters=6, assignment="soft", temperature=0.5), lk.Stage(8)], 4)
    path = str(tmp_path / "grown.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("stage1_assign"), ClusterAssignment)
    assert loaded.get_layer("stage1_assign").assignment == "soft"
    np.testing.assert_allclose(loaded.predict(x[:64], verbose=0), model.predict(x[:64], verbose=0), atol=1e-5)


def test_kmeans_data_may_be_a_tf_dataset(small_problem):
    x, y, _ = small_problem
    ds = datasets.from_arrays(x, y, batch_size=100)
    model_a, _, _ = _grow(x, y, [lk.Stage(8, clusters=6), lk.Stage(8)], 4)
    keras.utils.set_random_seed(0)
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=6), lk.Stage(8)], 4, kmeans_data=ds, verbose=0)
    model_b = _compile(lk.input_model(x.shape[1:]))
    model_b.fit(datasets.from_arrays(x, y, batch_size=64, shuffle=True, seed=0), epochs=2,
                callbacks=[trainer], verbose=0)
    assert trainer.stage_results[0]["kmeans_iterations"] >= 1
    ca = keras.ops.convert_to_numpy(model_a.get_layer("stage1_assign").centroids)
    cb = keras.ops.convert_to_numpy(model_b.get_layer("stage1_assign").centroids)
    assert ca.shape == cb.shape and np.isfinite(cb).all()


# -- the paper's promise on its generative model -------------------------------


# Seeds per config. On the digits, k-means of the 13 stroke primitives occasionally merges two label-similar
# classes: over seeds 0-4, stage-2 purity was 0.9892-0.9963 on one 2-core CPU and 0.9687-0.9929 on an AMD EPYC
# (seed 0 the low one there), so the digits' promise is stated over three seeds (median >= 0.98, each >= 0.95);
# the random instances reach purity 1.0 on every seed measured, and one seed tests them.
PROMISE_SEEDS = {"hierarchical_2level": (0,), "hierarchical_3level": (0,), "hierarchical_digits": (0, 1, 2)}


@pytest.mark.parametrize("name", ["hierarchical_2level", "hierarchical_3level", "hierarchical_digits"])
def test_clusters_recover_latent_classes(name):
    """Each stage's clusters match the true classes of its level; the classifier is near-perfect.

    The bundled configs use K >= the number of true classes at every
    clustered level (random instances: K = 24 for 8 classes; digits: K = 16
    for 5 mid-level strokes, K = 32 for 13 stroke primitives).
    """
    config = load_config(name)
    clustered = len(config["stages"]) - 1
    per_seed = []
    for seed in PROMISE_SEEDS[name]:
        splits = load_splits(config["dataset"], seed=seed)
        model, figures = grow(config, splits, seed=seed, verbose=0)
        purities = [s["test_purity"] for s in figures["stages"][:clustered]]
        assert len(purities) == clustered == len(splits["latents_test"]) - 1
        assert figures["test_accuracy"] >= 0.98, (seed, figures["test_accuracy"])
        per_seed.append(purities)
    per_stage = np.asarray(per_seed).T  # [stage, seed]
    assert (np.median(per_stage, axis=1) >= 0.98).all(), per_seed
    assert per_stage.min() >= 0.95, per_seed
    # grow() measured purity through assignments(); cross-check the last seed's stage 1 by hand.
    ids = lk.assignments(model, splits["x_test"][:200])[0]
    assert lk.purity(ids, splits["latents_test"][0][:200]) >= 0.98
