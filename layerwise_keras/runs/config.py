"""Run configurations: JSON files describing a dataset, stages and optimiser.

A configuration is a dict (usually a JSON file):

```json
{
  "name": "hierarchical_digits",
  "dataset": {"name": "hierarchical_digits", "train": 6000, "val": 1000, "test": 2000, "options": {}},
  "stages": [{"width": 32, "kernel_size": 3, "clusters": 16, "epochs": 3}, ...],
  "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.003}},
  "batch_size": 64,
  "seed": 0
}
```

Bundled configurations live in `layerwise_keras/runs/configs/` and are
addressed by name (`"hierarchical_digits"`, see `bundled_configs()`).

Every key of every block follows. An unknown key is an error that names its
path (`dataset.trian`, `stages[1].kmeans.max_iterr`,
`optimizer.config.learnin_rate`) and the nearest valid key; so is a value of
the wrong type or out of range.

Top level:

- `dataset` (required): the data, an object (below).
- `stages` (required): a non-empty list of stage objects (below), input side
  first; the last one (no `clusters`) is the classifier.
- `optimizer` (required): a Keras optimizer (below), used for every stage.
- `batch_size` (required): int >= 1, the training batch size.
- `name`: str, the run's name (the model's name; `tune`'s default project name).
- `description`: str, free text.
- `seed`: int >= 0 (default 0): seeds the data, the weights and k-means
  (`--seed` overrides it).
- `cache`: bool (default false): each stage trains on its cached input
  (`growth.cached`); with `augment`, on `cache_variants` (int >= 1, needed)
  augmented copies of it in turn (stage 1 on fresh ones).
- `probe_epochs`: int >= 0 (default 0): epochs of a fresh readout trained after
  growth on each paper-order stage's frozen code, reported (`probes.probe_codes`).

`dataset`:

- `name` (required): `"hierarchical_digits"` (the paper's Figure 1 digits),
  `"hierarchical"` (a random instance of the paper's generative model), or a
  real dataset: `"cifar10"`, `"mnist"`, `"fashion_mnist"`.
- `train`, `val`, `test`: int >= 1, the split sizes (synthetic defaults 6000,
  1000, 2000; real: `val` 5000 held out of the official train set, `train`
  the rest of it, `test` the whole test split).
- `options`: an object whose keys depend on `name`:
  `"hierarchical_digits"`: `noise`, `distractor_rate`, `variants`, `texture`
  (`datasets.hierarchical_digits`'s keywords); `"hierarchical"`: `levels`,
  `patch_size`, `classes_per_level`, `variants_per_class`, `noise`,
  `num_labels`, `channels`, `seed`, `variant_changes`
  (`datasets.HierarchicalModel`'s arguments); real datasets: `data_dir` (the
  local copy's folder; default `$LAYERWISE_KERAS_DATA`), `normalize`
  (`"unit"`, `"standardize"` or `"none"`), `test_split` (`"test"`; CIFAR-10's
  local copy also `"test_exact"`, `"test_exact_jpeg"`), `augment` (bool:
  random crop + flip of the training batches).

`stages[i]`: the fields of `layerwise_keras.Stage` (its docstring has the
details; all optional but `width`):

- `width`: int, the convolution's filters (null for a `cluster: "patches"` stage).
- `kernel_size`, `strides`: int or [h, w], the convolution's window and step
  (strides default to the window: non-overlapping patches).
- `clusters`: int K >= 2 of k-means, or null for the classifier stage.
- `epochs`, `steps`: the stage's budget, in epochs or in gradient steps.
- `patience`, `monitor`, `min_delta`, `mode` (`"auto"`, `"min"`, `"max"`): stop a
  stage early when `monitor` has not improved by `min_delta` for `patience` epochs.
- `assignment`: `"hard"`, `"nearest"` (with `q` nearest), `"soft"` (with
  `temperature`) or `"triangle"`: how embeddings become the next stage's input.
- `whiten`: null or epsilon > 0: ZCA-whiten the embeddings before k-means.
- `readout`: `"flatten"`, `"global_avg"` or `"pooled"`; the pooled head's
  `pool_size`, `pool_strides`, `bottleneck`, `batchnorm`, `hidden`.
- `schedule`: null, `"cosine"` or `"step"`: the learning rate within the stage.
- `padding`: `"valid"` or `"same"`.
- `input_pool`, `input_pool_strides`: average-pool the stage's input first.
- `kmeans`: an object of `layerwise_keras.KMeans` arguments: `init`,
  `max_iter`, `tol`, `seed`, `max_points_per_centroid`, `batch_size`,
  `n_init`, `jit_compile`, `verbose`, `distribute` (K is the stage's `clusters`).
- `cluster`: `"embeddings"` (the paper's order) or `"patches"` (cluster first).
- `handoff`: `"code"` or `"bottleneck"`: what the next stage receives.
- `gate`: null or int C: the code-gated head's extra channels.

`optimizer`: a Keras optimizer name (`"adam"`), or an object as
`keras.optimizers.serialize` writes it:

- `class_name` (required): a Keras optimizer class (`"Adam"`, `"SGD"`,
  `"AdamW"`, ...; any case) or a registered custom one.
- `config`: its constructor's arguments (`learning_rate`, `beta_1`,
  `weight_decay`, `clipnorm`, ...).
- `module`, `registered_name`: as `keras.optimizers.serialize` writes them.

`check_config` checks all of this that needs no Keras (every key, and every
value's type and choice); `validate_config` adds the checks that do (the
stages' values by `Stage`, the optimizer's class and `config` keys by Keras).
"""

