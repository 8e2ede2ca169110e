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

Example (`x`, `y`: 128 images 27x27x1 and their labels, 10 classes; the
strategy here mirrors the one CPU, `MirroredStrategy()` takes all GPUs):

>>> import keras
>>> from layerwise_keras import LayerwiseTrainer, Stage, input_model
>>> strategy = tf.distribute.MirroredStrategy(["CPU:0"])
>>> grower = LayerwiseTrainer([Stage(8, 3, clusters=8), Stage(8, 3)], num_classes=10,
...                           kmeans_data=x, verbose=0)
>>> with strategy.scope():
...     net = input_model(x.shape[1:])
...     net.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
>>> history = net.fit(x, y, batch_size=32, epochs=grower.total_epochs, callbacks=[grower], verbose=0)
>>> grower.finished, model_strategy(net) is strategy
(True, True)
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

    >>> import keras
    >>> strategy = tf.distribute.MirroredStrategy(["CPU:0"])  # one replica: the CPU
    >>> with strategy.scope():
    ...     net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model_strategy(net) is strategy, model_strategy(net).num_replicas_in_sync
    (True, 1)
    >>> model_strategy(keras.Sequential([keras.Input((4,))])) is tf.distribute.get_strategy()
    True
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

    >>> from layerwise_keras.clustering.kernels import lloyd_step
    >>> strategy = tf.distribute.MirroredStrategy(["CPU:0"])  # one replica here
    >>> run = replicated_step(strategy, tf.function(lloyd_step, jit_compile=True))
    >>> points = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    >>> w = np.ones(10, np.float32)
    >>> sums, counts, inertia, min_dist, assign = run(points, w, points[:2])
    >>> tuple(sums.shape), int(tf.reduce_sum(counts)), tuple(assign.shape)
    ((2, 3), 10, (10,))
    >>> expected = lloyd_step(tf.constant(points), tf.constant(w), tf.constant(points[:2]))
    >>> np.allclose(sums, expected[0], atol=1e-5), np.array_equal(assign, expected[4])
    (True, True)
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
