"""Export a grown model as artifacts that need no `layerwise_keras` to run.

* `to_portable_model(model)`: the same network as a functional Keras model
  built from built-in layers and `keras.ops` only. Each `ClusterAssignment`
  becomes a frozen `Dense` layer named `stage{i}_assign` whose outputs are
  the nearest-centroid scores `e . 2c_k - ||c_k||^2`, followed by the
  assignment written with ops (`argmax` + `one_hot` for `"hard"`). Its
  `.keras` file loads with plain `keras.saving.load_model`.
* `export_saved_model(model, path)`: a TensorFlow SavedModel whose
  `serving_default` signature takes float32 images and returns logits
  (TensorFlow-only: this module is the place for it).
* `save_artifacts(model, output_dir)`: both, in the layout the CLI writes.
* `export_litert(model_or_saved_model_path, path, ...)`: a LiteRT `.tflite`
  (float, or int8 with a representative dataset); `export_onnx(model,
  path)`: an `.onnx` file; both from `serving_model(model)`, whose argmax
  the converters accept.
* `predict_litert`, `predict_onnx`, `predict_saved_model`: run an artifact
  with its own runtime (`ai_edge_litert`, onnxruntime, TensorFlow);
  `compare_predictions` scores it against the Keras logits.
* `export_run(run_dir, fmt, ...)`: what `layerwise-keras export` does with a
  run folder.

Nothing is overwritten unless `overwrite=True`.
"""

import os
import shutil

import keras
from keras import ops

from layerwise_keras.layers import ClusterAssignment, assign_from_scores

SAVED_MODEL_DIR = os.path.join("saved_model", "1")
KERAS_FILE = "model.keras"


def to_portable_model(model):
    """Rebuilds a grown model from built-in Keras layers and ops only.

    Args:
        model: a `keras.Sequential` grown by `LayerwiseTrainer`.

    Returns:
        A functional `keras.Model` computing the same function, whose saved
        `.keras` file loads without `layerwise_keras` installed.

    Example:

    >>> portable = to_portable_model(model)
    >>> portable.save("saved_models/digits/model.keras")
    """
    if not isinstance(model, keras.Sequential):
        raise TypeError(f"to_portable_model expects a keras.Sequential, got {type(model).__name__}.")
    inputs = keras.Input(model.input_shape[1:], name="images")
    x = inputs
    for layer in model.layers:
        if isinstance(layer, ClusterAssignment):
            centroids = ops.convert_to_tensor(layer.centroids)
            kernel = ops.convert_to_numpy(ops.transpose(centroids) * 2.0)
            bias = ops.convert_to_numpy(-ops.sum(ops.square(centroids), axis=-1))
            dense = keras.layers.Dense(layer.n_clusters, trainable=False, name=layer.name)
            scores = dense(x)
            dense.set_weights([kernel, bias])
            x = assign_from_scores(x, scores, layer.assignment, layer.n_clusters, layer.temperature)
        else:
            clone = layer.__class__.from_config(layer.get_config())
            x = clone(x)
            clone.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=f"{model.name}_portable")


def load_keras_file(path):
    """Loads a `.keras` file, turning a truncated or corrupt file into a clear error.

    Args:
        path: the `.keras` file.

    Returns:
        The loaded Keras model.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not a readable Keras archive (truncated,
            corrupt, or not a `.keras` file); the message names the path.

    Example:

    >>> model = load_keras_file("saved_models/digits/model.keras")
    """
    import zipfile

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a readable .keras archive (truncated or corrupt file?); "
            "re-create it, e.g. with `layerwise-keras train --overwrite`."
        )
    try:
        return keras.saving.load_model(path)
    except (zipfile.BadZipFile, EOFError, KeyError, OSError, ValueError) as err:
        raise ValueError(f"{path} could not be loaded as a Keras model (truncated or corrupt file?): {err}") from err