import copy
import difflib
import inspect
import json
import numbers
import os

from layerwise_keras.growth.kinds import ASSIGNMENTS

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
REQUIRED = ("dataset", "stages", "optimizer", "batch_size")
OPTIONAL = ("name", "seed", "description", "cache", "cache_variants", "probe_epochs")
DATASET_KEYS = ("name", "train", "val", "test", "options")
REAL_OPTIONS = ("data_dir", "normalize", "test_split", "augment")  # = datasets.splits.REAL_OPTIONS
DATASET_OPTIONS = {  # dataset name -> its option keys (the generator's keywords)
    "hierarchical_digits": ("noise", "distractor_rate", "variants", "texture"),
    "hierarchical": ("levels", "patch_size", "classes_per_level", "variants_per_class", "noise", "num_labels",
                     "channels", "seed", "variant_changes"),
    "cifar10": REAL_OPTIONS,
    "mnist": REAL_OPTIONS,
    "fashion_mnist": REAL_OPTIONS,
}
REAL_OPTION_TYPES = {"data_dir": "str?", "normalize": ("unit", "standardize", "none"), "test_split": "str",
                     "augment": "bool"}
# Each Stage field's JSON type ("ints": an int or a list of them; "?": or null) or its choices; `Stage` checks ranges.
STAGE_TYPES = {
    "width": "int?", "kernel_size": "ints", "strides": "ints?", "clusters": "int?", "epochs": "int",
    "steps": "int?", "patience": "int?", "monitor": "str", "min_delta": "number",
    "assignment": ASSIGNMENTS, "temperature": "number", "q": "int",
    "whiten": "number?", "readout": ("flatten", "global_avg", "pooled"), "pool_size": "ints",
    "pool_strides": "ints?", "bottleneck": "int", "batchnorm": "bool", "hidden": "int?",
    "schedule": (None, "cosine", "step"), "padding": ("valid", "same"), "input_pool": "ints?",
    "input_pool_strides": "ints?", "kmeans": "object", "cluster": ("embeddings", "patches"),
    "handoff": ("code", "bottleneck"), "gate": "int?", "mode": ("auto", "min", "max"),
}
KMEANS_KEYS = ("init", "max_iter", "tol", "seed", "max_points_per_centroid", "batch_size", "n_init", "jit_compile",
               "verbose", "distribute")  # KMeans's arguments but n_clusters (the stage's `clusters`)
OPTIMIZER_KEYS = ("class_name", "config", "module", "registered_name")
# Top-level keys that belong in a block (a Keras user's `model.fit(epochs=...)`, `Adam(learning_rate=...)`).
_ELSEWHERE = {**{k: f"stages[i].{k}" for k in STAGE_TYPES}, **{k: f"dataset.{k}" for k in DATASET_KEYS},
              "learning_rate": "optimizer.config.learning_rate", "lr": "optimizer.config.learning_rate"}
DOCS = "the docstring of layerwise_keras/runs/config.py (python -m pydoc layerwise_keras.runs.config)"


def bundled_configs(dataset=None):
    """Returns the names of the configurations shipped with the package (imports nothing heavy).

    Args:
        dataset: None for all, or a dataset name: only the configurations
            whose `dataset.name` it is.

    Returns:
        A sorted list of names usable with `load_config`.

    Example:

    >>> "hierarchical_digits" in bundled_configs()
    True
    >>> bundled_configs(dataset="hierarchical")
    ['hierarchical_2level', 'hierarchical_3level']
    """
    names = sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".json"))
    if dataset is None:
        return names
    return [name for name in names if _read_json(os.path.join(CONFIG_DIR, name + ".json"))
            .get("dataset", {}).get("name") == dataset]


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


