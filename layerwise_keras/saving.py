"""Loading `.keras` files with clear errors (used by checkpoints, exports and reports).
"""

import os

import keras


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
