"""Tests of `layerwise_keras.monitoring.tensorboard.StageSummaries`, read back with TensorBoard's own reader."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins import projector
from tensorboard.util import tensor_util

import layerwise_keras as lk
from layerwise_keras import datasets
from layerwise_keras.monitoring.patches import receptive_field, stage_patches
from layerwise_keras.monitoring.tensorboard import StageSummaries

K = 6
PATCH_SCALE = 4


def _compile(model):
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """One tiny growth (9x9 images, stage 1: 2 epochs + k-means K=6, stage 2: 1 epoch) with both callbacks."""
    gen = datasets.HierarchicalModel(levels=2, patch_size=3, classes_per_level=(6, 4), variants_per_class=2,
                                     variant_changes=1, noise=0.1, num_labels=4, seed=0)
    x, y, _ = gen.sample(600, seed=1)
    log_dir = str(tmp_path_factory.mktemp("tb") / "run")
    keras.utils.set_random_seed(0)
    trainer = lk.LayerwiseTrainer([lk.Stage(8, clusters=K, epochs=2), lk.Stage(8, epochs=1)], 4,
                                  kmeans_data=x, verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    model.fit(datasets.from_arrays(x, y, batch_size=64, shuffle=True), epochs=trainer.total_epochs,
              validation_data=datasets.from_arrays(x[:100], y[:100], batch_size=100), verbose=0, shuffle=False,
              callbacks=[trainer, keras.callbacks.TensorBoard(log_dir, write_graph=False),
                         StageSummaries(log_dir, trainer, patch_scale=PATCH_SCALE)])
    accumulator = event_accumulator.EventAccumulator(
        os.path.join(log_dir, "stages"), size_guidance={k: 0 for k in event_accumulator.DEFAULT_SIZE_GUIDANCE}
    )
    accumulator.Reload()
    return x, model, trainer, log_dir, accumulator


def _values(accumulator, tag):
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)]


def _plugin(accumulator, tag):
    return accumulator.SummaryMetadata(tag).plugin_data.plugin_name


def test_per_stage_scalars(grown):
    _, _, trainer, _, acc = grown
    tags = set(acc.Tags()["tensors"])
    for tag in ("stage_1/loss", "stage_1/train_accuracy", "stage_1/val_accuracy", "stage_1/val_loss",
                "stage_2/loss", "stage_2/train_accuracy", "stage_2/val_accuracy",
                "stage_1/kmeans_inertia", "stage_1/kmeans_iterations", "stage_1/cluster_entropy",
                "stage_1/dead_clusters", "stage_1/cluster_usage", "by_stage/kmeans_inertia",
                "by_stage/val_accuracy"):
        assert tag in tags, tag
        assert _plugin(acc, tag) == "scalars"
    # One curve per stage: stage 1 at epochs 0 and 1, stage 2 at epoch 2 (Keras' epoch steps).
    assert [s for s, _ in _values(acc, "stage_1/val_accuracy")] == [0, 1]
    assert [s for s, _ in _values(acc, "stage_2/val_accuracy")] == [2]
    assert "stage_2/kmeans_inertia" not in tags  # the last stage is not clustered
    first, last = trainer.stage_results
    [(step, inertia)] = _values(acc, "stage_1/kmeans_inertia")
    assert step == 1 and inertia == pytest.approx(first["kmeans_inertia"], rel=1e-6)
    assert _values(acc, "stage_1/kmeans_iterations")[0][1] == first["kmeans_iterations"]
    assert _values(acc, "stage_1/dead_clusters")[0][1] == first["dead_clusters"]
    assert _values(acc, "stage_1/cluster_entropy")[0][1] == pytest.approx(first["cluster_entropy"], rel=1e-6)
    assert _values(acc, "stage_2/val_accuracy")[0][1] == pytest.approx(last["val_accuracy"], rel=1e-6)
    # by_stage/*: step = stage number.
    assert [s for s, _ in _values(acc, "by_stage/val_accuracy")] == [1, 2]
    # kmeans_counts lives in stage_results only, never in the epoch logs.
    assert not any("kmeans_counts" in t for t in tags)


def test_cluster_usage_histogram(grown):
    x, _, trainer, _, acc = grown
    [(step, buckets)] = _values(acc, "stage_1/cluster_counts")
    assert _plugin(acc, "stage_1/cluster_counts") == "histograms"
    assert step == 1 and buckets.shape == (K, 3)
    np.testing.assert_array_equal(buckets[:, 0], np.arange(K) - 0.5)
    np.testing.assert_array_equal(buckets[:, 1], np.arange(K) + 0.5)
    counts = trainer.stage_results[0]["kmeans_counts"]
    assert buckets[:, 2].tolist() == counts
    # Every clustered point is counted once: 600 images x 3x3 positions, subsampled by
    # k-means to K * max_points_per_centroid (256) points.
    assert buckets[:, 2].sum() == min(len(x) * 9, K * 256) == 1536


def test_centroid_patch_image(grown):
    x, model, _, _, acc = grown
    [(step, value)] = _values(acc, "stage_1/centroid_patches")
    assert _plugin(acc, "stage_1/centroid_patches") == "images"
    width, height, png = int(value[0]), int(value[1]), value[2]
    image = tf.io.decode_png(png).numpy()
    # K=6 tiles of 3x3 px patches, upscaled x4, 3 per row, 2 px padding.
    assert image.shape == (2 * (3 * PATCH_SCALE + 2) + 2, 3 * (3 * PATCH_SCALE + 2) + 2, 1)
    assert (height, width) == image.shape[:2] and step == 1
    assert image.std() > 0
    # Tile 0 is the mean 3x3 input patch of the positions nearest to centroid 0 (brute force),
    # up to the joint min-max scaling of all tiles.
    emb = keras.ops.convert_to_numpy(model.get_layer("stage1_conv")(x))
    c = keras.ops.convert_to_numpy(model.get_layer("stage1_assign").centroids)
    ids = ((emb[..., None, :] - c) ** 2).sum(-1).argmin(-1)
    patches = stage_patches(x, receptive_field(model, 1))
    means = np.stack([patches[ids == k].mean(0) for k in range(K)])
    lo, hi = means.min(), means.max()
    expected = np.rint((means[0] - lo) / (hi - lo) * 255)
    tile = image[2 : 2 + 3 * PATCH_SCALE : PATCH_SCALE, 2 : 2 + 3 * PATCH_SCALE : PATCH_SCALE]
    np.testing.assert_allclose(tile.astype(float), expected, atol=2)


def test_projector_config_names_existing_files(grown):
    _, model, trainer, log_dir, _ = grown
    stage_dir = os.path.join(log_dir, "stages")
    config = projector.ProjectorConfig()
    with open(os.path.join(stage_dir, "projector_config.pbtxt")) as f:
        text_format.Parse(f.read(), config)
    assert [e.tensor_name for e in config.embeddings] == ["stage_1_centroids"]
    [embedding] = config.embeddings
    centroids = np.loadtxt(os.path.join(stage_dir, embedding.tensor_path), delimiter="\t")
    np.testing.assert_allclose(
        centroids, keras.ops.convert_to_numpy(model.get_layer("stage1_assign").centroids), rtol=1e-5, atol=1e-6
    )
    assert list(embedding.tensor_shape) == [K, 8]
    with open(os.path.join(stage_dir, embedding.metadata_path)) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    assert rows[0] == ["cluster", "count"] and len(rows) == K + 1
    assert [int(r[1]) for r in rows[1:]] == trainer.stage_results[0]["kmeans_counts"]
    sprite = tf.io.decode_png(tf.io.read_file(os.path.join(stage_dir, embedding.sprite.image_path))).numpy()
    side = 3 * PATCH_SCALE
    assert list(embedding.sprite.single_image_dim) == [side, side]
    assert sprite.shape[:2] == (3 * side, 3 * side)  # ceil(sqrt(6)) = 3 thumbnails a side


def test_keras_tensorboard_still_gets_the_epoch_figures(grown):
    _, _, _, log_dir, _ = grown
    acc = event_accumulator.EventAccumulator(os.path.join(log_dir, "train"),
                                             size_guidance={k: 0 for k in event_accumulator.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    assert {"epoch_kmeans_inertia", "epoch_cluster_entropy", "epoch_dead_clusters"} <= set(acc.Tags()["tensors"])


def test_stage_summaries_before_the_trainer_is_a_clear_error(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 9, 9, 1)).astype("float32")
    y = np.arange(40) % 2
    trainer = lk.LayerwiseTrainer([lk.Stage(4, clusters=3), lk.Stage(4)], 2, kmeans_data=x, verbose=0)
    model = _compile(lk.input_model(x.shape[1:]))
    with pytest.raises(ValueError, match="after the LayerwiseTrainer"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[StageSummaries(str(tmp_path), trainer), trainer])
    with pytest.raises(TypeError, match="LayerwiseTrainer"):
        StageSummaries(str(tmp_path), trainer=object())
