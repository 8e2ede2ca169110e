"""Compiling a growing model for each new stage: the loss on logits, a fresh optimizer, the first rate.

After a stage is added, the running `fit` must train the new layers: the
model is compiled again from its compile config (a *fresh* optimizer of the
same config; an optimizer refuses variables it was not built with) and its
train function is made again (`make_train_function(force=True)`), which the
running `fit` picks up on its next step.
"""

import keras
import numpy as np

from layerwise_keras import compat
from layerwise_keras.growth.fit_checks import logits_loss
from layerwise_keras.growth.strategy import replicated_strategy


def recompile_for_stage(model, num_classes, first_learning_rate=None, verbose=0):
    """Compiles the model again for its new stage: a fresh optimizer at the first compile's learning rate.

    A cross-entropy named by string is compiled with `from_logits=True` (the
    network ends in logits); one that expects probabilities is refused
    (`fit_checks.logits_loss`). The learning rate goes back to
    `first_learning_rate`, so what `ReduceLROnPlateau` or
    `LearningRateScheduler` did in a stage does not carry into the next. The
    user's own loss and metric functions resolve by name
    (`compat.compiled_functions`).

    Args:
        model: the compiled model, its new stage added.
        num_classes: int (for the symbolic build under distribution).
        first_learning_rate: the first compile's constant learning rate, or
            None on the first call (it is read from the compile config).
        verbose: 1 says when a string loss is compiled on logits.

    Returns:
        The first compile's learning rate (None if it is not a constant).

    Example:

    >>> from layerwise_keras.growth.builder import append_stage, input_model
    >>> from layerwise_keras.growth.stage import Stage
    >>> model = input_model((9, 9, 1))
    >>> conv = append_stage(model, Stage(8, 3), 1, num_classes=4)
    >>> model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    >>> first = recompile_for_stage(model, 4)            # stage 1
    >>> round(first, 6), model.loss.from_logits          # Adam's float32 0.01; the loss now on logits
    (0.01, True)
    >>> recompile_for_stage(model, 4, first) == first    # every later stage: a fresh optimizer at that rate
    True
    """
    config = model.get_compile_config()
    if not config:
        raise RuntimeError("LayerwiseTrainer: compile the model before calling fit.")
    loss, changed = logits_loss(getattr(model, "loss", None))
    if changed:
        config["loss"] = keras.saving.serialize_keras_object(loss)
        if verbose:
            print(f"LayerwiseTrainer: compiling the loss as keras.losses.{type(loss).__name__}(from_logits=True)"
                  " (the network outputs logits).", flush=True)
    optimizer = config.get("optimizer")
    rate = optimizer.get("config", {}).get("learning_rate") if isinstance(optimizer, dict) else None
    constant = isinstance(rate, (int, float)) and not isinstance(rate, bool)
    if first_learning_rate is None and constant:
        first_learning_rate = float(rate)
    elif first_learning_rate is not None and constant:
        optimizer["config"]["learning_rate"] = first_learning_rate
    with keras.saving.custom_object_scope(compat.compiled_functions(model)):
        model.compile_from_config(config)
    if replicated_strategy(model) is not None or keras.distribution.distribution() is not None:
        # Under keras.distribution (JAX) the train function's shardings are fixed when it is made,
        # so the new optimizer's and metrics' variables must exist by then.
        build_compiled_state(model, num_classes)
    model.make_train_function(force=True)
    return first_learning_rate


def build_compiled_state(model, num_classes):
    """Builds the fresh optimizer's, loss' and metrics' variables before the next train step.

    Under `tf.distribute`, variables created lazily inside the train step
    would be created in a replica context, which fails, and under
    `keras.distribution` (JAX) the train function's shardings would miss
    them; `fit` builds them symbolically before training, and this does the
    same after a stage is added (with a class-id label batch, or one-hot if
    the loss wants it).

    Example:

    >>> from layerwise_keras.growth.builder import append_stage, input_model
    >>> from layerwise_keras.growth.stage import Stage
    >>> model = input_model((9, 9, 1))
    >>> conv = append_stage(model, Stage(8, 3), 1, num_classes=4)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> model.optimizer.built
    False
    >>> build_compiled_state(model, 4)
    >>> model.optimizer.built
    True
    """
    x = np.zeros((1,) + tuple(model.input_shape[1:]), "float32")
    labels = (np.zeros((1,), "int32"), np.zeros((1, num_classes), "float32"))
    for y in labels:
        try:
            compat.symbolic_build(model, (x, y))  # what fit does before its first step
            return
        except (ValueError, TypeError):
            continue
    model.optimizer.build(model.trainable_variables)
