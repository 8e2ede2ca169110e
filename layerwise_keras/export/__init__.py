"""Export a grown model as artifacts that run without `layerwise_keras`.

- `to_portable_model`, `serving_model` (`portable`): built-in layers and ops only.
- `export_saved_model`, `export_litert`, `export_onnx`, `describe_litert` and the
  runners `predict_saved_model`, `predict_litert`, `predict_onnx`,
  `compare_predictions` (`formats`, TensorFlow-only code).
- `save_artifacts` (`artifacts`): `model.keras` + `saved_model/1/`, the layout
  a run folder holds.

Nothing is overwritten unless `overwrite=True`.
"""

from layerwise_keras.export.artifacts import KERAS_FILE, SAVED_MODEL_DIR, save_artifacts
from layerwise_keras.export.formats import (
    compare_predictions,
    describe_litert,
    export_litert,
    export_onnx,
    export_saved_model,
    predict_litert,
    predict_onnx,
    predict_saved_model,
)
from layerwise_keras.export.portable import serving_model, to_portable_model
from layerwise_keras.saving import load_keras_file

__all__ = [
    "KERAS_FILE",
    "SAVED_MODEL_DIR",
    "compare_predictions",
    "describe_litert",
    "export_litert",
    "export_onnx",
    "export_saved_model",
    "load_keras_file",
    "predict_litert",
    "predict_onnx",
    "predict_saved_model",
    "save_artifacts",
    "serving_model",
    "to_portable_model",
]
