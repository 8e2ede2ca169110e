"""`layerwise-keras export`: a run folder's model as SavedModel, LiteRT or ONNX, checked against Keras.
"""

import json
import os

import numpy as np

from layerwise_keras.datasets.splits import load_splits
from layerwise_keras.export.artifacts import (
    CONFIG_FILE,
    FORMATS,
    KERAS_FILE,
    LITERT_FILE,
    LITERT_INT8_FILE,
    ONNX_FILE,
    SAVED_MODEL_ROOT,
)
from layerwise_keras.export.formats import (
    check_can_write,
    compare_predictions,
    export_litert,
    export_onnx,
    export_saved_model,
    predict_litert,
    predict_onnx,
    predict_saved_model,
)
from layerwise_keras.runs.training import top1_accuracy
from layerwise_keras.saving import load_keras_file


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

    `run_dir`: the output folder of a run (`runs.run`; its test split: 32
    images).

    >>> import os
    >>> result = export_run(run_dir, "onnx")
    >>> result["format"], os.path.relpath(result["path"], run_dir), result["test_examples"]
    ('onnx', 'model.onnx', 32)
    >>> sorted(result)
    ['format', 'max_abs_logit_diff', 'path', 'test_accuracy', 'test_examples', 'top1_agreement']
    >>> result = export_run(run_dir, "litert", int8=True, calibration_samples=100, check=False)
    >>> os.path.relpath(result["path"], run_dir)
    'model_int8.tflite'
    """
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
    check_can_write(path, overwrite)
    splits = None
    if int8 or check:
        config_path = os.path.join(run_dir, CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{config_path} not found: it is needed to rebuild the calibration/test images.")
        if int8 and int(calibration_samples) < 1:
            raise ValueError(f"calibration_samples must be >= 1, got {calibration_samples}.")
        with open(config_path) as f:
            config = json.load(f)
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
        result["test_accuracy"] = top1_accuracy(got, y_test)
    return result
