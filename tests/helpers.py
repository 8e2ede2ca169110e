"""Small builders shared by several test modules (importable: pytest puts tests/ on sys.path)."""

import hashlib
import os

import keras
import numpy as np

from layerwise_keras.growth.layers import ClusterAssignment
from layerwise_keras.growth import Stage, input_model

# A tiny 3-stage hierarchical-digits config for tests that train through the CLI.
TINY_CLI_CONFIG = {
    "name": "cli_tiny",
    "dataset": {"name": "hierarchical_digits", "train": 300, "val": 50, "test": 100},
    "stages": [
        Stage(8, 3, clusters=8, epochs=1).get_config(),
        Stage(8, 3, clusters=8, epochs=1).get_config(),
        Stage(8, 3, epochs=1).get_config(),
    ],
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.003}},
    "batch_size": 64,
    "seed": 1,
}


def grown_style_model(assignment, seed=0, name=None):
    """A hand-built model shaped like a grown one: stage1 conv + assign, stage2 conv, readout.

    Returns `(model, probe)`: the model, with centroids drawn near real stage-1
    embeddings of `probe` (so every cluster is hit), and those probe images.
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = keras.Sequential(
        [
            keras.Input((9, 9, 1)),
            keras.layers.Conv2D(4, 3, strides=3, activation="relu", name="stage1_conv"),
            # temperature != 1 and q != 1 so that an export that lost them would be caught.
            ClusterAssignment(5, assignment, temperature=0.5, q=2 if assignment == "nearest" else 1,
                              name="stage1_assign"),
            keras.layers.Conv2D(6, 3, name="stage2_conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="stage2_readout"),
        ],
        name=name or f"grown_{assignment}",
    )
    probe = rng.normal(size=(64, 9, 9, 1)).astype("float32")
    emb = keras.ops.convert_to_numpy(model.get_layer("stage1_conv")(probe)).reshape(-1, 4)
    picks = rng.choice(len(emb), size=5, replace=False)
    centroids = emb[picks] + rng.normal(scale=0.05, size=(5, 4)).astype("float32")
    model.get_layer("stage1_assign").set_centroids(centroids.astype("float32"))
    return model, probe


def tree_digest(folder):
    """SHA-256 over every file's path and bytes below `folder`: equal digests = nothing was touched."""
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(path.encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def assert_export_parity(model, x, expected, folder, min_classes=2):
    """Exports `model` to SavedModel, LiteRT and ONNX under `folder` and checks each against `expected`.

    SavedModel within 1e-5, LiteRT and ONNX within 1e-4, and the same top-1 class on every image. The
    expected predictions must use at least `min_classes` classes, or parity would be trivially met.
    """
    from layerwise_keras import export

    assert len(np.unique(expected.argmax(-1))) >= min_classes
    checks = [(export.predict_saved_model(export.export_saved_model(model, str(folder / "sm")), x), 1e-5),
              (export.predict_litert(export.export_litert(model, str(folder / "m.tflite")), x), 1e-4),
              (export.predict_onnx(export.export_onnx(model, str(folder / "m.onnx")), x), 1e-4)]
    for got, tol in checks:
        assert np.abs(np.asarray(got) - expected).max() <= tol
        np.testing.assert_array_equal(np.asarray(got).argmax(-1), expected.argmax(-1))


def compiled_model(shape):
    """`input_model(shape)` compiled as the growth tests train it (Adam 3e-3, sparse cross-entropy from logits)."""
    model = input_model(shape)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def fit_growth(model, trainer, splits, callbacks=(), initial_epoch=0):
    """Grows `model` with `trainer` over all its epochs on `splits` (batch 64, validation on the val split)."""
    model.fit(splits["x_train"], splits["y_train"], batch_size=64, epochs=trainer.total_epochs,
              initial_epoch=initial_epoch, validation_data=(splits["x_val"], splits["y_val"]),
              callbacks=[trainer, *callbacks], verbose=0)


class WeightSnapshot(keras.callbacks.Callback):
    """Copies the weights of named layers at the end of one epoch (after the trainer's own epoch end).

    Args:
        epoch: the 0-based epoch.
        layers: `{key: layer name}`; the copies land in `self.weights[key]`.
    """

    def __init__(self, epoch, layers):
        super().__init__()
        self.epoch, self.layers, self.weights = epoch, dict(layers), {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            for key, name in self.layers.items():
                self.weights[key] = [w.copy() for w in self.model.get_layer(name).get_weights()]
