"""TensorBoard summaries of layerwise growth (TensorFlow-only).

`keras.callbacks.TensorBoard` already records the `LayerwiseTrainer`'s epoch
logs (`epoch_stage`, `epoch_kmeans_inertia`, ...) as one curve per figure
across all epochs. `StageSummaries` adds what it cannot write, in the run
`log_dir/stages/` beside Keras' `train/` and `validation/` runs:

* per-stage scalars, one curve per stage: `stage_{i}/loss`,
  `stage_{i}/train_accuracy`, `stage_{i}/val_loss`, `stage_{i}/val_accuracy`
  every epoch of stage i (step: the 0-based epoch, as Keras' callback), and
  at the stage's end `stage_{i}/kmeans_inertia`, `stage_{i}/kmeans_iterations`,
  `stage_{i}/cluster_entropy`, `stage_{i}/dead_clusters`, ... ; the same
  end-of-stage figures again as `by_stage/{figure}` with step i, so stages
  can be compared on one curve;
* `stage_{i}/cluster_counts`: a histogram of cluster usage with one bucket
  per cluster (`[k - 0.5, k + 0.5)` holds the number of points k-means
  assigned to cluster k), summing to the number of clustered points;
* `stage_{i}/centroid_patches` (stage 1 by default): an image of the stage's
  centroids as pixel patches: the mean input patch of the positions of
  `kmeans_data` assigned to each centroid, tiled row-major (cluster 0 top
  left; black tiles: clusters no position is assigned to);
* a projector config (`projector_config.pbtxt`) with every clustered stage's
  centroids (`stage{i}_centroids.tsv`), their metadata (cluster id and
  k-means count, `stage{i}_centroids_metadata.tsv`) and, for the stages with
  an image, a sprite of the centroid patches, for TensorBoard's projector.

This module imports TensorFlow; the trainer itself stays backend-agnostic.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector
from tensorboard.plugins.histogram import metadata as histogram_metadata

from layerwise_keras.growth.names import stage_layer
from layerwise_keras.growth.diagnostics import STAGE_FIGURES
from layerwise_keras.growth.trainer import LayerwiseTrainer
from layerwise_keras.monitoring.patches import centroid_patches, tile_patches

STAGES_RUN = "stages"

# The figures LayerwiseTrainer adds to the logs of a stage's last epoch (growth.diagnostics.STAGE_FIGURES) are
# written under their own names; other metrics get a `train_` prefix.


def _scalar_name(key):
    if key in STAGE_FIGURES or key == "loss" or key.startswith("val_"):
        return key
    return f"train_{key}"


def _as_float(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class StageSummaries(keras.callbacks.Callback):
    """Writes per-stage TensorBoard summaries of a `LayerwiseTrainer`'s growth.

    Place it after the trainer in `callbacks` (it reads the figures the
    trainer adds to the epoch logs and `trainer.stage_results`), typically
    beside `keras.callbacks.TensorBoard(log_dir)`. Everything goes to the run
    `log_dir/stages/`; see the module docstring for the tags.

    Args:
        log_dir: the TensorBoard log folder (the same as Keras' callback).
        trainer: the `LayerwiseTrainer` growing the model.
        image_stages: 1-based stages whose centroids are also drawn as pixel
            patches (an image summary and a projector sprite). Default
            `(1,)`: stage 1's centroids, whose patches are the input
            patches the convolution sees.
        patch_scale: int >= 1, nearest-neighbour upscaling of the patches.
        batch_size: images per forward pass when computing the patches over
            the trainer's `kmeans_data`.

    Returns:
        A `keras.callbacks.Callback`.

    Example (`x`, `y`: 128 images 27x27x1 and their labels, 10 classes):

    >>> import layerwise_keras as lk
    >>> from layerwise_keras import datasets
    >>> trainer = lk.LayerwiseTrainer([lk.Stage(8, 3, clusters=8), lk.Stage(8, 3)], num_classes=10,
    ...                               kmeans_data=x, verbose=0)
    >>> model = lk.input_model(x.shape[1:])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    >>> log_dir = os.path.join(tmp_dir, "logs")
    >>> history = model.fit(datasets.from_arrays(x, y, batch_size=32), epochs=trainer.total_epochs, shuffle=False,
    ...                     verbose=0, callbacks=[trainer, keras.callbacks.TensorBoard(log_dir),
    ...                                          StageSummaries(log_dir, trainer)])
    >>> sorted(os.listdir(log_dir))
    ['stages', 'train']
    >>> sorted(name for name in os.listdir(os.path.join(log_dir, "stages")) if not name.startswith("events"))
    ['projector_config.pbtxt', 'stage1_centroids.tsv', 'stage1_centroids_metadata.tsv', 'stage1_centroids_sprite.png']
    """

    def __init__(self, log_dir, trainer, image_stages=(1,), patch_scale=8, batch_size=256):
        super().__init__()
        if not isinstance(trainer, LayerwiseTrainer):
            raise TypeError(f"StageSummaries: trainer must be a LayerwiseTrainer, got {type(trainer).__name__}.")
        if int(patch_scale) != patch_scale or patch_scale < 1:
            raise ValueError(f"StageSummaries: patch_scale must be an integer >= 1, got {patch_scale!r}.")
        self.log_dir = os.fspath(log_dir)
        self.stage_dir = os.path.join(self.log_dir, STAGES_RUN)
        self.trainer = trainer
        self.image_stages = tuple(int(s) for s in image_stages)
        self.patch_scale = int(patch_scale)
        self.batch_size = int(batch_size)
        self._writer = None
        self._embeddings = []
        self._seen = 0

    def on_train_begin(self, logs=None):
        os.makedirs(self.stage_dir, exist_ok=True)
        self._writer = tf.summary.create_file_writer(self.stage_dir)
        self._embeddings = []
        self._seen = len(self.trainer.stage_results)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "stage" not in logs:
            raise ValueError(
                "StageSummaries: the epoch logs hold no 'stage'; put StageSummaries after the "
                "LayerwiseTrainer in `callbacks` (callbacks=[trainer, ..., StageSummaries(log_dir, trainer)])."
            )
        n = int(logs["stage"])
        with self._writer.as_default(step=epoch):
            for key, value in logs.items():
                value = _as_float(value)
                if key != "stage" and value is not None:
                    tf.summary.scalar(f"stage_{n}/{_scalar_name(key)}", value)
            if len(self.trainer.stage_results) > self._seen:
                self._seen = len(self.trainer.stage_results)
                result = self.trainer.stage_results[-1]
                for key, value in result.items():
                    value = _as_float(value) if key != "stage" else None
                    if value is not None:
                        tf.summary.scalar(f"by_stage/{_scalar_name(key)}", value, step=n)
                if "kmeans_counts" in result:
                    self._write_clusters(n, result["kmeans_counts"])
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()

    # -- one clustered stage ---------------------------------------------------

    def _write_clusters(self, n, counts):
        counts = np.asarray(counts, dtype="float64")
        k = len(counts)
        ids = np.arange(k, dtype="float64")
        buckets = np.stack([ids - 0.5, ids + 0.5, counts], axis=1)
        tf.summary.write(
            f"stage_{n}/cluster_counts",
            tf.constant(buckets),
            metadata=histogram_metadata.create_summary_metadata(
                display_name=f"stage_{n}/cluster_counts",
                description=f"Points per k-means cluster of stage {n} (bucket k = cluster k).",
            ),
        )
        centroids = keras.ops.convert_to_numpy(stage_layer(self.model, n, "assign").centroids)
        base = os.path.join(self.stage_dir, f"stage{n}_centroids")
        np.savetxt(base + ".tsv", centroids, delimiter="\t", fmt="%.7g")
        with open(base + "_metadata.tsv", "w") as f:
            f.write("cluster\tcount\n")
            f.writelines(f"{i}\t{int(c)}\n" for i, c in enumerate(counts))
        embedding = projector.EmbeddingInfo(
            tensor_name=f"stage_{n}_centroids",
            tensor_path=os.path.basename(base + ".tsv"),
            metadata_path=os.path.basename(base + "_metadata.tsv"),
        )
        embedding.tensor_shape.extend(centroids.shape)
        if n in self.image_stages:
            self._write_patches(n, base, embedding)
        self._embeddings.append(embedding)
        config = projector.ProjectorConfig()
        config.embeddings.extend(self._embeddings)
        projector.visualize_embeddings(self.stage_dir, config)

    def _write_patches(self, n, base, embedding):
        means, members = centroid_patches(self.model, self.trainer.kmeans_data, stage=n, batch_size=self.batch_size)
        if means.shape[-1] not in (1, 3):
            means = means.mean(axis=-1, keepdims=True)
        used = members > 0
        lo, hi = (float(means[used].min()), float(means[used].max())) if used.any() else (0.0, 1.0)
        means[~used] = lo
        grid = tile_patches(means, scale=self.patch_scale, pad=2, value_range=(lo, hi))
        tf.summary.image(
            f"stage_{n}/centroid_patches",
            grid[None],
            description=(
                f"Stage {n}'s {len(members)} centroids as the mean input patch of the positions assigned "
                "to them, row-major from cluster 0 (black: no position)."
            ),
        )
        # The projector's sprite: square thumbnails in a square grid, no padding.
        side = max(means.shape[1:3])
        columns = math.ceil(math.sqrt(len(means)))
        square = np.full((columns * columns, side, side, means.shape[-1]), lo, dtype="float32")
        square[: len(means), : means.shape[1], : means.shape[2]] = means
        sprite = tile_patches(square, scale=self.patch_scale, pad=0, columns=columns, value_range=(lo, hi))
        sprite_path = base + "_sprite.png"
        tf.io.write_file(sprite_path, tf.io.encode_png(sprite))
        embedding.sprite.image_path = os.path.basename(sprite_path)
        embedding.sprite.single_image_dim.extend([side * self.patch_scale, side * self.patch_scale])
