"""Reading a grown model: the per-stage cluster-id maps of images.
"""

import keras
import numpy as np

from layerwise_keras.datasets.batches import image_batches
from layerwise_keras.datasets.checks import check_images
from layerwise_keras.growth.names import clustered_stages, layer_name


def assignments(model, images, batch_size=256):
    """Returns the per-stage cluster-id maps of a grown model.

    Works on the grown `Sequential` (with `ClusterAssignment` layers) and on
    its portable form (`layerwise_keras.export.to_portable_model`, or its
    `.keras` file loaded with plain Keras), where each assignment is a frozen
    `Dense` layer `stage{i}_assign` of nearest-centroid scores.

    Args:
        model: a model grown by `LayerwiseTrainer`, or its portable form.
        images: float array `[n, H, W, C]`.
        batch_size: images per forward pass.

    Returns:
        A list with one int32 array `[n, h_i, w_i]` per clustered stage, in
        stage order: the id of the nearest centroid at every position.

    Example:

    `model`: a model grown on 27x27 images (`x`) whose stages 1 and 2 are
    clustered (9x9 and 3x3 positions).

    >>> ids = assignments(model, x[:8])
    >>> [a.shape for a in ids], ids[0].dtype
    ([(8, 9, 9), (8, 3, 3)], dtype('int32'))
    """
    images = check_images(images)
    names = [layer_name(n, "assign") for n in clustered_stages(model)]
    if not names:
        raise ValueError(f"assignments: model '{model.name}' has no stage*_assign layer (grow it first).")
    outputs = [[] for _ in names]
    if isinstance(model, keras.Sequential):
        for batch in image_batches(images, batch_size):
            x, k = batch, 0
            for layer in model.layers:
                if k == len(names):
                    break
                if layer.name == names[k]:
                    outputs[k].append(keras.ops.convert_to_numpy(keras.ops.argmax(layer.scores(x), axis=-1)))
                    k += 1
                x = layer(x, training=False)
    else:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        probe = keras.Model(inputs, [model.get_layer(n).output for n in names])
        for batch in image_batches(images, batch_size):
            scores_list = probe(batch, training=False)
            if not isinstance(scores_list, (list, tuple)):
                scores_list = [scores_list]
            for k, scores in enumerate(scores_list):
                outputs[k].append(keras.ops.convert_to_numpy(keras.ops.argmax(scores, axis=-1)))
    return [np.concatenate(o).astype("int32") for o in outputs]
