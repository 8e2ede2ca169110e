"""The search space of a layerwise hyperparameter search: validation, defaults, geometry helpers.
"""

import copy
import itertools
import json
import math
import numbers
import warnings

import keras
import numpy as np

from layerwise_keras.growth.kinds import ASSIGNMENTS, KNOBS, halve_double
from layerwise_keras.growth.stage import Stage
from layerwise_keras.runs.config import validate_config


# The keys of each clustered stage's fields (`growth.kinds.KNOBS`) sit between the stage keys and the rest.
STAGE_KEYS = ("width", "geometry")
CLUSTERED_KEYS = tuple(KNOBS)
SPACE_KEYS = STAGE_KEYS + CLUSTERED_KEYS + ("epochs", "learning_rate")


MAX_GEOMETRIES = 10000


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_int(minimum):
    def check(value, key):
        if not is_int(value) or value < minimum:
            raise ValueError(f"search space: {key} values must be integers >= {minimum}, got {value!r}.")
        return int(value)

    return check


def _width_or_none(value, key):
    """A width >= 1, or None (only a cluster-first stage's, see `_check_patch_widths`)."""
    return None if value is None else _check_int(1)(value, key)


def _check_patch_widths(lists, stages):
    """A cluster-first stage (`cluster="patches"`) has no width to tune: its choices must be `[None]`."""
    for n, (choices, stage) in enumerate(zip(lists, stages), start=1):
        patches = stage.get("cluster", "embeddings") == "patches"
        if patches and choices != [None]:
            raise ValueError(
                f"search space: stage {n} clusters its input patches (cluster='patches'); its convolution's width "
                f"is the patch size, not tuned: give [null] for it, got {choices!r}."
            )
        if not patches and None in choices:
            raise ValueError(f"search space: width values must be integers >= 1 (stage {n}), got None.")
    return lists


def _check_knob(knob):
    """The check of a `growth.kinds.Knob`'s values: a count, an assignment name or an epsilon; its `none` value
    (0 or null in the space: keras-tuner has no None choice) where the field may be None."""

    def check(value, key):
        real = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
        if knob.none is not None and (value is None or (real and value == 0)):
            return knob.none
        none = ", or 0 / null for none" if knob.none is not None else ""
        if knob.values == "assignment":
            if value not in ASSIGNMENTS:
                raise ValueError(f"search space: {key} values must be in {ASSIGNMENTS}, got {value!r}.")
            return value
        if knob.values == "epsilon":
            if not real or not value > 0:
                raise ValueError(f"search space: {key} values must be an epsilon > 0{none}, got {value!r}.")
            return float(value)
        if not is_int(value) or value < knob.minimum:
            raise ValueError(f"search space: {key} values must be integers >= {knob.minimum}{none}, got {value!r}.")
        return int(value)

    return check


def _check_needs(lists, key, stages):
    """A knob that only some stages have (`Knob.needs`, e.g. a gate) is refused on the others."""
    knob = KNOBS[key]
    if knob.needs is None:
        return lists
    for n, (choices, stage) in enumerate(zip(lists, stages), start=1):
        if not knob.needs(Stage.from_config(stage)) and choices != [knob.none]:
            raise ValueError(f"search space: {key} needs {knob.needs_what}; stage {n} has none: give "
                             f"[{knob.none}] for it, got {choices!r}.")
    return lists


def _check_geometry(value, key):
    """`3` or `"3"` -> (3, 3); `"3/2"` -> (3, 2)."""
    if is_int(value):
        kernel = stride = int(value)
    elif isinstance(value, str):
        parts = value.strip().split("/")
        try:
            if len(parts) not in (1, 2):
                raise ValueError
            kernel = int(parts[0])
            stride = int(parts[1]) if len(parts) == 2 else kernel
        except ValueError:
            raise ValueError(
                f"search space: {key} values must be 'kernel/stride' strings like '3/3' or ints, got {value!r}."
            ) from None
    else:
        raise ValueError(
            f"search space: {key} values must be 'kernel/stride' strings like '3/3' or ints, got {value!r}."
        )
    if kernel < 1 or stride < 1:
        raise ValueError(f"search space: {key}: kernel and stride must be >= 1, got {value!r}.")
    return kernel, stride


