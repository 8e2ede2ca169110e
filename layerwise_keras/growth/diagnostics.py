"""What a growth says about a stage that likely failed, and the checks that stop one that did.

`StageWarning` / `diagnose`: near-chance accuracy (diverged, or too few
gradient steps), collapsed clusters. `check_finite`: a NaN/Inf training loss
or weight at an epoch end is an error naming the stage and epoch.
`stage_start_line` / `stage_line`: the readable lines printed as a stage begins and ends.
"""

import math

import keras
import numpy as np

from layerwise_keras.growth.names import CACHED, TRAINER
from layerwise_keras.growth.stage_clustering import NON_FINITE_HINT

# A stage's accuracy at most this fraction of the way from chance to 1 is "near chance".
NEAR_CHANCE = 0.1
# A stage's training loss above this multiple of a uniform guess' loss, ln(num_classes), has diverged.
DIVERGED_LOSS = 3.0
# k-means figures below these are a collapse: the fraction of clusters used, points per cluster.
MIN_CLUSTER_USAGE = 0.5
MIN_POINTS_PER_CLUSTER = 4


# The figures the trainer adds to the epoch logs at a clustered stage's end. Every epoch's logs hold each of
# them (NaN where the epoch ended no clustered stage), so that CSVLogger, which fixes its columns at the first
# epoch, and History keep them aligned with the epochs.
STAGE_FIGURES = ("kmeans_inertia", "kmeans_mean_sq_dist", "kmeans_iterations", "kmeans_seconds", "cluster_usage",
                 "cluster_entropy", "dead_clusters", "stage_seconds")


def epoch_figure_keys(stages):
    """The keys every epoch's logs hold (NaN until known): `STAGE_FIGURES`, `whiten_seconds` where a stage
    whitens, `learning_rate` where a stage has a schedule.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> epoch_figure_keys([Stage(8, clusters=4, whiten=0.01), Stage(8)])[-1]
    'whiten_seconds'
    """
    keys = list(STAGE_FIGURES)
    if any(stage.whiten is not None for stage in stages):
        keys.append("whiten_seconds")
    if any(stage.schedule is not None for stage in stages):
        keys.append("learning_rate")
    return keys


def incomplete_message(n, total, done, budget):
    """The `GrowthIncompleteWarning` of a `fit` that ended with stage `n` of `total` after `done` of `budget` epochs."""
    return (f"LayerwiseTrainer: fit ended before the growth did (stage {n} of {total} in training after {done} of "
            f"its {budget} epoch(s)): the model is not the grown network and trainer.finished is False. Something "
            "stopped training early (a callback setting model.stop_training, TerminateOnNaN, an interrupt).")


class StageWarning(UserWarning):
    """A stage ended in a state that usually means a failed growth (near-chance accuracy, collapsed clusters)."""


class GrowthIncompleteWarning(UserWarning):
    """`fit` ended before the last stage did: the model is not the grown network (`trainer.finished` is False)."""


def non_finite_variables(model):
    """Names and non-finite counts of the model's trainable variables that hold NaN/Inf."""
    bad = []
    for variable in model.trainable_variables:
        value = keras.ops.convert_to_numpy(variable)
        count = int(value.size - np.count_nonzero(np.isfinite(value)))
        if count:
            bad.append(f"{variable.path} ({count} of {value.size})")
    return bad


def stage_start_line(stage, n, total, budget):
    """One readable line for the start of stage `n` of `total`: what it will do, its budget in epochs.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> stage_start_line(Stage(8, clusters=4), 1, 2, 3)
    'LayerwiseTrainer: stage 1/2 begins: trains its convolution and readout, then k-means of its embeddings; budget 3 epoch(s).'
    """
    what = "trains its convolution and readout, then k-means of its embeddings"
    if stage.cluster == "patches":
        what = "was k-means-clustered on its patches; trains its head on the code"
    elif stage.clusters is None:
        what = "trains its convolution and readout (the classifier)"
    text = f"{budget} epoch(s)"
    if stage.steps is not None:
        text += f" ({stage.steps} steps)"
    if stage.patience is not None:
        text = f"up to {text}, stopping on convergence (patience {stage.patience})"
    return f"LayerwiseTrainer: stage {n}/{total} begins: {what}; budget {text}."


def stage_line(result, n, total):
    """One readable line for the end of stage `n`: accuracy, k-means figures, seconds."""
    parts = []
    for key in ("accuracy", "val_accuracy", "loss"):
        if key in result:
            parts.append(f"{key.replace('_', ' ')} {result[key]:.4f}")
    if "kmeans_iterations" in result:
        used = len(result["kmeans_counts"]) - result["dead_clusters"]
        parts.append(
            f"k-means {used}/{len(result['kmeans_counts'])} clusters used (entropy {result['cluster_entropy']:.2f}), "
            f"{result['kmeans_iterations']} iterations, {result['kmeans_seconds']:.1f} s"
        )
    return f"LayerwiseTrainer: stage {n}/{total} done in {result['stage_seconds']:.1f} s: " + ", ".join(parts)