def _check_target(path, overwrite):
    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(
                f"{path} already exists; refusing to overwrite it (pass overwrite=True / --overwrite)."
            )
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def export_saved_model(model, path, overwrite=False):
    """Exports a TensorFlow SavedModel with a `serving_default` signature.

    Args:
        model: a built Keras model taking float32 images.
        path: the SavedModel directory to create.
        overwrite: replace an existing `path` instead of raising.

    Returns:
        `path`.

    Example:

    >>> export_saved_model(model, "saved_models/digits/saved_model/1")
    """
    _check_target(path, overwrite)
    model.export(path, format="tf_saved_model", verbose=False)
    return path


def save_artifacts(model, output_dir, overwrite=False):
    """Writes the portable `.keras` file and the SavedModel into `output_dir`.

    Args:
        model: a grown `keras.Sequential`.
        output_dir: folder to write `model.keras` and `saved_model/1/` into.
        overwrite: replace existing artifacts instead of raising.

    Returns:
        A dict with the paths written (`keras`, `saved_model`).

    Example:

    >>> save_artifacts(model, "saved_models/digits")
    """
    os.makedirs(output_dir, exist_ok=True)
    keras_path = os.path.join(output_dir, KERAS_FILE)
    saved_model_path = os.path.join(output_dir, SAVED_MODEL_DIR)
    for path in (keras_path, saved_model_path):
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(
                f"{path} already exists; refusing to overwrite it (pass overwrite=True / --overwrite)."
            )
    portable = to_portable_model(model)
    _check_target(keras_path, overwrite)
    portable.save(keras_path)
    export_saved_model(model, saved_model_path, overwrite=overwrite)
    return {"keras": keras_path, "saved_model": saved_model_path}


# ---------------------------------------------------------------------------
# Serving artifacts: LiteRT (.tflite) and ONNX, and runners for every format
# ---------------------------------------------------------------------------

LITERT_FILE = "model.tflite"
LITERT_INT8_FILE = "model_int8.tflite"
ONNX_FILE = "model.onnx"
SAVED_MODEL_ROOT = "saved_model"
CONFIG_FILE = "config.json"
FORMATS = ("tf_saved_model", "litert", "onnx")

# Ops that `export_litert(int8=True)` quantises to int8 (unless they compute
# cluster-assignment scores); every other op keeps float32 kernels.
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Output tensors of the nearest-centroid score layers (`stage{i}_assign`)
# carry this in their names; they stay float32 under `int8=True`.
ASSIGN_MARKER = "_assign"


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
    # `keras.ops.argmax` nodes of a functional model are `Operation`s named
    # "Argmax" (keras.src.ops.numpy.Argmax, not a public class).
    if type(operation).__name__ == "Argmax" and not isinstance(operation, keras.layers.Layer):
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

    >>> portable = keras.saving.load_model("saved_models/digits/model.keras")
    >>> converter_ready = serving_model(portable)
    """
    if isinstance(model, keras.Sequential):
        if not any(isinstance(layer, ClusterAssignment) for layer in model.layers):
            return model  # no graph-level argmax to replace
        model = to_portable_model(model)
    try:
        return keras.models.clone_model(model, clone_function=_converter_op)
    except ValueError:  # a subclassed model: no graph to rewrite, convert it as it is
        return model


def _check_can_write(path, overwrite):
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists; refusing to overwrite it (pass overwrite=True / --overwrite)."
        )


def _parent_dir(path):
    """Creates and returns the folder of `path` (intermediate files go there, not to /tmp)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return parent


def _write_bytes(path, content, overwrite):
    _check_target(path, overwrite)
    _parent_dir(path)
    with open(path, "wb") as f:
        f.write(content)
    return path


def _calibration_dataset(representative_data):
    import numpy as np

    images = np.asarray(representative_data, dtype="float32")
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            "representative_data must be a non-empty float array of images [n, height, width, channels], "
            f"got shape {images.shape}."
        )
    if not np.isfinite(images).all():
        raise ValueError("representative_data contains NaN or Inf values.")

    def generate():
        for i in range(len(images)):
            yield [images[i : i + 1]]

    return generate


