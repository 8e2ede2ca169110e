"""A stage's lifecycle, written once for both growth paths (the `LayerwiseTrainer` callback and `growth.cached`).

begin (`begin_stage`: append the stage; a cluster-first stage is whitened,
clustered and frozen here and gets the readout its epochs train) -> train to
its budget (`Stage.budget`, each epoch at `Stage.learning_rate`, the caller's
loop) -> end (`end_stage`: a paper-order stage is whitened, clustered and
frozen and its readout dropped; a cluster-first stage drops its readout, or
keeps the head it hands on, frozen) -> its result's diagnosis and warnings
(`report_stage`). Each rule (cluster order, hand-off, budget, schedule,
diagnosis) is decided here or in `Stage`; the two paths differ only in where
a stage's clustering reads its points: the images through the model (the
trainer) or a cached stage input (the cached growth). That is the `cluster`
argument: a function of the layer whose output k-means clusters, returning
`stage_clustering.cluster_stage`'s `(kmeans, whitening, figures)`.
"""

import contextlib
import warnings

from layerwise_keras.growth.builder import append_readout, append_stage, drop_readout, freeze_stage
from layerwise_keras.growth.diagnostics import StageWarning, diagnose
from layerwise_keras.growth.names import TRAINER, stage_layer

# The per-epoch figures both growth paths record in their history.
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "stage", "learning_rate")


def _no_scope(model):
    return contextlib.nullcontext()


def begin_stage(model, stage, n, num_classes, cluster, seed=0, scope=_no_scope, owner=TRAINER):
    """Appends stage `n` to a growing `Sequential`; a cluster-first stage is clustered here.

    A `Stage(cluster="patches")` gets its patch convolution, k-means of its
    (whitened) patches (`cluster`), its assignment and then the readout its
    epochs train on the code; any other stage its convolution and readout.

    Args:
        model: the growing `keras.Sequential` (stages `1..n-1` frozen).
        stage: stage `n`'s `Stage`.
        n: 1-based stage index.
        num_classes: int.
        cluster: function of a layer of `model`: clusters that layer's output
            (see the module docstring).
        seed: int, the layers' initialiser seed.
        scope: function of `model` returning the context the new layers
            are made in (a `tf.distribute` strategy's scope).
        owner: who grows, for error messages.

    Returns:
        A cluster-first stage's clustering figures, else None.

    Example (`x`: 128 images 27x27x1):

    >>> import keras
    >>> from layerwise_keras.growth.builder import input_model
    >>> from layerwise_keras.growth.stage import Stage
    >>> from layerwise_keras.growth.stage_clustering import EmbeddingStream, cluster_stage
    >>> stage, model = Stage(None, 3, clusters=4, cluster="patches"), input_model((27, 27, 1))
    >>> def cluster(layer):  # k-means of the layer's output over the images x, as the trainer does
    ...     prefix = keras.Sequential([keras.Input((27, 27, 1))] + model.layers[:model.layers.index(layer) + 1])
    ...     return cluster_stage(stage, 1, EmbeddingStream(prefix, x, 64, stage=1), seed=0)
    >>> figures = begin_stage(model, stage, 1, 10, cluster)
    >>> [layer.name for layer in model.layers], figures["kmeans_iterations"] > 0
    (['stage1_conv', 'stage1_assign', 'stage1_readout_flatten', 'stage1_readout'], True)
    """
    patches = stage.cluster == "patches"
    with scope(model):
        append_stage(model, stage, n, num_classes, seed, readout=not patches, owner=owner)
    if not patches:
        return None
    kmeans, whitening, figures = cluster(stage_layer(model, n, "conv"))
    with scope(model):
        freeze_stage(model, stage, n, kmeans.cluster_centers_, whitening)
        append_readout(model, stage, n, num_classes, seed)
    return figures


def end_stage(model, stage, n, cluster, begun=None, scope=_no_scope):
    """Ends clustered stage `n` (the last of `model`) once it has trained.

    A paper-order stage's embeddings are whitened and clustered (`cluster`),
    its convolution frozen, its readout replaced by its assignment; a
    cluster-first stage, clustered when it began, drops its readout (with
    `handoff="bottleneck"` it keeps its head up to the bottleneck, frozen).

    Args:
        model, stage, n, cluster, scope: as in `begin_stage`.
        begun: what `begin_stage` returned for this stage.

    Returns:
        The stage's clustering figures.

    Example (`x`: 128 images 27x27x1; `cluster` as in `begin_stage`'s example):

    >>> import keras
    >>> from layerwise_keras.growth.builder import input_model
    >>> from layerwise_keras.growth.stage import Stage
    >>> from layerwise_keras.growth.stage_clustering import EmbeddingStream, cluster_stage
    >>> stage, model = Stage(8, 3, clusters=4), input_model((27, 27, 1))
    >>> def cluster(layer):
    ...     prefix = keras.Sequential([keras.Input((27, 27, 1))] + model.layers[:model.layers.index(layer) + 1])
    ...     return cluster_stage(stage, 1, EmbeddingStream(prefix, x, 64, stage=1), seed=0)
    >>> begin_stage(model, stage, 1, 10, cluster) is None
    True
    >>> figures = end_stage(model, stage, 1, cluster)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage1_assign']
    """
    if stage.cluster == "patches":
        with scope(model):
            drop_readout(model, n, keep_bottleneck=stage.handoff == "bottleneck")
        return begun
    kmeans, whitening, figures = cluster(stage_layer(model, n, "conv"))
    with scope(model):
        freeze_stage(model, stage, n, kmeans.cluster_centers_, whitening)
    return figures


def report_stage(result, n, num_classes, previous=None, stacklevel=3, owner=TRAINER):
    """Diagnoses an ended stage: records `result["warnings"]` and issues each as a `StageWarning`.

    Args:
        result: the stage's result dict (see `diagnostics.diagnose`).
        n: 1-based stage index.
        num_classes: int.
        previous: the result of the stage before, or None.
        stacklevel: passed to `warnings.warn`.
        owner: the growth path the messages name.

    Returns:
        The list of messages.

    Example:

    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     messages = report_stage({"accuracy": 0.26, "loss": 1.4, "epochs": 1}, 1, 4)
    >>> len(messages)
    1
    """
    result["warnings"] = diagnose(result, n, num_classes, previous, owner)
    for message in result["warnings"]:
        warnings.warn(message, StageWarning, stacklevel=stacklevel)
    return result["warnings"]