def more_steps_hint(owner):
    """How to give a stage more gradient steps on the growth path `owner`, for messages.

    Args:
        owner: `names.TRAINER` or `names.CACHED` (which trains fixed budgets only).

    Returns:
        A str naming the `Stage` arguments to raise.

    Example:

    >>> more_steps_hint("grow_cached")
    'Stage(epochs=...) or Stage(steps=...)'
    """
    if owner == CACHED:
        return "Stage(epochs=...) or Stage(steps=...)"
    return "Stage(steps=...) or Stage(patience=..., epochs=...)"


def diagnose(result, n, num_classes, previous=None, owner=TRAINER):
    """One clear message per likely failure of a stage: near chance (diverged, or too few steps), collapsed clusters.

    Args:
        result: the stage's result dict (its epoch figures, `epochs`,
            `steps`, and for a clustered stage `cluster_usage`,
            `kmeans_counts`, `dead_clusters`).
        n: the 1-based stage index.
        num_classes: int.
        previous: the result of the stage before, or None.
        owner: the growth path the messages name (`names.TRAINER` or
            `names.CACHED`).

    Returns:
        A list of messages (empty when the stage looks healthy).

    Example:

    >>> diagnose({"accuracy": 0.26, "loss": 1.4, "epochs": 1}, 1, 4)[0][:47]
    'LayerwiseTrainer: stage 1 ended near chance acc'
    """
    messages = []
    chance = 1.0 / num_classes
    key = "val_accuracy" if "val_accuracy" in result else "accuracy"
    accuracy = result.get(key)
    steps = result.get("steps")
    budget = f"{steps} gradient steps ({result['epochs']} epochs)" if steps else f"{result['epochs']} epochs"
    uniform = math.log(num_classes)
    loss = result.get("loss")
    near_chance = accuracy is not None and accuracy <= chance + NEAR_CHANCE * (1.0 - chance)
    if near_chance and loss is not None and loss > DIVERGED_LOSS * uniform:
        messages.append(
            f"{owner}: stage {n} ended near chance accuracy ({key.replace('_', ' ')} {accuracy:.3f}, "
            f"chance {chance:.3f}) with a training loss of {loss:.3g}, {loss / uniform:.0f}x a uniform guess' "
            f"(ln {num_classes} = {uniform:.2f}): its training diverged. Lower the learning rate, or "
            "normalise the readout's input (Stage(readout='pooled') with batchnorm=True)."
        )
    elif near_chance:
        messages.append(
            f"{owner}: stage {n} ended near chance accuracy ({key.replace('_', ' ')} {accuracy:.3f}, "
            f"chance {chance:.3f}) after {budget}: likely too few gradient steps for this training set; give "
            f"the stage more ({more_steps_hint(owner)})."
        )
    if "cluster_usage" in result:
        k = len(result["kmeans_counts"])
        used = k - result["dead_clusters"]
        points = sum(result["kmeans_counts"])
        before = previous.get("cluster_usage") if previous else None
        collapsed = result["cluster_usage"] < MIN_CLUSTER_USAGE or (
            before is not None and result["cluster_usage"] < 0.5 * before)
        if collapsed or points < MIN_POINTS_PER_CLUSTER * k:
            messages.append(
                f"{owner}: k-means of stage {n} used {used} of {k} clusters on {points} points "
                f"({points / k:.1f} per cluster"
                + (f"; the stage before used {before:.0%} of its clusters" if before is not None else "")
                + "): too few points per cluster (more training images, or fewer clusters) or embeddings "
                "that collapsed (too few gradient steps)."
            )
    return messages


def check_finite(model, n, epoch, logs):
    """Stops with a clear error when the loss or a trainable weight turned NaN/Inf during the epoch.

    Args:
        model: the model in training.
        n: the 1-based stage index; epoch: the 0-based epoch; logs: its logs.

    Returns:
        None.

    Raises:
        ValueError: naming the stage, the epoch and the bad weights.
    """
    loss = logs.get("loss")
    if loss is not None and not math.isfinite(float(loss)):
        raise ValueError(
            f"LayerwiseTrainer: the training loss is {float(loss)} at stage {n}, epoch {epoch + 1}. "
            + NON_FINITE_HINT
        )
    bad = non_finite_variables(model)
    if bad:
        raise ValueError(
            f"LayerwiseTrainer: non-finite weights at stage {n}, epoch {epoch + 1} (training loss {loss}): "
            f"{', '.join(bad)}. " + NON_FINITE_HINT
        )