def describe_litert(model_content_or_path):
    """Lists the ops of a `.tflite` model, in execution order.

    Args:
        model_content_or_path: the model's bytes, or a `.tflite` file path.

    Returns:
        A list of dicts with `op` (the builtin name, e.g. `"CONV_2D"`),
        `output` (its first output tensor's name) and `dtype` (that tensor's
        type name, e.g. `"INT8"`, `"FLOAT32"`).

    Example:

    >>> [d["op"] for d in describe_litert("saved_models/digits/model.tflite")][:2]
    ['CONV_2D', 'SHAPE']
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    content = model_content_or_path
    if isinstance(content, (str, os.PathLike)):
        with open(content, "rb") as f:
            content = f.read()
    tflite = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = tflite.subgraphs[0]
    result = []
    for op in graph.operators:
        code = flatbuffer_utils.get_builtin_code_from_operator_code(tflite.operatorCodes[op.opcodeIndex])
        tensor = graph.tensors[op.outputs[0]]
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        result.append({"op": op_names.get(code, str(code)), "output": name, "dtype": type_names[tensor.type]})
    return result


def _int8_denylist(calibrated_model):
    """Output tensors of the ops that keep float32 kernels under `int8=True`."""
    return [
        d["output"]
        for d in describe_litert(calibrated_model)
        if d["op"] not in INT8_OPS or ASSIGN_MARKER in d["output"]
    ]


def _quantize_int8(converter, dataset):
    import warnings

    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    with warnings.catch_warnings():
        # The debugger builds a (never invoked) tf.lite.Interpreter for its
        # numeric-verify model, which warns that tf.lite.Interpreter is deprecated.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=_int8_denylist(debugger.calibrated_model)
        )
        return debugger.get_nondebug_quantized_model()


def export_litert(model_or_saved_model_path, path, representative_data=None, int8=False, overwrite=False):
    """Converts a model to a LiteRT (TensorFlow Lite) flatbuffer, `.tflite`.

    The conversion goes through a SavedModel: a Keras model is first
    exported (as `serving_model(model)`, to a temporary folder), then
    `tf.lite.TFLiteConverter.from_saved_model` converts it with the LiteRT
    builtin op set only (no TF Select ops), so the file runs with
    `ai_edge_litert.interpreter.Interpreter` (see `predict_litert`). Hard
    assignments become `ARG_MAX` + `ONE_HOT`, soft ones `SOFTMAX`, triangle
    ones `SQRT` + `MEAN` + `RELU`.

    With `int8=True` the post-training quantisation is calibrated on
    `representative_data`: convolutions and the readout (`CONV_2D`,
    `FULLY_CONNECTED`) get int8 weights and int8 activations; the
    nearest-centroid scores (`stage{i}_assign`) and the assignment ops keep
    float32 kernels, because int8 scores tie the argmax of nearby centroids
    (full-integer quantisation of everything drops top-1 agreement to ~10 %
    on a well-trained 3-stage model). Inputs and outputs stay float32.

    Args:
        model_or_saved_model_path: a Keras model (grown, portable or any
            other), or the path of a SavedModel folder to convert as it is
            (one with hard assignments raises `ValueError`: Keras' float
            argmax does not convert, pass the Keras model).
        path: the `.tflite` file to write.
        representative_data: float32 images `[n, height, width, channels]`
            for int8 calibration (a few hundred training images); only with
            `int8=True`.
        int8: quantise to int8 as described above.
        overwrite: replace an existing `path` instead of raising.

    Returns:
        `path`.

    Example:

    >>> export_litert(model, "saved_models/digits/model.tflite")
    >>> export_litert(model, "saved_models/digits/model_int8.tflite", x_train[:200], int8=True)
    """
    import tempfile

    import tensorflow as tf

    _check_can_write(path, overwrite)
    if int8 and representative_data is None:
        raise ValueError("export_litert(int8=True) needs representative_data (calibration images).")
    if representative_data is not None and not int8:
        raise ValueError("representative_data is only used with int8=True.")
    dataset = _calibration_dataset(representative_data) if int8 else None
    with tempfile.TemporaryDirectory(prefix=".litert_", dir=_parent_dir(path)) as tmp:
        if isinstance(model_or_saved_model_path, (str, os.PathLike)):
            saved_model_dir = os.fspath(model_or_saved_model_path)
            if not os.path.isfile(os.path.join(saved_model_dir, "saved_model.pb")):
                raise FileNotFoundError(f"{saved_model_dir} is not a SavedModel folder (no saved_model.pb).")
        else:
            saved_model_dir = os.path.join(tmp, "saved_model")
            serving_model(model_or_saved_model_path).export(saved_model_dir, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        try:
            content = _quantize_int8(converter, dataset) if int8 else converter.convert()
        except Exception as err:  # the converter's ConverterError is not a public class
            if "BitwiseAnd" in str(err) or "Bitcast" in str(err):
                raise ValueError(
                    f"{saved_model_dir} uses keras.ops.argmax's sign-bit test (tf.bitcast, BitwiseAnd), which "
                    "LiteRT's builtin ops lack: pass the Keras model instead (e.g. "
                    "keras.saving.load_model('RUN/model.keras')); export_litert then rewrites the argmax."
                ) from err
            raise
    return _write_bytes(path, content, overwrite)


def export_onnx(model, path, overwrite=False):
    """Exports a model to ONNX with Keras' exporter (`model.export(format="onnx")`).

    Keras 3 (TensorFlow backend) traces the model and converts it with
    tf2onnx (patched by Keras for NumPy 2). The model is exported as
    `serving_model(model)`, whose argmax tf2onnx can convert. The graph has
    one float32 input `[batch, height, width, channels]` (dynamic batch) and
    one output, the logits; run it with `predict_onnx` (onnxruntime).

    Args:
        model: a Keras model (grown, portable or any other).
        path: the `.onnx` file to write.
        overwrite: replace an existing `path` instead of raising.

    Returns:
        `path`.

    Example:

    >>> export_onnx(model, "saved_models/digits/model.onnx")
    """
    import tempfile
    import warnings

    import tensorflow as tf

    _check_can_write(path, overwrite)
    model = serving_model(model)
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise ValueError("export_onnx expects a built model with exactly one input (the images).")
    # An explicit signature: Keras' exporter refuses a model that was never called.
    signature = [tf.TensorSpec((None, *inputs[0].shape[1:]), tf.float32, name=inputs[0].name or "images")]
    with tempfile.TemporaryDirectory(prefix=".onnx_", dir=_parent_dir(path)) as tmp:
        tmp_path = os.path.join(tmp, "model.onnx")
        with warnings.catch_warnings():
            # Keras' NumPy-2 patch of tf2onnx probes `np.object`, which NumPy 2.4 warns about.
            warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
            model.export(tmp_path, format="onnx", input_signature=signature, verbose=False)
        with open(tmp_path, "rb") as f:
            content = f.read()
    return _write_bytes(path, content, overwrite)


def _as_images(images):
    import numpy as np

    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"images must be [batch, height, width, channels], got shape {images.shape}.")
    return images


def predict_litert(path, images):
    """Runs a `.tflite` model with the LiteRT interpreter (`ai_edge_litert`).

    Uses the model's (single) signature; int8 inputs/outputs, if the model
    has them, are quantised/dequantised with the tensors' scales.

    Args:
        path: a `.tflite` file.
        images: float32 array `[batch, height, width, channels]`.

    Returns:
        Float32 NumPy array of logits `[batch, classes]`.

    Example:

    >>> logits = predict_litert("saved_models/digits/model.tflite", x_test)
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    images = _as_images(images)
    interpreter = Interpreter(model_path=os.fspath(path))
    runner = interpreter.get_signature_runner()
    ((input_name, input_details),) = runner.get_input_details().items()
    if input_details["dtype"] != np.float32:
        scale, zero_point = input_details["quantization"]
        info = np.iinfo(input_details["dtype"])
        images = np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(input_details["dtype"])
    outputs = runner(**{input_name: images})
    ((output_name, logits),) = outputs.items()
    output_details = runner.get_output_details()[output_name]
    if output_details["dtype"] != np.float32:
        scale, zero_point = output_details["quantization"]
        logits = (logits.astype("float32") - zero_point) * scale
    return np.array(logits, dtype="float32")


