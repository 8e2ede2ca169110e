"""SavedModel, LiteRT and ONNX files of a grown model, and their runners (TensorFlow-only code).
"""

import os
import shutil


from layerwise_keras.growth.names import mentions_role
from layerwise_keras.export.portable import serving_model


# Ops that `export_litert(int8=True)` quantises to int8 (unless they compute
# cluster-assignment scores); every other op keeps float32 kernels.
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")




def check_target(path, overwrite):
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

    `model`: a grown model of 27x27x1 images, 10 classes (`x`: such images).

    >>> import os
    >>> path = export_saved_model(model, os.path.join(tmp_dir, "saved_model", "1"))
    >>> sorted(os.listdir(path))
    ['assets', 'fingerprint.pb', 'saved_model.pb', 'variables']
    >>> predict_saved_model(path, x[:4]).shape
    (4, 10)
    """
    check_target(path, overwrite)
    model.export(path, format="tf_saved_model", verbose=False)
    return path


def check_can_write(path, overwrite):
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
    check_target(path, overwrite)
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

    `model`: a grown model with hard assignments.

    >>> import os
    >>> ops = describe_litert(export_litert(model, os.path.join(tmp_dir, "model.tflite")))
    >>> ops[0]["op"], {"ARG_MAX", "ONE_HOT"} <= {d["op"] for d in ops}
    ('CONV_2D', True)
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
        if d["op"] not in INT8_OPS or mentions_role(d["output"], "assign") or mentions_role(d["output"], "whiten")
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
    `ai_edge_litert.interpreter.Interpreter` (see `predict_litert`). The ops
    each stage kind becomes are in `growth.kinds.KINDS` (`litert_ops`; e.g.
    a hard assignment: `ARG_MAX` + `ONE_HOT`).

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

    `model`: a grown model of 27x27x1 images; `x`: 128 such (training)
    images.

    >>> import os
    >>> export_litert(model, os.path.join(tmp_dir, "model.tflite"))
    '/.../model.tflite'
    >>> path = export_litert(model, os.path.join(tmp_dir, "model_int8.tflite"), x[:100], int8=True)
    >>> [(d["op"], d["dtype"]) for d in describe_litert(path)][:2]
    [('QUANTIZE', 'INT8'), ('CONV_2D', 'INT8')]
    """
    import tempfile

    import tensorflow as tf

    check_can_write(path, overwrite)
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

    `model`: a grown model of 27x27x1 images, 10 classes (`x`: such images).

    >>> import os
    >>> path = export_onnx(model, os.path.join(tmp_dir, "model.onnx"))
    >>> predict_onnx(path, x[:4]).shape
    (4, 10)
    """
    import tempfile
    import warnings

    import tensorflow as tf

    check_can_write(path, overwrite)
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

    `model`: a grown model of 27x27x1 images, 10 classes (`x`: such images).

    >>> import os
    >>> path = export_litert(model, os.path.join(tmp_dir, "model.tflite"))
    >>> logits = predict_litert(path, x[:16])
    >>> logits.shape, logits.dtype
    ((16, 10), dtype('float32'))
    >>> compare_predictions(model.predict(x[:16], verbose=0), logits)["max_abs_logit_diff"] < 1e-3
    True
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

    `model`: a grown model of 27x27x1 images, 10 classes (`x`: such images).

    >>> import os
    >>> logits = predict_onnx(export_onnx(model, os.path.join(tmp_dir, "model.onnx")), x[:16])
    >>> logits.shape, logits.dtype
    ((16, 10), dtype('float32'))
    >>> compare_predictions(model.predict(x[:16], verbose=0), logits)["max_abs_logit_diff"] < 1e-3
    True
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

    `run_dir`: the output folder of a run (`runs.run`) of 27x27x1 images,
    10 classes; `x`: such images.

    >>> import os
    >>> logits = predict_saved_model(os.path.join(run_dir, "saved_model", "1"), x[:16])
    >>> logits.shape, logits.dtype
    ((16, 10), dtype('float32'))
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

    Typically `compare_predictions(model.predict(x), predict_onnx(path, x))`:

    >>> import numpy as np
    >>> expected = np.array([[2.0, 1.0], [0.0, 3.0]], "float32")
    >>> compare_predictions(expected, expected + np.array([[0.0, 0.5], [0.25, 0.0]], "float32"))
    {'top1_agreement': 1.0, 'max_abs_logit_diff': 0.5}
    >>> compare_predictions(expected, expected[:, ::-1])
    {'top1_agreement': 0.0, 'max_abs_logit_diff': 3.0}
    """
    import numpy as np

    expected, got = np.asarray(expected), np.asarray(got)
    if expected.shape != got.shape:
        raise ValueError(f"prediction shapes differ: {expected.shape} vs {got.shape}.")
    return {
        "top1_agreement": float((expected.argmax(-1) == got.argmax(-1)).mean()),
        "max_abs_logit_diff": float(np.abs(expected.astype("float64") - got).max()),
    }
