"""Several devices under `tf.distribute` (TensorFlow-only).

Training: build and compile the model inside `strategy.scope()` and `fit` it
as usual; `LayerwiseTrainer` adds each new stage, its cluster assignment and
the re-compiled optimizer inside the model's strategy scope, so their
variables are mirrored too.

k-means: `KMeans(distribute=strategy)` (the trainer passes the model's
strategy when it has more than one replica) splits every chunk of points
across the replicas; each replica runs the compiled Lloyd step on its slice,
and the per-cluster sums, counts and the inertia are combined with an
all-reduce in the replica context (`ReplicaContext.all_reduce`), so no
replica's points are gathered anywhere. The per-point distances and
assignments (needed to re-seed empty clusters from the farthest points) come
back to the host slice by slice.

On several hosts, use `tf.distribute.MultiWorkerMirroredStrategy` (or a TPU
strategy) the same way; on Keras' JAX backend, `keras.distribution` (see the
README) replaces all of this.

Example:

>>> strategy = tf.distribute.MirroredStrategy()
>>> with strategy.scope():
...     model = layerwise_keras.input_model((32, 32, 3))
...     model.compile(...)
>>> model.fit(dataset, epochs=trainer.total_epochs, callbacks=[trainer])
"""

import numpy as np
import tensorflow as tf


def model_strategy(model):
    """The `tf.distribute.Strategy` a Keras model trains under (the default strategy if none).

    Args:
        model: a Keras model (TensorFlow backend).

    Returns:
        The strategy: the one whose scope the model was created in, else
        `tf.distribute.get_strategy()`.

    Example:

    >>> model_strategy(model).num_replicas_in_sync
    2
    """
    return getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()


def replicated_step(strategy, step):
    """Runs a Lloyd step on all replicas of `strategy`, all-reducing its sums, counts and inertia.

    Args:
        strategy: a `tf.distribute.Strategy`.
        step: the compiled step `(x [B, D], w [B], centroids [K, D]) ->
            (sums, counts, inertia, min_dist, assign)`.

    Returns:
        A function with the same signature and results; `B` rows are split
        evenly across the replicas (padded with zero-weight rows as needed).

    Example:

    >>> run = replicated_step(strategy, tf.function(lloyd_step, jit_compile=True))
    """
    replicas = strategy.num_replicas_in_sync

    def replica_fn(x, w, centroids):
        sums, counts, inertia, min_dist, assign = step(x, w, centroids)
        context = tf.distribute.get_replica_context()
        sums, counts, inertia = context.all_reduce(tf.distribute.ReduceOp.SUM, [sums, counts, inertia])
        return sums, counts, inertia, min_dist, assign

    @tf.function
    def run(x_parts, w_parts, centroids):
        return strategy.run(replica_fn, args=(x_parts, w_parts, centroids))

    def call(x, w, centroids):
        x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
        rows = x.shape[0]
        per = -(-rows // replicas)
        if per * replicas != rows:
            x = np.concatenate([x, np.zeros((per * replicas - rows, x.shape[1]), np.float32)])
            w = np.concatenate([w, np.zeros(per * replicas - rows, np.float32)])

        def part(array):
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(array[ctx.replica_id_in_sync_group * per:(ctx.replica_id_in_sync_group + 1) * per])
            )

        outs = run(part(x), part(w), tf.constant(centroids))
        local = [strategy.experimental_local_results(o) for o in outs]
        sums, counts, inertia = (values[0] for values in local[:3])  # identical on every replica
        min_dist = tf.concat(local[3], axis=0)[:rows]
        assign = tf.concat(local[4], axis=0)[:rows]
        return sums, counts, inertia, min_dist, assign

    return call