def predict_onnx(path, images):
    """Runs an `.onnx` model with onnxruntime on the CPU.

    Args:
        path: an `.onnx` file.
        images: float32 array `[batch, height, width, channels]`.

    Returns:
        Float32 NumPy array of logits `[batch, classes]`.

    Example:

    >>> logits = predict_onnx("saved_models/digits/model.onnx", x_test)
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    return session.run(None, {model_input.name: _as_images(images)})[0]


def predict_saved_model(path, images):
    """Runs a SavedModel's `serving_default` signature (as TF Serving would).

    Args:
        path: a SavedModel folder (e.g. `saved_models/digits/saved_model/1`).
        images: float32 array `[batch, height, width, channels]`.

    Returns:
        Float32 NumPy array of logits `[batch, classes]`.

    Example:

    >>> logits = predict_saved_model("saved_models/digits/saved_model/1", x_test)
    """
    import tensorflow as tf

    serve = tf.saved_model.load(os.fspath(path)).signatures["serving_default"]
    (input_name,) = serve.structured_input_signature[1].keys()
    (logits,) = serve(**{input_name: tf.constant(_as_images(images))}).values()
    return logits.numpy()


def compare_predictions(expected, got):
    """Top-1 agreement and largest absolute logit difference of two predictions.

    Args:
        expected: reference logits `[batch, classes]` (the Keras model's).
        got: logits of an exported artifact, same shape.

    Returns:
        A dict with `top1_agreement` (fraction of rows with the same argmax)
        and `max_abs_logit_diff`.

    Example:

    >>> compare_predictions(model.predict(x), predict_onnx("model.onnx", x))
    {'top1_agreement': 1.0, 'max_abs_logit_diff': 2.4e-07}
    """
    import numpy as np

    expected, got = np.asarray(expected), np.asarray(got)
    if expected.shape != got.shape:
        raise ValueError(f"prediction shapes differ: {expected.shape} vs {got.shape}.")
    return {
        "top1_agreement": float((expected.argmax(-1) == got.argmax(-1)).mean()),
        "max_abs_logit_diff": float(np.abs(expected.astype("float64") - got).max()),
    }


def _next_version(root):
    versions = [int(n) for n in os.listdir(root) if n.isdigit()] if os.path.isdir(root) else []
    return max(versions, default=0) + 1


def artifact_path(run_dir, fmt, int8=False, version=None):
    """Where `export_run` writes a format's artifact inside a run folder.

    Args:
        run_dir: the run folder (`layerwise-keras train --output`).
        fmt: `"tf_saved_model"`, `"litert"` or `"onnx"`.
        int8: the int8 LiteRT file instead of the float one.
        version: SavedModel version number (default: one above the highest
            existing version, 1 if none).

    Returns:
        The path: `saved_model/<version>`, `model.tflite`,
        `model_int8.tflite` or `model.onnx` under `run_dir`.

    Example:

    >>> artifact_path("saved_models/digits", "litert", int8=True)
    'saved_models/digits/model_int8.tflite'
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}.")
    if fmt == "tf_saved_model":
        root = os.path.join(run_dir, SAVED_MODEL_ROOT)
        if version is None:
            version = _next_version(root)
        if int(version) != version or version < 1:
            raise ValueError(f"--version must be a positive integer, got {version!r}.")
        return os.path.join(root, str(int(version)))
    if fmt == "litert":
        return os.path.join(run_dir, LITERT_INT8_FILE if int8 else LITERT_FILE)
    return os.path.join(run_dir, ONNX_FILE)


