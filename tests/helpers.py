"""Small builders shared by several test modules (importable: pytest puts tests/ on sys.path)."""

import hashlib
import os
import sys

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


# The start of a process that runs a program's `main(argv)` after wrapping one function (`module:function`, e.g.
# the pipeline's `grow`) so that it SIGKILLs the process at a point that does not depend on timing: a real SIGKILL
# (no clean-up runs). A module is a dotted name or the path of a script (imported from its folder, as the script
# imports its neighbours). `patch(target, wrap)` replaces the function by `wrap(function)`; `die` kills.
_PATCHER = r"""
import importlib, os, signal, sys

def load(name):
    if name.endswith(".py"):
        sys.path.insert(0, os.path.dirname(name))
        name = os.path.splitext(os.path.basename(name))[0]
    return importlib.import_module(name)

def patch(target, wrap):
    module_name, function = target.rsplit(":", 1)
    module = load(module_name)
    setattr(module, function, wrap(getattr(module, function)))

def die(message):
    print(message, file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""

# The function's `fit` SIGKILLs the process after training batch `kill_batch` of epoch `kill_epoch` (0-based).
KILLER = _PATCHER + r"""
import keras

target, program, kill_epoch, kill_batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

class KillSelf(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == kill_epoch and batch == kill_batch:
            die(f"SIGKILL in {target} at epoch {kill_epoch} batch {kill_batch}")

def killing(wrapped):
    def call(*args, callbacks=(), **kwargs):
        return wrapped(*args, callbacks=[*callbacks, KillSelf()], **kwargs)
    return call

patch(target, killing)
sys.exit(load(program).main(sys.argv[5:]))
"""

# For a function that runs no `fit` of its own to hook (e.g. `grow_cached`'s checkpoint writer): the process
# SIGKILLs itself right after the `kill_after`-th call of `module:function` returns.
CALL_KILLER = _PATCHER + r"""
target, program, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])

def killing(wrapped):
    calls = 0
    def call(*args, **kwargs):
        nonlocal calls
        result = wrapped(*args, **kwargs)
        calls += 1
        if calls == kill_after:
            die(f"SIGKILL in {target} after call {kill_after}")
        return result
    return call

patch(target, killing)
sys.exit(load(program).main(sys.argv[4:]))
"""


def kill_after_call_command(target, program, calls, args):
    """The command of a `program` run that `CALL_KILLER` SIGKILLs right after the `calls`-th call of `target`
    (`"module:function"`) returns; it prints `SIGKILL in {target} after call {calls}` to stderr first."""
    return [sys.executable, "-c", CALL_KILLER, target, program, str(calls), *map(str, args)]


def kill_command(target, program, epoch, batch, args):
    """The command of a `program` run (module name or script path, then `args`) that `KILLER` SIGKILLs.

    `target` (`"module:function"`) is the function whose `fit` is killed
    after batch `batch` of epoch `epoch` (0-based); it prints
    `SIGKILL in {target} at epoch {epoch} batch {batch}` to stderr first.
    """
    return [sys.executable, "-c", KILLER, target, program, str(epoch), str(batch), *map(str, args)]


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