def _per_stage(value, key, count, check, what):
    """Normalises a flat list / list of lists / scalar into `count` lists of checked values."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"search space: {key} must not be empty.")
        nested = [isinstance(v, (list, tuple)) for v in value]
        if all(nested):
            if len(value) != count:
                raise ValueError(
                    f"search space: {key} has {len(value)} lists, one per {what}; the configuration has {count}."
                )
            lists = [list(v) for v in value]
        elif any(nested):
            raise ValueError(
                f"search space: {key} mixes values and lists; give one flat list for every {what} "
                f"or one list per {what}."
            )
        else:
            lists = [list(value)] * count
    else:
        lists = [[value]] * count
    result = []
    for i, choices in enumerate(lists, start=1):
        if not choices:
            raise ValueError(f"search space: {key} list {i} is empty.")
        checked = []
        for v in choices:
            v = check(v, key)
            if v not in checked:
                checked.append(v)
        result.append(checked)
    return result


def _check_learning_rate(value):
    def positive(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"search space: learning_rate values must be finite numbers > 0, got {v!r}.")
        return float(v)

    if isinstance(value, dict):
        unknown = set(value) - {"min", "max", "sampling"}
        if unknown or not {"min", "max"} <= set(value):
            raise ValueError(
                "search space: learning_rate range must be {'min': ..., 'max': ..., 'sampling': 'log'|'linear'}, "
                f"got {value!r}."
            )
        low, high = positive(value["min"]), positive(value["max"])
        sampling = value.get("sampling", "log")
        if sampling not in ("log", "linear"):
            raise ValueError(f"search space: learning_rate sampling must be 'log' or 'linear', got {sampling!r}.")
        if not low < high:
            raise ValueError(f"search space: learning_rate needs min < max, got {low} and {high}.")
        return {"min": low, "max": high, "sampling": sampling}
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("search space: learning_rate must not be empty.")
        return sorted({positive(v) for v in value})
    return [positive(value)]


def _output_size(size, kernel, stride, padding):
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1 if size >= kernel else 0


def feature_map_sizes(input_shape, geometry, paddings=None):
    """Returns the spatial size of every stage's output for a geometry.

    Args:
        input_shape: image shape `(height, width, channels)`.
        geometry: one `(kernel, stride)` pair per stage.
        paddings: one `"valid"`/`"same"` per stage (default all `"valid"`).

    Returns:
        A list of `(height, width)` pairs, one per stage; a stage whose
        output would be empty gets 0 there (and so do the stages after it).

    Example:

    >>> feature_map_sizes((27, 27, 1), [(3, 3), (3, 3), (3, 3)])
    [(9, 9), (3, 3), (1, 1)]
    """
    paddings = paddings or ["valid"] * len(geometry)
    h, w = int(input_shape[0]), int(input_shape[1])
    sizes = []
    for (kernel, stride), padding in zip(geometry, paddings):
        h, w = _output_size(h, kernel, stride, padding), _output_size(w, kernel, stride, padding)
        if h < 1 or w < 1:
            h = w = 0
        sizes.append((h, w))
    return sizes


def geometry_name(geometry):
    """Returns the `geometry` hyperparameter value of per-stage `(kernel, stride)` pairs.

    Example:

    >>> geometry_name([(3, 3), (2, 1)])
    '3/3,2/1'
    """
    return ",".join(f"{k}/{s}" for k, s in geometry)


def parse_geometry(name):
    """Inverse of `geometry_name`: `"3/3,2/1"` -> `[(3, 3), (2, 1)]`."""
    return [_check_geometry(part, "geometry") for part in name.split(",")]


def validate_space(space, config, input_shape):
    """Checks a search space against a configuration and an input shape.

    Args:
        space: the search-space dict (see the module docstring), or `None`
            for an empty one (nothing tuned).
        config: the base configuration (`layerwise_keras.runs.config` format).
        input_shape: image shape `(height, width, channels)`.

    Returns:
        A normalised dict: `width`, `epochs` (one list of choices per stage),
        `clusters`, `assignment`, `q`, `whiten` (one list per clustered stage), `geometry`
        (the valid per-stage `(kernel, stride)` combinations), and
        `learning_rate` (a range dict or a list of values); a knob that is not
        tuned is `None`.

    Raises:
        ValueError: on unknown keys, bad values, lists that do not match the
            number of stages, or when no kernel/stride combination keeps
            every stage's feature map non-empty for `input_shape`.

    Example:

    >>> from layerwise_keras.runs.config import load_config
    >>> config = load_config("hierarchical_2level")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     space = validate_space({"width": [8, 16], "geometry": ["3/3", "4/4"]}, config, (9, 9, 1))
    >>> space["geometry"]
    [[(3, 3), (3, 3)]]
    >>> print(caught[0].message)
    search space: pruned 3 of 4 kernel/stride combinations that leave no spatial positions for input 9x9,
    e.g. 3/3,4/4, 4/4,3/3, 4/4,4/4.
    """
    config = validate_config(config)
    space = {} if space is None else space
    if not isinstance(space, dict):
        raise ValueError(f"search space: must be a JSON object, got {type(space).__name__}.")
    unknown = sorted(set(space) - set(SPACE_KEYS))
    if unknown:
        raise ValueError(f"search space: unknown keys {unknown}; expected a subset of {list(SPACE_KEYS)}.")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"search space: expected an image shape (height, width, channels), got {input_shape}.")
    stages = config["stages"]
    n = len(stages)
    result = dict.fromkeys(SPACE_KEYS)
    if "width" in space:
        result["width"] = _check_patch_widths(
            _per_stage(space["width"], "width", n, _width_or_none, "stage"), stages)
    if "epochs" in space:
        result["epochs"] = _per_stage(space["epochs"], "epochs", n, _check_int(1), "stage")
    for key in CLUSTERED_KEYS:
        if key in space:
            if n == 1:
                raise ValueError(f"search space: {key} needs clustered stages; the configuration has one stage.")
            lists = _per_stage(space[key], key, n - 1, _check_knob(KNOBS[key]), "clustered stage")
            result[key] = _check_needs(lists, key, stages[:-1])
    if "learning_rate" in space:
        result["learning_rate"] = _check_learning_rate(space["learning_rate"])

    paddings = [s["padding"] for s in stages]
    if "geometry" not in space:  # the configuration's own (possibly non-square) kernels: check them
        h, w = input_shape[:2]
        for n, (stage, padding) in enumerate(zip(stages, paddings), start=1):
            (kh, kw), (sh, sw) = stage["kernel_size"], stage["strides"]
            h, w = _output_size(h, kh, sh, padding), _output_size(w, kw, sw, padding)
            if h < 1 or w < 1:
                raise ValueError(
                    f"search space: the configuration's stage {n} leaves no spatial positions "
                    f"for input {input_shape[0]}x{input_shape[1]}."
                )
        return result
    options = _per_stage(space["geometry"], "geometry", n, _check_geometry, "stage")
    count = math.prod(len(o) for o in options)
    if count > MAX_GEOMETRIES:
        raise ValueError(
            f"search space: {count} kernel/stride combinations (more than {MAX_GEOMETRIES}); narrow 'geometry'."
        )
    valid, invalid = [], []
    for combo in itertools.product(*options):
        sizes = feature_map_sizes(input_shape, combo, paddings)
        (valid if sizes[-1][0] >= 1 else invalid).append((list(combo), sizes))
    if not valid:
        examples = "; ".join(
            f"{geometry_name(c)} -> {' -> '.join('x'.join(map(str, s)) if s[0] else 'nothing' for s in sizes)}"
            for c, sizes in invalid[:4]
        )
        raise ValueError(
            f"search space: no kernel/stride combination fits the input {input_shape[0]}x{input_shape[1]} "
            f"with {n} stages (every stage needs a non-empty feature map): {examples}."
        )
    if invalid:
        warnings.warn(
            f"search space: pruned {len(invalid)} of {count} kernel/stride combinations that leave no "
            f"spatial positions for input {input_shape[0]}x{input_shape[1]}, e.g. "
            f"{', '.join(geometry_name(c) for c, _ in invalid[:3])}."
        )
    result["geometry"] = [c for c, _ in valid]
    return result


def _learning_rate_of(optimizer_config):
    try:
        value = keras.optimizers.get(copy.deepcopy(optimizer_config)).get_config().get("learning_rate")
    except (TypeError, ValueError):
        return None
    return float(f"{value:.6g}") if isinstance(value, numbers.Real) else None


def default_space(config, tune_epochs=True):
    """Returns the search space `layerwise-keras tune` uses when given no `--space`.

    Around the configuration's values: every stage's width in {w/2, w, 2w}
    (`[None]` for a cluster-first stage, whose width is its patch size);
    every clustered stage's K in {K/2, K, 2K}, its assignment in `hard`,
    `soft`, `triangle` (the configuration's first) and a gated stage's gate
    in {C, none} (the defaults of `growth.kinds.KNOBS`); every stage's epochs in
    {e/2, e, 2e} (rounded down, at least 1; left out when `tune_epochs` is
    False, as Hyperband sets the epochs); the learning rate log-uniform in
    [lr/3, 3 lr]. Kernel sizes and strides stay the configuration's (they
    match the data's patch size); tune them with an explicit `geometry`.

    Args:
        config: the base configuration.
        tune_epochs: include the stages' epochs.

    Returns:
        A search-space dict (see the module docstring).

    Example:

    >>> from layerwise_keras.runs.config import load_config
    >>> default_space(load_config("hierarchical_2level"))["width"]
    [[32, 64, 128], [16, 32, 64]]
    """
    config = validate_config(config)
    stages = config["stages"]
    space = {"width": [[None] if s["width"] is None else halve_double(s["width"], 1) for s in stages]}
    clustered = [Stage.from_config(s) for s in stages[:-1]]
    for key, knob in KNOBS.items():
        if clustered and knob.default is not None:
            choices = [knob.default(stage) for stage in clustered]
            if any(c is not None for c in choices):
                space[key] = [[knob.none] if c is None else c for c in choices]
    if tune_epochs:
        space["epochs"] = [halve_double(s["epochs"], 1) for s in stages]
    lr = _learning_rate_of(config["optimizer"])
    if lr is not None:
        space["learning_rate"] = {"min": float(f"{lr / 3:.6g}"), "max": float(f"{lr * 3:.6g}"), "sampling": "log"}
    return space


def load_space(path):
    """Reads a search-space JSON file (validated later, against the configuration).

    Args:
        path: a `.json` file holding a search-space object.

    Returns:
        The dict.

    Example:

    >>> import os
    >>> path = os.path.join(tmp_dir, "space.json")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"width": [8, 16], "learning_rate": {"min": 0.001, "max": 0.01}}')
    >>> load_space(path)
    {'width': [8, 16], 'learning_rate': {'min': 0.001, 'max': 0.01}}
    """
    try:
        with open(path) as f:
            space = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"No search-space file {path!r}.") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read search space {path}: {err}") from err
    if not isinstance(space, dict):
        raise ValueError(f"search space {path}: must be a JSON object, got {type(space).__name__}.")
    return space
