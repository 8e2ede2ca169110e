"""How a run trains a network: its compile, its batches, a stage's schedule as a Keras callback.

Shared by the main job (`pipeline`: the growth and the end-to-end twin) and
the code probes (`probes`), so all three train with the same optimizer,
batches and augmentation.
"""

import copy

import keras
import numpy as np

from layerwise_keras import datasets


def compile_model(model, config):
    model.compile(
        # a copy: keras.optimizers.get rewrites the dict it is given (lower-cases class_name)
        optimizer=keras.optimizers.get(copy.deepcopy(config["optimizer"])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def lr_schedule(model, stage, epochs):
    """A LearningRateScheduler that follows `stage.schedule` over `epochs` from the compiled rate."""
    base = float(model.optimizer.learning_rate)
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: stage.learning_rate(base, epoch, epochs))


def train_data(config, splits, seed, epoch=0, arrays=False):
    """Training and validation batches.

    `tf.data` on TensorFlow; NumPy `ArrayBatches` on other backends, to
    augment, and with `arrays=True` (checkpointed runs: its batches depend on
    the epoch only, so a resumed run sees the same ones).
    """
    batch_size = config["batch_size"]
    augment = bool(config["dataset"].get("options", {}).get("augment", False))
    if keras.backend.backend() == "tensorflow" and not augment and not arrays:
        train = datasets.from_arrays(
            splits["x_train"], splits["y_train"], batch_size=batch_size, shuffle=True, seed=seed
        )
        return train, datasets.from_arrays(splits["x_val"], splits["y_val"], batch_size=batch_size)
    train = datasets.ArrayBatches(
        splits["x_train"], splits["y_train"], batch_size=batch_size, shuffle=True, augment=augment, seed=seed,
        epoch=epoch,
    )
    return train, (splits["x_val"], splits["y_val"])


def top1_accuracy(logits, labels):
    """The fraction of rows of `logits` whose largest entry is at the row's label (what every run reports).

    Args:
        logits: array `[n, num_classes]` (a model's `predict`, or an exported model's outputs).
        labels: int array `[n]`.

    Returns:
        A float in [0, 1].

    Example:

    >>> top1_accuracy(np.array([[0.1, 2.0], [3.0, 0.5]]), np.array([1, 1]))
    0.5
    """
    return float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())
