"""The one model builder: every network of the toolkit is assembled here.

A grown network is `conv_1 -> assign_1 -> conv_2 -> ... -> conv_L -> readout_L`:
each clustered stage a frozen convolution (+ReLU) and its `ClusterAssignment`,
then the last stage's convolution and readout. This module owns how those
layers are made, named, ordered and found, so a new stage kind is added here
and nowhere else:

* `input_model(input_shape)`: the empty model a `LayerwiseTrainer` grows;
* `append_stage(model, stage, n, num_classes)`: stage n's trainable part
  (convolution + readout), the two-layer net the stage trains;
* `freeze_stage(model, stage, n, centroids)`: drops stage n's readout,
  freezes its convolution and appends its cluster assignment
  (`append_readout` / `drop_readout` add and remove a readout alone: a
  cluster-first stage, `Stage(cluster="patches")`, is frozen and clustered
  when it begins and trains its readout on its code; `append_handoff` keeps
  a `Stage(handoff="bottleneck")`'s readout up to its bottleneck);
* `grown_model(stages, ...)`: the network after growth, untrained (tuner
  reloads load weights into it);
* `end_to_end_model(stages, ...)`: the same convolutions and last readout
  without clustering, the end-to-end SGD baseline;
* `code_probe_model(model, stage, n, num_classes)`: a grown model's frozen
  layers up to stage n's code under a fresh readout (what a head trained on
  the code reaches: the cost of stage n's clustering step).

A stage's layers come from `growth.stage_layers` (by its kind) and are named
by the stage-layer registry, `growth.names`.
"""

import keras

from layerwise_keras import compat
from layerwise_keras.growth.names import TRAINER, layer_name, parse_layer_name, stage_layer
from layerwise_keras.growth.sequential import LayerwiseSequential
from layerwise_keras.growth.stage import Stage
from layerwise_keras.growth.stage_layers import (patch_kernel, stage_assignment, stage_conv, stage_input_pool,
                                                 stage_readout)

def check_stages(stages, num_classes, owner=TRAINER):
    """Validates a growth's stages and number of classes; returns the stages as `Stage` objects.

    Args:
        stages: list of `Stage` or their config dicts; every stage but the
            last needs `clusters`, the last none (its readout classifies).
        num_classes: int >= 2.
        owner: who asks, for the error messages.

    Returns:
        A list of `Stage`.

    Example:

    >>> check_stages([{"width": 8, "clusters": 4}, {"width": 8}], 4)[0].clusters
    4
    """
    stages = [s if isinstance(s, Stage) else Stage.from_config(s) for s in stages]
    if not stages:
        raise ValueError(f"{owner}: at least one Stage is required.")
    for i, stage in enumerate(stages[:-1], start=1):
        if stage.clusters is None:
            raise ValueError(
                f"{owner}: stage {i} is not the last stage, so it needs Stage(clusters=K) to feed the next stage."
            )
    if stages[-1].clusters is not None:
        raise ValueError(
            f"{owner}: the last stage's readout is the classifier; "
            f"set clusters=None on it (got clusters={stages[-1].clusters})."
        )
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"{owner}: num_classes must be an integer >= 2, got {num_classes!r}.")
    return stages