def _check_keys(block, allowed, path, source, where, elsewhere=None):
    """Raises a ValueError naming each key of `block` not in `allowed`, with the nearest valid one.

    `elsewhere` maps keys that belong in another block to their path there
    (`"learning_rate"` -> `"optimizer.config.learning_rate"`), suggested instead.
    """
    unknown = sorted((k for k in block if k not in allowed), key=str)
    if not unknown:
        return
    elsewhere = elsewhere or {}
    names = [str(a) for a in allowed]
    matches = {k: [elsewhere[k]] if k in elsewhere else difflib.get_close_matches(str(k), names, n=1) for k in unknown}
    hints = [f"{m[0]!r} for {_join(path, k)!r}" for k, m in matches.items() if m]
    if len(unknown) == 1 and hints:
        hint = f" (did you mean {matches[unknown[0]][0]!r}?)"
    else:
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    raise ValueError(f"{source}: unknown keys {[_join(path, k) for k in unknown]}{hint}; "
                     f"{where} takes {list(allowed)}.")


def _check_type(value, kind, path, source):
    """Checks a value against a `STAGE_TYPES`-style kind; returns it (integral floats of "int" kept as given)."""
    if isinstance(kind, tuple):
        if value not in kind or isinstance(value, bool):
            hint = difflib.get_close_matches(str(value), [str(c) for c in kind if c is not None], n=1)
            hint = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"{source}: {path} must be one of {list(kind)}, got {value!r}{hint}.")
        return value
    if kind.endswith("?") and value is None:
        return value
    base = kind.rstrip("?")
    ok = {
        "int": _is_integer,
        "ints": lambda v: _is_integer(v) or (isinstance(v, (list, tuple)) and all(map(_is_integer, v))),
        "number": lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and abs(v) < float("inf"),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
    }[base](value)
    if not ok:
        words = {"int": "an integer", "ints": "an integer or a list of integers", "number": "a finite number",
                 "str": "a string", "bool": "true or false", "object": "an object"}[base]
        raise ValueError(f"{source}: {path} must be {words}{' or null' if kind.endswith('?') else ''}, "
                         f"got {value!r}.")
    return value


