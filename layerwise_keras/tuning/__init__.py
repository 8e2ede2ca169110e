"""Hyperparameter search over whole layerwise growths, with keras-tuner (an optional extra).

- `LayerwiseHyperModel` (`hypermodel`): a `keras_tuner.HyperModel`.
- `make_tuner`, `tune`, `check_tuner_folder` (`search`).
- `default_space`, `load_space`, `validate_space`, geometry helpers (`space`).
"""

from layerwise_keras.tuning.hypermodel import LayerwiseHyperModel
from layerwise_keras.tuning.search import BEST_CONFIG, TUNERS, TuningResult, check_tuner_folder, make_tuner, tune
from layerwise_keras.tuning.space import (
    default_space,
    feature_map_sizes,
    geometry_name,
    load_space,
    parse_geometry,
    validate_space,
)

__all__ = [
    "BEST_CONFIG",
    "TUNERS",
    "LayerwiseHyperModel",
    "TuningResult",
    "check_tuner_folder",
    "default_space",
    "feature_map_sizes",
    "geometry_name",
    "load_space",
    "make_tuner",
    "parse_geometry",
    "tune",
    "validate_space",
]
