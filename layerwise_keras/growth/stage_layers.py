"""The layers of one stage, by its kind: convolution, input pooling, readout (head), cluster assignment.

Each function returns fresh, seeded, named layers for stage `n` from its
`Stage`; `growth.builder` assembles them into every network of the toolkit
(the growth, the cached growth, `grown_model`, the end-to-end twin, code
probes). A new stage kind's layers are made here.
"""

import keras
import numpy as np

from layerwise_keras.growth.layers import ClusterAssignment, CodeGate
from layerwise_keras.growth.names import layer_name


def stage_conv(stage, n, seed=0, in_channels=None, end_to_end=False):
    """Returns stage `n`'s (1-based) convolution layer, seeded.

    A convolution + ReLU of `stage.width` filters; for a
    `Stage(cluster="patches")` the patch extraction: `kh * kw * in_channels`
    filters, no bias, no activation, frozen, its kernel set to the identity by
    `append_stage` (`patch_kernel`); with `end_to_end` (the twin's) an
    ordinary trainable convolution + ReLU of that width.

    Args:
        stage: the `Stage`.
        n: 1-based stage index (names the layer `stage{n}_conv`).
        seed: int; the initialiser's seed is derived from it and `n`.
        in_channels: int, the stage's input channels (needed for a
            `cluster="patches"` stage).
        end_to_end: the layer of the end-to-end twin.

    Returns:
        A `keras.layers.Conv2D`.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> stage_conv(Stage(8, 3), 1).name
    'stage1_conv'
    """
    initializer = keras.initializers.HeUniform(seed=seed * 1000 + n)
    if stage.cluster != "patches":
        return keras.layers.Conv2D(stage.width, stage.kernel_size, strides=stage.strides, padding=stage.padding,
                                   activation="relu", kernel_initializer=initializer, name=layer_name(n, "conv"))
    if in_channels is None:
        raise ValueError(f"stage_conv: stage {n} clusters its input patches; give in_channels.")
    filters = stage.kernel_size[0] * stage.kernel_size[1] * int(in_channels)
    if end_to_end:
        return keras.layers.Conv2D(filters, stage.kernel_size, strides=stage.strides, padding=stage.padding,
                                   activation="relu", kernel_initializer=initializer, name=layer_name(n, "conv"))
    # Zeros, then the identity set on the built layer: a built-in initializer, so the portable form loads
    # without this package; the kernel is a (frozen) weight saved with the model.
    return keras.layers.Conv2D(filters, stage.kernel_size, strides=stage.strides, padding=stage.padding,
                               use_bias=False, kernel_initializer="zeros", trainable=False,
                               name=layer_name(n, "conv"))


def patch_kernel(kernel_size, in_channels):
    """Returns the identity kernel of a patch-extraction convolution.

    Output channel `(i * kw + j) * in_channels + c` of the convolution is
    pixel `(i, j)`, channel `c` of the window: the patch flattened in
    row-major order.

    Args:
        kernel_size: `(kh, kw)`.
        in_channels: int.

    Returns:
        A float32 array `[kh, kw, in_channels, kh * kw * in_channels]`.

    Example:

    >>> patch_kernel((2, 2), 3).shape
    (2, 2, 3, 12)
    """
    kh, kw = kernel_size
    size = kh * kw * int(in_channels)
    return np.eye(size, dtype="float32").reshape(kh, kw, int(in_channels), size)


def stage_input_pool(stage, n):
    """Returns stage `n`'s input average pooling (`Stage(input_pool=...)`), or None.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> stage_input_pool(Stage(8, 1, input_pool=4), 2).name
    'stage2_pool'
    """
    if stage.input_pool is None:
        return None
    return keras.layers.AveragePooling2D(stage.input_pool, strides=stage.input_pool_strides,
                                         name=layer_name(n, "pool"))


def stage_readout(stage, n, num_classes, seed=0, end_to_end=False):
    """Returns stage `n`'s readout layers, ending with the dense logits.

    `stage.readout` picks them: `"flatten"` (flatten + dense),
    `"global_avg"` (global average pooling + dense) or `"pooled"` (average
    pooling -> BatchNorm unless `batchnorm=False` -> 1x1 bottleneck
    convolution -> optional hidden 3x3 convolution + ReLU -> flatten -> dense).
    A `Stage(gate=C)`'s readout begins with its `CodeGate` (the code and C
    gated channels; in the end-to-end twin, which has no code, a linear 1x1
    convolution of C).

    Args:
        stage: the `Stage`.
        n: 1-based stage index (names the layers `stage{n}_readout*`).
        num_classes: int, the number of logits.
        seed: int; the initialisers' seeds are derived from it and `n`.
        end_to_end: the layers of the end-to-end twin.

    Returns:
        A list of layers.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> [layer.name for layer in stage_readout(Stage(8, 3), 2, 10)]
    ['stage2_readout_flatten', 'stage2_readout']
    """
    layers = []
    if stage.gate is not None:
        initializer = keras.initializers.GlorotUniform(seed=seed * 1000 + n + 800)
        name = layer_name(n, "readout_gate")
        layers.append(keras.layers.Conv2D(stage.gate, 1, kernel_initializer=initializer, name=name) if end_to_end
                      else CodeGate(stage.gate, stage.clusters, kernel_initializer=initializer, name=name))
    if stage.readout == "pooled":
        layers.append(keras.layers.AveragePooling2D(stage.pool_size, strides=stage.pool_strides,
                                                    name=layer_name(n, "readout_avgpool")))
        if stage.batchnorm:
            # Momentum 0.9, not Keras' 0.99: a stage may train only a few hundred steps, and with 0.99 the
            # moving statistics inference uses would still hold ~10 % of their initial 0/1 after 237 steps;
            # on a sparse one-hot code (feature variances << 1) that put inference at chance while training
            # accuracy was 0.75 (CIFAR-10 ablation, q = 1 row).
            layers.append(keras.layers.BatchNormalization(momentum=0.9, name=layer_name(n, "readout_bn")))
        layers += [
            keras.layers.Conv2D(stage.bottleneck, 1, kernel_initializer=keras.initializers.HeUniform(
                seed=seed * 1000 + n + 600), name=layer_name(n, "readout_bottleneck")),
        ]
        if stage.hidden is not None:
            layers.append(keras.layers.Conv2D(
                stage.hidden, 3, padding="same", activation="relu",
                kernel_initializer=keras.initializers.HeUniform(seed=seed * 1000 + n + 700),
                name=layer_name(n, "readout_hidden")))
    if stage.readout == "global_avg":
        layers.append(keras.layers.GlobalAveragePooling2D(name=layer_name(n, "readout_pool")))
    else:
        layers.append(keras.layers.Flatten(name=layer_name(n, "readout_flatten")))
    layers.append(keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 1000 + n + 500),
        name=layer_name(n, "readout"),
    ))
    return layers


def stage_assignment(stage, n):
    """Returns stage `n`'s `ClusterAssignment` layer (centroids not set yet).

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> stage_assignment(Stage(8, 3, clusters=4), 1).name
    'stage1_assign'
    """
    return ClusterAssignment(
        stage.clusters, assignment=stage.assignment, temperature=stage.temperature, q=stage.q,
        whiten=stage.whiten is not None, keep_input=stage.gate is not None, name=layer_name(n, "assign"),
    )
