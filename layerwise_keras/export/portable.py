"""Portable forms of a grown model: built-in Keras layers and ops only.

* `to_portable_model(model)`: the same network as a functional Keras model.
  Each `ClusterAssignment` becomes a frozen `Dense` layer named
  `stage{i}_assign` whose outputs are the nearest-centroid scores
  `e . 2c_k - ||c_k||^2`, followed by the assignment's code function
  (`growth.codes`) applied to them as ops; `growth.kinds.KINDS` lists the
  LiteRT and ONNX ops each kind becomes. A whitening stage's ZCA comes first, as a frozen `Dense`
  layer `stage{i}_whiten` (kernel `W`, bias `-mean @ W`). An assignment that
  keeps its input (`Stage(gate=...)`) is followed by a `Concatenate` of the
  code and that input, and its `CodeGate` becomes two `Dense` layers
  (`{name}_gains`: the code to its clusters' gains, `{name}_patch`: the
  patch filters), a product and a concatenation with the code. Its `.keras`
  file loads with plain `keras.saving.load_model`.
* `serving_model(model)`: the same, with an argmax the LiteRT and ONNX
  converters accept.
"""

import keras
from keras import ops

from layerwise_keras import compat
from layerwise_keras.growth.kinds import code_function
from layerwise_keras.growth.names import layer_name, parse_layer_name
from layerwise_keras.growth.layers import ClusterAssignment, CodeGate


def _whiten_name(assign_name):
    parsed = parse_layer_name(assign_name)
    return layer_name(parsed[0], "whiten") if parsed else f"{assign_name}_whiten"


def to_portable_model(model):
    """Rebuilds a grown model from built-in Keras layers and ops only.

    Args:
        model: a `keras.Sequential` grown by `LayerwiseTrainer`.

    Returns:
        A functional `keras.Model` computing the same function, whose saved
        `.keras` file loads without `layerwise_keras` installed.

    Example:

    `model`: a grown model of 27x27x1 images (`x`), stages 1 and 2
    clustered.

    >>> import os
    >>> import numpy as np
    >>> portable = to_portable_model(model)
    >>> type(portable).__name__, [layer.name for layer in portable.layers][:4]
    ('Functional', ['images', 'stage1_conv', 'stage1_assign', 'stage2_conv'])
    >>> portable.save(os.path.join(tmp_dir, "model.keras"))
    >>> bool(np.allclose(portable.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-5))
    True
    """
    if not isinstance(model, keras.Sequential):
        raise TypeError(f"to_portable_model expects a keras.Sequential, got {type(model).__name__}.")
    inputs = keras.Input(model.input_shape[1:], name="images")
    x = inputs
    for layer in model.layers:
        if isinstance(layer, ClusterAssignment):
            kept = x
            if layer.whiten:
                matrix = ops.convert_to_numpy(layer.whiten_matrix)
                whiten = keras.layers.Dense(matrix.shape[1], trainable=False,
                                            name=_whiten_name(layer.name))
                x = whiten(x)
                whiten.set_weights([matrix, ops.convert_to_numpy(layer.whiten_bias())])
            centroids = ops.convert_to_tensor(layer.centroids)
            kernel = ops.convert_to_numpy(ops.transpose(centroids) * 2.0)
            bias = ops.convert_to_numpy(-ops.sum(ops.square(centroids), axis=-1))
            dense = keras.layers.Dense(layer.n_clusters, trainable=False, name=layer.name)
            scores = dense(x)
            dense.set_weights([kernel, bias])
            x = code_function(layer.assignment)(x, scores, layer.n_clusters, layer.temperature, layer.q)
            if layer.keep_input:
                x = keras.layers.Concatenate(name=f"{layer.name}_keep_input")([x, kept])
        elif isinstance(layer, CodeGate):
            x = _portable_gate(layer, x)
        else:
            clone = layer.__class__.from_config(layer.get_config())
            x = clone(x)
            clone.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=f"{model.name}_portable")


def _portable_gate(gate, x):
    """A `CodeGate` as built-in layers: `[m, (m @ A) * (x @ V)]` with two `Dense` layers, a product, a concatenation."""
    code, patch = x[..., : gate.n_clusters], x[..., gate.n_clusters :]
    gains = keras.layers.Dense(gate.units, use_bias=False, trainable=gate.trainable, name=f"{gate.name}_gains")
    filters = keras.layers.Dense(gate.units, use_bias=False, trainable=gate.trainable, name=f"{gate.name}_patch")
    scale, linear = gains(code), filters(patch)
    gains.set_weights([ops.convert_to_numpy(gate.gains)])
    filters.set_weights([ops.convert_to_numpy(gate.kernel)])
    gated = keras.layers.Multiply(name=f"{gate.name}_product")([scale, linear])
    return keras.layers.Concatenate(name=gate.name)([code, gated])


class _ConverterArgmax(keras.layers.Layer):
    """`tf.argmax` over one axis, for converters (used in memory only, never saved).

    `keras.ops.argmax` of a float tensor (TensorFlow backend) first maps -0.0
    to the smallest negative float through a sign-bit test written with
    `tf.bitcast` and `tf.bitwise.bitwise_and`; neither the LiteRT builtin op
    set nor tf2onnx has those ops. Plain `tf.argmax` gives the same index
    (the first maximum) except when a -0.0 and a +0.0 tie for the maximum.
    """

    def __init__(self, axis=-1, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.keepdims = keepdims

    def call(self, x):
        import tensorflow as tf

        index = tf.argmax(x, axis=self.axis, output_type=tf.int32)
        return tf.expand_dims(index, self.axis) if self.keepdims else index

    def compute_output_spec(self, x):
        shape = list(x.shape)
        if self.keepdims:
            shape[self.axis] = 1
        else:
            del shape[self.axis]
        return keras.KerasTensor(tuple(shape), dtype="int32")


def _converter_op(operation):
    if compat.is_argmax_op(operation):
        return _ConverterArgmax(operation.axis, operation.keepdims, name=f"converter_{operation.name}")
    return operation


def serving_model(model):
    """Returns the model as the LiteRT and ONNX converters need it.

    A grown `keras.Sequential` (with `ClusterAssignment` layers) is first
    rebuilt by `to_portable_model`. In a functional model every
    `keras.ops.argmax` node is replaced by a plain `tf.argmax` (see
    `_ConverterArgmax`); all layers and weights are shared with `model`, not
    copied. The result computes the same logits and is meant for conversion
    only (it is not saved as a `.keras` file).

    Args:
        model: a Keras model taking float32 images: grown, portable (e.g.
            loaded from a run's `model.keras`) or any other.

    Returns:
        A `keras.Model`.

    Example:

    `run_dir`: the output folder of a run (`runs.run`), whose `model.keras`
    is the portable model.

    >>> import os
    >>> portable = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    >>> converter_ready = serving_model(portable)
    >>> converter_ready.output_shape == portable.output_shape
    True
    """
    if isinstance(model, keras.Sequential):
        if not any(isinstance(layer, (ClusterAssignment, CodeGate)) for layer in model.layers):
            return model  # no graph-level argmax to replace
        model = to_portable_model(model)
    try:
        return keras.models.clone_model(model, clone_function=_converter_op)
    except ValueError:  # a subclassed model: no graph to rewrite, convert it as it is
        return model
