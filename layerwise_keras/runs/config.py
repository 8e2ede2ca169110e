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

`stages` entries are `layerwise_keras.Stage` fields; `optimizer` is any
config `keras.optimizers.get` accepts. Bundled configurations live in
`layerwise_keras/runs/configs/` and are addressed by name (`"hierarchical_digits"`).

Optional keys: `name`, `seed`, `description`; `cache` (each stage trains
on its cached input: int16 cluster ids or float16 codes, `growth.cached`);
`probe_epochs` (default 0: after growth, train a fresh readout on each
paper-order stage's frozen code for this many epochs and report its accuracy
beside the stage's own, `pipeline.probe_codes`).
"""

import copy
import json
import numbers
import os

from layerwise_keras.growth.stage import Stage

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
REQUIRED = ("dataset", "stages", "optimizer", "batch_size")
OPTIONAL = ("name", "seed", "description", "cache", "probe_epochs")


def bundled_configs():
    """Returns the names of the configurations shipped with the package.

    Returns:
        A sorted list of names usable with `load_config`.

    Example:

    >>> "hierarchical_digits" in bundled_configs()
    True
    """
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".json"))


def validate_config(config, source="config"):
    """Checks a configuration dict and returns a normalised deep copy.

    Args:
        config: the dict to check.
        source: where it came from, for error messages.

    Returns:
        The configuration with every stage validated by `Stage`.

    Example:

    >>> cfg = validate_config(load_config("hierarchical_digits"))
    """
    if not isinstance(config, dict):
        raise ValueError(f"{source}: a configuration must be a JSON object, got {type(config).__name__}.")
    missing = [k for k in REQUIRED if k not in config]
    unknown = sorted(set(config) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise ValueError(
            f"{source}: missing keys {missing}, unknown keys {unknown}; "
            f"expected {list(REQUIRED)} and optionally {list(OPTIONAL)}."
        )
    config = copy.deepcopy(config)
    if not isinstance(config["dataset"], dict) or "name" not in config["dataset"]:
        raise ValueError(f"{source}: 'dataset' must be an object with a 'name'.")
    if not isinstance(config["stages"], list) or not config["stages"]:
        raise ValueError(f"{source}: 'stages' must be a non-empty list.")
    try:
        config["stages"] = [Stage.from_config(s).get_config() for s in config["stages"]]
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{source}: bad stage: {err}") from err
    batch_size = config["batch_size"]
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Real)
        or not float(batch_size).is_integer()
        or batch_size < 1
    ):
        raise ValueError(f"{source}: batch_size must be a positive integer, got {batch_size!r}.")
    config["batch_size"] = int(batch_size)
    if "probe_epochs" in config:
        probe = config["probe_epochs"]
        if isinstance(probe, bool) or not isinstance(probe, numbers.Real) or not float(probe).is_integer() or probe < 0:
            raise ValueError(f"{source}: probe_epochs must be a non-negative integer (0: no code probes), "
                             f"got {probe!r}.")
        config["probe_epochs"] = int(probe)
    return config


def load_config(name_or_path):
    """Loads a configuration from a JSON file or a bundled name.

    Args:
        name_or_path: a path to a `.json` file, or the name of a bundled
            configuration (see `bundled_configs()`).

    Returns:
        The validated configuration dict.

    Example:

    >>> cfg = load_config("hierarchical_digits")
    >>> cfg["stages"][0]["clusters"]
    16
    """
    path = name_or_path
    if not os.path.exists(path) and name_or_path in bundled_configs():
        path = os.path.join(CONFIG_DIR, name_or_path + ".json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No configuration file {name_or_path!r}; give a path to a .json file or one of {bundled_configs()}."
        )
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read configuration {path}: {err}") from err
    return validate_config(config, source=path)


def smoke_config(config, train, val, test, shrink=8, max_iter=10):
    """A small, fast copy of a configuration for smoke runs (quick benchmarks, notebooks).

    Same structure (stages, kernels, strides, assignments, data options),
    but one epoch per stage, widths and K divided by `shrink` (at least 8),
    at most `max_iter` Lloyd iterations, and the given split sizes. Its
    figures say whether the code runs, not how well the configuration does.

    Args:
        config: a configuration dict (not modified).
        train, val, test: split sizes.
        shrink: divisor for widths and cluster counts.
        max_iter: cap on the k-means iterations per stage.

    Returns:
        A new configuration dict.

    Example:

    >>> small = smoke_config(load_config("cifar10_paper"), train=2000, val=300, test=500)
    """
    config = copy.deepcopy(config)
    config["dataset"].update(train=int(train), val=int(val), test=int(test))
    for stage in config["stages"]:
        stage["epochs"] = 1
        if stage.get("width") is not None:  # None: a cluster-first stage's patch size
            stage["width"] = max(8, int(stage["width"]) // shrink)
        if stage.get("clusters"):
            stage["clusters"] = max(8, int(stage["clusters"]) // shrink)
            stage.setdefault("kmeans", {})["max_iter"] = int(max_iter)
            if stage.get("q", 1) > 1:
                stage["q"] = max(1, min(int(stage["q"]) // shrink, stage["clusters"]))
    return config
