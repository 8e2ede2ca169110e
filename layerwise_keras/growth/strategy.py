"""Where a growing model lives: its `tf.distribute` strategy, JAX processes, and the scope new layers are created in.
"""

import contextlib

import keras

from layerwise_keras.clustering.distribute_jax import process_count


def _strategy(model):
    """The model's `tf.distribute` strategy on the TensorFlow backend (None elsewhere)."""
    if keras.backend.backend() != "tensorflow":
        return None
    from layerwise_keras.clustering.distribute_tf import model_strategy

    return model_strategy(model)


def replicated_strategy(model):
    """The model's strategy if it has more than one replica (k-means then runs on all of them), else None."""
    strategy = _strategy(model)
    return strategy if strategy is not None and strategy.num_replicas_in_sync > 1 else None


def kmeans_distribute(model):
    """What the stage's k-means runs on: the model's replicated strategy, `"processes"` (several JAX processes), or None."""
    strategy = replicated_strategy(model)
    if strategy is not None:
        return strategy
    if keras.backend.backend() == "jax":

        if process_count() > 1:
            return "processes"
    return None


def strategy_scope(model):
    """Where new layers and optimizer variables are created: the model's strategy scope, if any."""
    strategy = _strategy(model)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