def _is_integer(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or float(value).is_integer()


def _count(value, path, source, minimum=1, note=""):
    """Returns `value` as an int >= `minimum` (an integral float is accepted), or raises naming `path`."""
    if not _is_integer(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise ValueError(f"{source}: {path} must be {kind}{note}, got {value!r}.")
    return int(value)


def _check_dataset(dataset, source):
    if not isinstance(dataset, dict) or "name" not in dataset:
        raise ValueError(f"{source}: 'dataset' must be an object with a 'name', e.g. "
                         f'{{"name": "hierarchical_digits", "train": 1000}}; got {dataset!r}.')
    _check_keys(dataset, DATASET_KEYS, "dataset", source, "dataset")
    name = dataset["name"]
    if not isinstance(name, str) or name not in DATASET_OPTIONS:
        hint = difflib.get_close_matches(str(name), list(DATASET_OPTIONS), n=1)
        hint = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"{source}: dataset.name: unknown name {name!r}{hint}; "
                         f"expected one of {list(DATASET_OPTIONS)}.")
    for split in ("train", "val", "test"):
        if split in dataset:
            dataset[split] = _count(dataset[split], f"dataset.{split}", source)
    options = _check_type(dataset.get("options", {}), "object", "dataset.options", source)
    _check_keys(options, DATASET_OPTIONS[name], "dataset.options", source, f"dataset.options of {name!r}")
    if DATASET_OPTIONS[name] is REAL_OPTIONS:
        for key, value in options.items():
            _check_type(value, REAL_OPTION_TYPES[key], f"dataset.options.{key}", source)


def _check_stages(stages, source):
    if not isinstance(stages, list) or not stages:
        raise ValueError(f"{source}: 'stages' must be a non-empty list of stage objects, got {stages!r}.")
    for i, stage in enumerate(stages):
        path = f"stages[{i}]"
        _check_type(stage, "object", path, source)
        _check_keys(stage, STAGE_TYPES, path, source, "a stage")
        for key, value in stage.items():
            _check_type(value, STAGE_TYPES[key], f"{path}.{key}", source)
        if "n_clusters" in stage.get("kmeans", {}):
            raise ValueError(f"{source}: {path}.kmeans.n_clusters is reserved: a stage's number of clusters "
                             f"is its 'clusters' ({path}.clusters).")
        _check_keys(stage.get("kmeans", {}), KMEANS_KEYS, f"{path}.kmeans", source, f"{path}.kmeans")


def _check_optimizer(optimizer, source):
    if isinstance(optimizer, str) and optimizer:
        return
    if not isinstance(optimizer, dict):
        raise ValueError(f"{source}: optimizer must be a Keras optimizer name or an object such as "
                         f'{{"class_name": "Adam", "config": {{"learning_rate": 0.001}}}}, got {optimizer!r}.')
    _check_keys(optimizer, OPTIMIZER_KEYS, "optimizer", source, "optimizer")
    if not isinstance(optimizer.get("class_name"), str) or not optimizer["class_name"]:
        raise ValueError(f"{source}: optimizer.class_name must name a Keras optimizer class (e.g. \"Adam\"), "
                         f"got {optimizer.get('class_name')!r}.")
    _check_type(optimizer.get("config", {}), "object", "optimizer.config", source)
    for key in ("module", "registered_name"):
        _check_type(optimizer.get(key), "str?", f"optimizer.{key}", source)


def check_config(config, source="config"):
    """Checks every key of a configuration and every value that needs no Keras to check.

    Imports nothing heavy, so the command line answers with it before it
    loads TensorFlow. The stages' ranges and combinations and the optimizer's
    class and `config` keys are `validate_config`'s.

    Args:
        config: the dict to check.
        source: where it came from, for error messages.

    Returns:
        A deep copy, with integral numbers (`batch_size`, `seed`, split sizes,
        `probe_epochs`) as ints.

    Example:

    >>> raw = load_config("hierarchical_digits", full=False)
    >>> check_config(dict(raw, dataset={"name": "hierarchical_digits", "trian": 300}))
    Traceback (most recent call last):
    ...
    ValueError: config: unknown keys ['dataset.trian'] (did you mean 'train'?); dataset takes [...].
    """
    if not isinstance(config, dict):
        raise ValueError(f"{source}: a configuration must be a JSON object, got {type(config).__name__}.")
    try:
        _check_keys(config, REQUIRED + OPTIONAL, "", source, "the top level", _ELSEWHERE)
    except ValueError as err:
        raise ValueError(f"{err} Every key of every block is described in {DOCS}.") from None
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise ValueError(f"{source}: missing keys {missing}; expected {list(REQUIRED)}, optionally {list(OPTIONAL)}.")
    config = copy.deepcopy(config)
    _check_dataset(config["dataset"], source)
    _check_stages(config["stages"], source)
    _check_optimizer(config["optimizer"], source)
    config["batch_size"] = _count(config["batch_size"], "batch_size", source)
    for key, minimum, note in (("seed", 0, ""), ("probe_epochs", 0, " (0: no probes)"), ("cache_variants", 1, "")):
        if key in config:
            config[key] = _count(config[key], key, source, minimum=minimum, note=note)
    for key, kind in (("name", "str"), ("description", "str"), ("cache", "bool")):
        if key in config:
            _check_type(config[key], kind, key, source)
    options = config["dataset"].get("options", {})
    if ("cache_variants" in config) != bool(config.get("cache") and options.get("augment")):
        raise ValueError(f"{source}: \"cache\": true with the dataset option \"augment\" needs cache_variants, the "
                         "augmented copies of each cached stage input (e.g. 4), and cache_variants needs both.")
    return config


def _stage_error(err, index):
    """`Stage`'s message with the stage's path: "Stage: width must ..." -> "stages[1].width must ..."."""
    message = str(err)
    if not message.startswith("Stage: "):
        return f"stages[{index}]: {message}"
    message = message[len("Stage: "):]
    first = message.split(" ", 1)[0]
    return f"stages[{index}].{message}" if first in STAGE_TYPES else f"stages[{index}]: {message}"


def _optimizer_class(name):
    """The Keras optimizer class called `name` (any case), a registered custom one, or None."""
    import keras

    builtin = {n.lower(): getattr(keras.optimizers, n) for n in _keras_optimizers()}
    return builtin.get(name.lower()) or keras.saving.get_registered_object(name)


def _keras_optimizers():
    import keras

    return sorted(n for n in dir(keras.optimizers) if n != "Optimizer"
                  and isinstance(getattr(keras.optimizers, n), type)
                  and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer))