def export_run(run_dir, fmt, int8=False, version=None, overwrite=False, calibration_samples=200, check=True):
    """Exports a run folder's `model.keras` to a serving format (`layerwise-keras export`).

    The model is loaded with plain `keras.saving.load_model`. For int8
    calibration and for the check, the run's splits are regenerated from its
    `config.json` (`pipeline.load_splits(config["dataset"], seed=config["seed"])`,
    deterministic): calibration uses the first `calibration_samples`
    training images, the check runs the artifact on the whole test split and
    compares it with the Keras model.

    Args:
        run_dir: folder with `model.keras` (and `config.json`).
        fmt: `"tf_saved_model"`, `"litert"` or `"onnx"`.
        int8: LiteRT only: write `model_int8.tflite`, quantised as in
            `export_litert(int8=True)`.
        version: tf_saved_model only: the version folder number.
        overwrite: replace an existing artifact instead of raising.
        calibration_samples: number of training images for int8 calibration.
        check: compare the artifact's test-split predictions with Keras'.

    Returns:
        A dict with `format`, `path` and, with `check`, `test_examples`,
        `top1_agreement`, `max_abs_logit_diff` and `test_accuracy` (the
        artifact's).

    Example:

    >>> export_run("saved_models/digits", "litert", int8=True)["top1_agreement"]
    1.0
    """
    import json

    import numpy as np

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}.")
    if int8 and fmt != "litert":
        raise ValueError("--int8 applies to --format litert only.")
    if version is not None and fmt != "tf_saved_model":
        raise ValueError("--version applies to --format tf_saved_model only.")
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run folder {run_dir} does not exist (expected the output of `layerwise-keras train`).")
    keras_path = os.path.join(run_dir, KERAS_FILE)
    if not os.path.isfile(keras_path):
        raise FileNotFoundError(f"{keras_path} not found: {run_dir} is not a run folder of `layerwise-keras train`.")
    path = artifact_path(run_dir, fmt, int8=int8, version=version)
    _check_can_write(path, overwrite)
    splits = None
    if int8 or check:
        config_path = os.path.join(run_dir, CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{config_path} not found: it is needed to rebuild the calibration/test images.")
        if int8 and int(calibration_samples) < 1:
            raise ValueError(f"calibration_samples must be >= 1, got {calibration_samples}.")
        with open(config_path) as f:
            config = json.load(f)
        from layerwise_keras.pipeline import load_splits

        splits = load_splits(config["dataset"], seed=config.get("seed", 0))
    model = load_keras_file(keras_path)
    if fmt == "tf_saved_model":
        export_saved_model(model, path, overwrite=overwrite)
        predict = predict_saved_model
    elif fmt == "litert":
        calibration = splits["x_train"][: int(calibration_samples)] if int8 else None
        export_litert(model, path, representative_data=calibration, int8=int8, overwrite=overwrite)
        predict = predict_litert
    else:
        export_onnx(model, path, overwrite=overwrite)
        predict = predict_onnx
    result = {"format": fmt + ("_int8" if int8 else ""), "path": path}
    if check:
        x_test, y_test = splits["x_test"], np.asarray(splits["y_test"])
        got = predict(path, x_test)
        result.update(test_examples=int(len(x_test)))
        result.update(compare_predictions(model.predict(x_test, batch_size=256, verbose=0), got))
        result["test_accuracy"] = float((got.argmax(-1) == y_test).mean())
    return result
