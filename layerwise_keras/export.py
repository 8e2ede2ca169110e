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
