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

    >>> import os
    >>> model = load_keras_file(os.path.join(run_dir, "model.keras"))  # a run's output folder
    >>> model.output_shape
    (None, 10)
    >>> broken = os.path.join(tmp_dir, "broken.keras")
    >>> with open(broken, "wb") as f:
    ...     _ = f.write(b"not a zip archive")
    >>> load_keras_file(broken)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../broken.keras is not a readable .keras archive (truncated or corrupt file?); ...
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
