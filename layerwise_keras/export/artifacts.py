"""The artifacts of a run folder: `model.keras` (portable) and `saved_model/1/`, and the names of the derived files.
"""

import os

from layerwise_keras.export.formats import check_target, export_saved_model
from layerwise_keras.export.portable import to_portable_model


SAVED_MODEL_DIR = os.path.join("saved_model", "1")


KERAS_FILE = "model.keras"


LITERT_FILE = "model.tflite"


LITERT_INT8_FILE = "model_int8.tflite"


ONNX_FILE = "model.onnx"


SAVED_MODEL_ROOT = "saved_model"


CONFIG_FILE = "config.json"


FORMATS = ("tf_saved_model", "litert", "onnx")


def save_artifacts(model, output_dir, overwrite=False):
    """Writes the portable `.keras` file and the SavedModel into `output_dir`.

    Args:
        model: a grown `keras.Sequential`.
        output_dir: folder to write `model.keras` and `saved_model/1/` into.
        overwrite: replace existing artifacts instead of raising.

    Returns:
        A dict with the paths written (`keras`, `saved_model`).

    Example:

    `model`: a grown model.

    >>> import os
    >>> paths = save_artifacts(model, tmp_dir)
    >>> {name: os.path.relpath(path, tmp_dir) for name, path in paths.items()}
    {'keras': 'model.keras', 'saved_model': 'saved_model/1'}
    >>> save_artifacts(model, tmp_dir)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: .../model.keras already exists; refusing to overwrite it (pass overwrite=True / --overwrite).
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
    check_target(keras_path, overwrite)
    portable.save(keras_path)
    export_saved_model(model, saved_model_path, overwrite=overwrite)
    return {"keras": keras_path, "saved_model": saved_model_path}
