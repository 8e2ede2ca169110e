"""Receptive fields, per-position embeddings and pixel patches of a grown model.

Every position of stage i's map (the output of `stage{i}_conv`) looks at a
rectangle of input pixels, its receptive field, set by the kernels, strides
and padding of the convolutions of stages 1..i (a `ClusterAssignment` acts
per position and does not change it). This module computes those fields,
cuts the matching pixel patches out of real images, and streams each
stage's embeddings together with their nearest-centroid scores, for the
grown `keras.Sequential` (`ClusterAssignment.scores`) and for its portable
form (the outputs of the frozen `Dense` layer `stage{i}_assign`) alike.
Backend-agnostic (NumPy and Keras only); `layerwise_keras.monitoring.plots` and
`layerwise_keras.monitoring.tensorboard` draw with it.
"""

import dataclasses
import math

import keras
import numpy as np

from layerwise_keras.datasets.batches import image_batches
from layerwise_keras.growth.names import clustered_stages, stage_layer


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Where the positions of one stage's map sit in the input image.

    Position `(r, c)` of the map covers input rows
    `start[0] + r * jump[0]` to `start[0] + r * jump[0] + size[0] - 1` and the
    matching columns. `start` may be negative with `"same"` padding (the
    field then overlaps the zero padding).

    Attributes:
        size: `(height, width)` of the field, in pixels.
        jump: `(rows, cols)` in pixels between neighbouring positions.
        start: `(row, col)` of the top-left pixel of position `(0, 0)`.
        grid: `(height, width)` of the stage's map.
        image: `(height, width)` of the input images.
    """

    size: tuple
    jump: tuple
    start: tuple
    grid: tuple
    image: tuple




def receptive_field(model, stage):
    """Returns the receptive field of the positions of stage `stage`'s map.

    Composes the `stage{1..stage}_conv` layers' kernel sizes, strides and
    padding (`"valid"` or `"same"`, as Keras pads: the smaller half first),
    and those of the `stage{n}_pool` input poolings where a stage has one
    (and of a handed-on bottleneck's `stage{n}_readout_avgpool`).

    Args:
        model: a model grown by `LayerwiseTrainer` (or its portable form, or
            any model with `Conv2D` layers named `stage{i}_conv`) with a known
            input image size.
        stage: 1-based stage index.

    Returns:
        A `ReceptiveField`.

    Example:

    `model`: a model grown on 27x27 images by 3x3 stride-3 stages.

    >>> field = receptive_field(model, 2)
    >>> field.size, field.jump, field.grid
    ((9, 9), (9, 9), (3, 3))
    """
    shape = tuple(model.input_shape)
    if len(shape) != 4 or None in shape[1:3]:
        raise ValueError(f"receptive_field: needs a fixed image input (batch, H, W, C), got {shape}.")
    size, jump, start = [1, 1], [1, 1], [0, 0]
    spatial = list(shape[1:3])
    image = tuple(spatial)
    for n in range(1, int(stage) + 1):
        conv = stage_layer(model, n, "conv", required=False)
        if conv is None:
            raise ValueError(f"receptive_field: model '{model.name}' has no layer stage{n}_conv.")
        pool = stage_layer(model, n, "pool", required=False)
        # What stage n - 1 handed on: its pooled bottleneck (Stage(handoff="bottleneck")) pools too.
        handoff = stage_layer(model, n - 1, "readout_avgpool", required=False) if n > 1 else None
        for layer in [l for l in (handoff, pool) if l is not None] + [conv]:
            config = layer.get_config()
            kernel = config["kernel_size"] if layer is conv else config["pool_size"]
            strides = config["strides"]
            if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
                raise ValueError(f"receptive_field: {layer.name} is dilated; only dilation 1 is supported.")
            for axis in range(2):
                k, s, size_in = kernel[axis], strides[axis], spatial[axis]
                if config["padding"] == "same":
                    out = math.ceil(size_in / s)
                    pad_before = max((out - 1) * s + k - size_in, 0) // 2
                else:
                    out = (size_in - k) // s + 1
                    pad_before = 0
                start[axis] -= pad_before * jump[axis]
                size[axis] += (k - 1) * jump[axis]
                jump[axis] *= s
                spatial[axis] = out
    return ReceptiveField(tuple(size), tuple(jump), tuple(start), tuple(spatial), image)


def stage_patches(images, field, positions=None):
    """Cuts the receptive-field pixel patches of a stage's positions out of images.

    Pixels outside the image (with `"same"` padding) are 0, as the
    convolution sees them.

    Args:
        images: float array `[n, H, W, C]`.
        field: the stage's `ReceptiveField`.
        positions: optional int array `[m, 3]` of `(image, row, col)`
            (indices into `images` and the stage's map). None: every position.

    Returns:
        Float32 array `[m, fh, fw, C]` for `positions`, or
        `[n, gh, gw, fh, fw, C]` (every position) when `positions` is None.

    Example:

    `x`: 27x27x1 images; `model`: a model grown on them by 3x3 stride-3
    stages (stage 1: a 9x9 map of 3x3 patches).

    >>> stage_patches(x[:2], receptive_field(model, 1)).shape
    (2, 9, 9, 3, 3, 1)
    >>> stage_patches(x[:2], receptive_field(model, 1), positions=[[0, 0, 0], [1, 8, 8]]).shape
    (2, 3, 3, 1)
    """
    images = np.asarray(images, dtype="float32")
    (fh, fw), (jh, jw), (sh, sw), (gh, gw) = field.size, field.jump, field.start, field.grid
    h, w = images.shape[1:3]
    top, left = max(0, -sh), max(0, -sw)
    bottom = max(0, sh + (gh - 1) * jh + fh - h)
    right = max(0, sw + (gw - 1) * jw + fw - w)
    padded = np.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh, ow = sh + top, sw + left
    if positions is None:
        windows = np.lib.stride_tricks.sliding_window_view(padded, (fh, fw), axis=(1, 2))
        windows = windows[:, oh : oh + (gh - 1) * jh + 1 : jh, ow : ow + (gw - 1) * jw + 1 : jw]
        return np.ascontiguousarray(np.moveaxis(windows, 3, 5))  # [n, gh, gw, C, fh, fw] -> [..., fh, fw, C]
    positions = np.asarray(positions, dtype="int64").reshape(-1, 3)
    out = np.empty((len(positions), fh, fw, images.shape[-1]), dtype="float32")
    for m, (i, r, c) in enumerate(positions):
        y, x = oh + r * jh, ow + c * jw
        out[m] = padded[i, y : y + fh, x : x + fw]
    return out


def iter_stage_outputs(model, images, stage, batch_size=256):
    """Streams a clustered stage's embeddings, as k-means clustered them, and nearest-centroid scores.

    The embeddings are the outputs of `stage{stage}_conv`, ZCA-whitened when
    the stage whitens (the vectors its centroids live among); the scores are
    `e . 2c_k - ||c_k||^2` for every centroid `c_k` (higher = nearer;
    `||e - c_k||^2 = ||e||^2 - score_k`), from `ClusterAssignment.scores` on
    the grown model and from the `stage{stage}_assign` `Dense` layer on the
    portable one (after its `stage{stage}_whiten` layer, if any).

    Args:
        model: a model grown by `LayerwiseTrainer`, or its portable form.
        images: float array `[n, H, W, C]` or a batched `tf.data.Dataset` of
            images or `(images, labels)`.
        stage: 1-based index of a clustered stage.
        batch_size: images per forward pass (arrays only).

    Returns:
        A generator of `(images, embeddings, scores)` NumPy batches:
        `[b, H, W, C]`, `[b, h, w, dim]`, `[b, h, w, K]`.

    Example:

    `x`: 128 images 27x27x1; `model`: a model grown on them whose stage 1
    (8 filters, K=8) maps them to 9x9 positions.

    >>> for images, emb, scores in iter_stage_outputs(model, x, stage=1, batch_size=64):
    ...     ids = scores.argmax(-1)
    ...     print(images.shape, emb.shape, scores.shape, ids.shape)
    (64, 27, 27, 1) (64, 9, 9, 8) (64, 9, 9, 8) (64, 9, 9)
    (64, 27, 27, 1) (64, 9, 9, 8) (64, 9, 9, 8) (64, 9, 9)
    """
    conv = stage_layer(model, stage, "conv", required=False)
    assign = stage_layer(model, stage, "assign", required=False)
    if conv is None or assign is None:
        raise ValueError(
            f"model '{model.name}' has no clustered stage {stage} (stages with clusters: {clustered_stages(model)})."
        )
    if isinstance(model, keras.Sequential):
        def forward(batch):
            x = batch
            for layer in model.layers:
                x = layer(x, training=False)
                if layer is conv:
                    z = assign.whitened(x)
                    return z, assign.whitened_scores(z)
            raise ValueError(f"stage{stage}_conv is not on the model's path.")
    else:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        whiten = stage_layer(model, stage, "whiten", required=False)
        probe = keras.Model(inputs, [(whiten or conv).output, assign.output])

        def forward(batch):
            return probe(batch, training=False)

    for batch in image_batches(images, batch_size):
        emb, scores = forward(batch)
        yield batch, keras.ops.convert_to_numpy(emb), keras.ops.convert_to_numpy(scores)


def centroid_patches(model, images, stage=1, batch_size=256):
    """Shows each centroid as the mean input patch of the positions assigned to it.

    A stage's centroids live in its embedding space; their picture in pixel
    space is the mean receptive-field patch over the positions (of `images`)
    whose nearest centroid they are.

    Args:
        model: a model grown by `LayerwiseTrainer`, or its portable form.
        images: float array `[n, H, W, C]` or a batched `tf.data.Dataset` of
            images or `(images, labels)` (streamed batch by batch).
        stage: 1-based index of a clustered stage.
        batch_size: images per forward pass (arrays only).

    Returns:
        `(means, counts)`: float32 `[K, fh, fw, C]` mean patches (0 for a
        cluster no position is assigned to) and int64 `[K]` positions per
        cluster.

    Example:

    `x`: 128 images 27x27x1; `model`: a model grown on them whose stage 1
    clusters 3x3 patches into K=8 clusters (9x9 positions per image).

    >>> means, counts = centroid_patches(model, x, stage=1)
    >>> means.shape, int(counts.sum()) == 128 * 9 * 9
    ((8, 3, 3, 1), True)
    """
    field = receptive_field(model, stage)
    sums = counts = None
    for batch, _, scores in iter_stage_outputs(model, images, stage, batch_size):
        k = scores.shape[-1]
        if sums is None:
            sums = np.zeros((k, int(np.prod(field.size)) * batch.shape[-1]), dtype="float64")
            counts = np.zeros(k, dtype="int64")
        ids = scores.argmax(-1).reshape(-1)
        patches = stage_patches(batch, field).reshape(len(ids), -1)
        onehot = np.eye(k, dtype="float64")[ids]
        sums += onehot.T @ patches
        counts += np.bincount(ids, minlength=k)
    if sums is None:
        raise ValueError("centroid_patches: no images.")
    means = sums / np.maximum(counts, 1)[:, None]
    return means.reshape(len(counts), *field.size, -1).astype("float32"), counts


def tile_patches(patches, scale=1, pad=1, columns=None, value_range=None):
    """Tiles patches into one uint8 image, row-major, with grey padding.

    Args:
        patches: float array `[m, h, w, C]`.
        scale: int >= 1, nearest-neighbour upscaling of each patch.
        pad: int >= 0, pixels of mid-grey (128) padding around and between
            tiles.
        columns: tiles per row (default `ceil(sqrt(m))`).
        value_range: `(lo, hi)` mapped to 0..255 (default: the patches'
            min and max together).

    Returns:
        A uint8 array `[rows * (h * scale + pad) + pad,
        columns * (w * scale + pad) + pad, C]`, `rows = ceil(m / columns)`.

    Example:

    >>> tile_patches(np.zeros((6, 3, 3, 1)), scale=4, pad=2).shape
    (30, 44, 1)
    """
    patches = np.asarray(patches, dtype="float32")
    m, h, w, c = patches.shape
    columns = int(columns or max(1, math.ceil(math.sqrt(m))))
    rows = max(1, math.ceil(m / columns))
    lo, hi = value_range if value_range is not None else (float(patches.min()), float(patches.max()))
    factor = 255.0 / (hi - lo) if hi > lo else 0.0
    th, tw = h * scale, w * scale
    grid = np.full((rows * (th + pad) + pad, columns * (tw + pad) + pad, c), 128, dtype="uint8")
    for i in range(m):
        r, col = divmod(i, columns)
        tile = np.clip(np.rint((patches[i] - lo) * factor), 0, 255).astype("uint8")
        tile = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
        y, x = pad + r * (th + pad), pad + col * (tw + pad)
        grid[y : y + th, x : x + tw] = tile
    return grid