def input_model(input_shape, name="layerwise"):
    """Returns the empty model a `LayerwiseTrainer` grows: a `LayerwiseSequential` holding only its `keras.Input`.

    Args:
        input_shape: shape of one image, e.g. `(27, 27, 1)`.
        name: the model's name.

    Returns:
        A `LayerwiseSequential` (a `keras.Sequential`).

    Example:

    >>> model = input_model((27, 27, 1))
    >>> model.layers, image_shape(model)
    ([], (27, 27, 1))
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"input_model: expected an image shape (height, width, channels), got {input_shape}."
        )
    return LayerwiseSequential([keras.Input(input_shape)], name=name)


def _check_positions(model, n, owner):
    if len(model.input_shape) != 4:
        raise ValueError(f"{owner}: the model's input must be images (batch, H, W, C), got {model.input_shape}.")
    if any(d is not None and d < 1 for d in model.output_shape[1:3]):
        raise ValueError(f"{owner}: stage {n} leaves no spatial positions (output {model.output_shape}).")


def image_shape(model):
    """Returns the image shape `(H, W, C)` a `Sequential` takes, also while it holds only its `keras.Input`.

    Example:

    >>> image_shape(input_model((9, 9, 1)))
    (9, 9, 1)
    """
    inputs = [l for l in compat.sequential_layers(model) if isinstance(l, keras.layers.InputLayer)]
    if inputs:
        return tuple(inputs[0].batch_shape[1:])
    return tuple(model.input_shape[1:])


def _channels(model):
    """The channels of what a `Sequential` computes so far (its input's while it holds only its `Input`)."""
    if model.layers:
        return int(model.output_shape[-1])
    return int([l for l in compat.sequential_layers(model) if isinstance(l, keras.layers.InputLayer)][0]
               .batch_shape[-1])


def append_stage(model, stage, n, num_classes, seed=0, readout=True, owner=TRAINER, end_to_end=False):
    """Appends stage `n`'s convolution and (with `readout`) its readout to a `Sequential`.

    Args:
        model: the `keras.Sequential` being grown (stages `1..n-1` frozen).
        stage: the `Stage`.
        n: 1-based stage index.
        num_classes: int, the readout's width.
        seed: int, seeds the initialisers.
        readout: also append the readout layers.
        owner: who asks, for the error messages.
        end_to_end: the layers of the end-to-end twin (see `stage_conv`).

    Returns:
        The convolution layer.

    Example:

    >>> append_stage(input_model((9, 9, 1)), Stage(8, 3), 1, num_classes=4).name
    'stage1_conv'
    """
    pool = stage_input_pool(stage, n)
    if pool is not None:
        model.add(pool)
        _check_positions(model, n, owner)
    in_channels = _channels(model) if stage.cluster == "patches" else None
    conv = stage_conv(stage, n, seed, in_channels=in_channels, end_to_end=end_to_end)
    model.add(conv)
    _check_positions(model, n, owner)
    if stage.cluster == "patches" and not end_to_end:
        conv.set_weights([patch_kernel(stage.kernel_size, in_channels)])
    if readout:
        append_readout(model, stage, n, num_classes, seed)
    return conv


def append_readout(model, stage, n, num_classes, seed=0):
    """Appends stage `n`'s readout layers (`stage_readout`) to a `Sequential`.

    Example:

    >>> model, stage = input_model((9, 9, 1)), Stage(8, 3)
    >>> conv = append_stage(model, stage, 1, num_classes=4, readout=False)
    >>> append_readout(model, stage, 1, num_classes=4)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage1_readout_flatten', 'stage1_readout']
    """
    for layer in stage_readout(stage, n, num_classes, seed):
        model.add(layer)


def drop_readout(model, n, keep_bottleneck=False):
    """Removes stage `n`'s readout from the end of a `Sequential` (it ends with stage `n`).

    Args:
        model: the `keras.Sequential`.
        n: 1-based stage index.
        keep_bottleneck: keep the readout up to its 1x1 bottleneck
            (`Stage(handoff="bottleneck")`), frozen: what the next stage
            receives.

    Example:

    >>> model = input_model((9, 9, 1))
    >>> conv = append_stage(model, Stage(8, 3), 1, num_classes=4)
    >>> drop_readout(model, 1)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv']
    """
    ends = ((n, "readout_bottleneck"),) if keep_bottleneck else ((n, "conv"), (n, "assign"))
    while parse_layer_name(model.layers[-1].name) not in ends:
        role = parse_layer_name(model.layers[-1].name)
        if role is None or role[0] != n or not role[1].startswith("readout"):
            raise ValueError(f"drop_readout: model '{model.name}' does not end with stage {n}'s "
                             + ("bottleneck" if keep_bottleneck else "readout") + ".")
        model.pop()
    if keep_bottleneck:
        for layer in model.layers:
            if (parse_layer_name(layer.name) or (0, ""))[0] == n:
                layer.trainable = False


def append_handoff(model, stage, n, num_classes, seed=0, frozen=True, end_to_end=False):
    """Appends what a `Stage(handoff="bottleneck")` hands on: its readout up to the 1x1 bottleneck.

    Args:
        model: the `keras.Sequential`, ending with stage `n`'s assignment
            (or, in the end-to-end twin, its convolution).
        stage: the `Stage`.
        n: 1-based stage index.
        num_classes: int (the readout's, for the same initialisers as in training).
        seed: int.
        frozen: freeze the layers (the grown network; the twin trains them).
        end_to_end: the layers of the end-to-end twin (see `stage_readout`).

    Example:

    >>> import numpy as np
    >>> stage = Stage(None, 3, strides=1, clusters=4, cluster="patches", readout="pooled", pool_size=2,
    ...               bottleneck=4, handoff="bottleneck")
    >>> model = input_model((9, 9, 1))
    >>> conv = append_stage(model, stage, 1, num_classes=3, readout=False)
    >>> assign = freeze_stage(model, stage, 1, np.zeros((4, 9), "float32"))  # 4 centroids of 3x3 patches
    >>> append_handoff(model, stage, 1, num_classes=3)
    >>> [layer.name for layer in model.layers][2:], model.output_shape
    (['stage1_readout_avgpool', 'stage1_readout_bn', 'stage1_readout_bottleneck'], (None, 3, 3, 4))
    """
    for layer in stage_readout(stage, n, num_classes, seed, end_to_end=end_to_end):
        model.add(layer)
        layer.trainable = not frozen
        if layer.name == layer_name(n, "readout_bottleneck"):
            return
    raise ValueError(f"append_handoff: stage {n}'s readout has no bottleneck (readout={stage.readout!r}).")


def freeze_stage(model, stage, n, centroids, whitening=None):
    """Turns stage `n` (the last one of `model`) into a clustered stage.

    Drops its readout, freezes its convolution and appends its
    `ClusterAssignment` with the k-means `centroids` (and the whitening
    k-means ran in, for a stage with `whiten`).

    Args:
        model: the `keras.Sequential`, ending with stage `n`.
        stage: the `Stage` (its assignment settings are used).
        n: 1-based stage index.
        centroids: float array `[clusters, width]` (whitened coordinates
            when the stage whitens).
        whitening: `(mean, matrix)` of the stage's ZCA, required exactly
            when `stage.whiten` is set.

    Returns:
        The `ClusterAssignment` layer.

    Example:

    >>> import numpy as np
    >>> model, stage = input_model((9, 9, 1)), Stage(8, 3, clusters=4)
    >>> conv = append_stage(model, stage, 1, num_classes=4)
    >>> centroids = np.random.default_rng(0).random((4, 8), dtype="float32")  # k-means' cluster_centers_
    >>> freeze_stage(model, stage, 1, centroids).name
    'stage1_assign'
    >>> [layer.name for layer in model.layers], model.trainable_weights
    (['stage1_conv', 'stage1_assign'], [])
    """
    conv = stage_layer(model, n, "conv")
    conv.trainable = False
    drop_readout(model, n)
    if (whitening is None) != (stage.whiten is None):
        raise ValueError(f"freeze_stage: stage {n} has whiten={stage.whiten!r}; whitening must be "
                         f"{'given' if stage.whiten is not None else 'None'}.")
    assign = stage_assignment(stage, n)
    model.add(assign)
    assign.set_centroids(centroids)
    if whitening is not None:
        assign.set_whitening(*whitening)
    return assign


def grown_model(stages, input_shape, num_classes, seed=0, name="layerwise", owner="grown_model"):
    """Builds the network a `LayerwiseTrainer` grows, untrained.

    The same layers, names, order and frozen flags as after the growth
    (`stage{n}_conv`, `stage{n}_assign` for each clustered stage, the last
    stage's readout), with zero centroids: the structure to load a grown
    model's weights into (`model.load_weights`).

    Args:
        stages: list of `Stage` (or their config dicts); every stage but the
            last needs `clusters`.
        input_shape: image shape `(height, width, channels)`.
        num_classes: int, the number of logits.
        seed: int, the initialisers' seed (as `LayerwiseTrainer(seed=...)`).
        name: the model's name.
        owner: who asks, for the error messages.

    Returns:
        A built `keras.Sequential` (not compiled).

    Raises:
        ValueError: when a stage does not fit what reaches it (an input too
            small for its kernel, stride or pool): the message names the
            stage, its input's shape and the image shape.

    Example:

    >>> model = grown_model([Stage(8, 3, clusters=8), Stage(8, 3)], (9, 9, 1), num_classes=4)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage1_assign', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']
    """
    stages = check_stages(stages, num_classes, owner=owner)
    model = input_model(input_shape, name=name)
    last = len(stages) - 1
    for index, stage in enumerate(stages):
        n = index + 1
        reaching = tuple(model.output_shape[1:]) if model.layers else tuple(input_shape)
        try:
            conv = append_stage(model, stage, n, num_classes, seed, readout=index == last, owner=owner)
            if index < last:
                conv.trainable = False
                model.add(stage_assignment(stage, n))
                if stage.handoff == "bottleneck":
                    append_handoff(model, stage, n, num_classes, seed)
        except ValueError as err:
            raise ValueError(
                f"{owner}: stage {n} of {len(stages)} does not fit the {reaching[0]}x{reaching[1]}x{reaching[2]} "
                f"map that reaches it from {tuple(input_shape)} images (kernel_size={stage.kernel_size}, "
                f"strides={stage.strides}, padding={stage.padding!r}, input_pool={stage.input_pool}, "
                f"readout={stage.readout!r}, pool_size={stage.pool_size}): give larger images, or smaller kernels, "
                f"strides or pools to the stages up to {n}. ({err})"
            ) from err
    return model


def end_to_end_model(stages, input_shape, num_classes, seed=0, name="end_to_end"):
    """Builds the stages' convolutions and last readout as one plain CNN: the end-to-end baseline.

    A grown network is `conv_1 -> assign_1 -> conv_2 -> ... -> conv_L -> readout`;
    its baseline drops the cluster assignments and trains
    `conv_1 -> conv_2 -> ... -> conv_L -> readout` (same kernels, strides,
    widths, padding, ReLU, readout and initialisers) end to end, with a
    `Stage(handoff="bottleneck")`'s pooled bottleneck after its convolution.

    Args:
        stages: list of `Stage` (or their config dicts).
        input_shape: shape of one image, `(H, W, C)`.
        num_classes: int, the readout's width.
        seed: int, seeds the weight initialisers (same scheme as
            `LayerwiseTrainer`).
        name: the model's name.

    Returns:
        An uncompiled `keras.Sequential`.

    Example:

    >>> model = end_to_end_model([Stage(32, 3, clusters=16), Stage(64, 3)], (9, 9, 1), 4)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']
    """
    stages = [s if isinstance(s, Stage) else Stage.from_config(s) for s in stages]
    if not stages:
        raise ValueError("end_to_end_model: at least one Stage is required.")
    model = keras.Sequential([keras.Input(tuple(input_shape))], name=name)
    for n, stage in enumerate(stages, start=1):
        append_stage(model, stage, n, num_classes, seed, readout=n == len(stages), owner="end_to_end_model",
                     end_to_end=True)
        if n < len(stages) and stage.handoff == "bottleneck":
            append_handoff(model, stage, n, num_classes, seed, frozen=False, end_to_end=True)
    return model


def code_probe_model(model, stage, n, num_classes, seed=0):
    """Stage `n`'s code under a fresh readout of its kind: a probe of what the clustering step kept.

    The grown `model`'s layers up to stage `n`'s assignment, shared and
    frozen (training the probe changes nothing in `model`), then a new
    `stage_readout(stage, n, ...)`. Trained on the code, its accuracy beside
    the stage's own (its two-layer net's, before clustering) is the cost of
    the clustering step.

    Args:
        model: a grown `keras.Sequential` (or one still growing) in which
            stage `n` is clustered.
        stage: stage `n`'s `Stage` (its readout settings are used).
        n: 1-based stage index.
        num_classes: int, the readout's width.
        seed: int, seeds the readout's initialisers.

    Returns:
        An uncompiled `keras.Sequential` named `stage{n}_code_probe`.

    Example:

    >>> stages = [Stage(8, 3, clusters=4), Stage(8, 3)]
    >>> model = grown_model(stages, (9, 9, 1), num_classes=4)
    >>> probe = code_probe_model(model, stages[0], 1, num_classes=4)
    >>> [layer.name for layer in probe.layers]
    ['stage1_conv', 'stage1_assign', 'stage1_readout_flatten', 'stage1_readout']
    """
    prefix = model.layers[: model.layers.index(stage_layer(model, n, "assign")) + 1]
    trainable = [layer.name for layer in prefix if layer.trainable_weights]
    if trainable:
        raise ValueError(f"code_probe_model: stage {n}'s code is not frozen in model '{model.name}' "
                         f"(trainable layers {trainable}); probe a grown model.")
    probe = keras.Sequential([keras.Input(tuple(model.input_shape[1:])), *prefix], name=f"stage{n}_code_probe")
    append_readout(probe, stage, n, num_classes, seed)
    return probe