def _init_arguments(cls):
    """The keyword arguments `cls(...)` takes: its `__init__`'s, and its bases' while they pass on **kwargs."""
    names = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name != "self" and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def check_optimizer(optimizer, source="config"):
    """Checks an optimizer entry against Keras: its class exists and takes every key of its `config`.

    Imports Keras. Nothing is instantiated (an optimizer gets a new name
    each time it is built). A class Keras cannot resolve is accepted only
    when the entry names its `module` or `registered_name`.

    Args:
        optimizer: the configuration's `optimizer` (already `check_config`-ed).
        source: where it came from, for error messages.

    Returns:
        None.

    Example:

    >>> check_optimizer({"class_name": "Adam", "config": {"learning_rate": 0.1}})
    >>> check_optimizer({"class_name": "Adam", "config": {"learnin_rate": 0.1}})
    Traceback (most recent call last):
    ...
    ValueError: config: unknown keys ['optimizer.config.learnin_rate'] (did you mean 'learning_rate'?); ...
    """
    name = optimizer if isinstance(optimizer, str) else optimizer["class_name"]
    path = "optimizer" if isinstance(optimizer, str) else "optimizer.class_name"
    cls = _optimizer_class(name)
    if cls is None:
        if isinstance(optimizer, dict) and (optimizer.get("module") or optimizer.get("registered_name")):
            return
        choices = _keras_optimizers()
        lowered = {c.lower(): c for c in choices}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1)
        hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
        raise ValueError(f"{source}: {path}: unknown optimizer {name!r}{hint}; Keras has {choices}, or register "
                         "your own with keras.saving.register_keras_serializable.")
    if isinstance(optimizer, dict):
        _check_keys(optimizer.get("config", {}), _init_arguments(cls), "optimizer.config", source,
                    f"optimizer.config of {cls.__name__}")


def validate_config(config, source="config"):
    """Checks a configuration dict and returns a normalised deep copy.

    `check_config`, then every stage through `Stage` (ranges and
    combinations) and the optimizer through Keras (`check_optimizer`).
    Imports Keras.

    Args:
        config: the dict to check.
        source: where it came from, for error messages.

    Returns:
        The configuration with every stage as `Stage.get_config()` (all fields).

    Example:

    >>> cfg = validate_config(load_config("hierarchical_digits"))
    """
    from layerwise_keras.growth.stage import Stage  # imports Keras: here, not when the module is imported

    config = check_config(config, source)
    stages = []
    for i, stage in enumerate(config["stages"]):
        try:
            stages.append(Stage.from_config(stage).get_config())
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{source}: bad stage: {_stage_error(err, i)}") from err
    config["stages"] = stages
    check_optimizer(config["optimizer"], source)
    return config


def config_path(name_or_path):
    """Returns the file of a configuration given as a path or a bundled name.

    Args:
        name_or_path: a path to a `.json` file, or a `bundled_configs()` name.

    Returns:
        The path of the `.json` file.

    Example:

    >>> config_path("hierarchical_digits")
    '.../layerwise_keras/runs/configs/hierarchical_digits.json'
    """
    name_or_path = os.fspath(name_or_path)
    if not os.path.exists(name_or_path) and name_or_path in bundled_configs():
        return os.path.join(CONFIG_DIR, name_or_path + ".json")
    if os.path.isfile(name_or_path):
        return name_or_path
    names = bundled_configs()
    if os.sep in name_or_path or name_or_path.endswith(".json"):
        raise FileNotFoundError(f"No configuration file {name_or_path!r}; give a path to a .json file or one "
                                f"of the bundled configs {names}.")
    close = difflib.get_close_matches(name_or_path, names, n=3, cutoff=0.5)
    close = close or [n for n in names if n.startswith(name_or_path)]
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    raise FileNotFoundError(f"no bundled config named {name_or_path!r}{hint} and no file of that name; "
                            f"choices: {', '.join(names)}, or a path to a .json file.")


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read configuration {path}: {err}") from err


def load_config(name_or_path, full=True):
    """Loads a configuration from a JSON file or a bundled name.

    Args:
        name_or_path: a path to a `.json` file, or the name of a bundled
            configuration (see `bundled_configs()`).
        full: True: `validate_config` (imports Keras); False: `check_config`
            only (imports nothing heavy; stages are returned as written).

    Returns:
        The checked configuration dict.

    Example:

    >>> cfg = load_config("hierarchical_digits")
    >>> cfg["stages"][0]["clusters"]
    16
    """
    path = config_path(name_or_path)
    config = _read_json(path)
    return validate_config(config, source=path) if full else check_config(config, source=path)
