"""The end-to-end baseline: the same network as a grown one, trained by SGD.

A grown network is `conv_1 -> assign_1 -> conv_2 -> ... -> conv_L -> readout`.
Its baseline drops the cluster assignments and trains
`conv_1 -> conv_2 -> ... -> conv_L -> readout` (same kernels, strides,
widths, padding, ReLU and readout) end to end, all layers at once.
"""

import keras

from layerwise_keras.trainer import Stage, stage_conv, stage_readout


def end_to_end_model(stages, input_shape, num_classes, seed=0, name="end_to_end"):
    """Builds the stages' convolutions and last readout as one plain CNN.

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
    """
    stages = [s if isinstance(s, Stage) else Stage.from_config(s) for s in stages]
    if not stages:
        raise ValueError("end_to_end_model: at least one Stage is required.")
    model = keras.Sequential([keras.Input(tuple(input_shape))], name=name)
    for n, stage in enumerate(stages, start=1):
        model.add(stage_conv(stage, n, seed))
    for layer in stage_readout(stages[-1], len(stages), num_classes, seed):
        model.add(layer)
    return model
