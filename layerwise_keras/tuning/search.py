"""Running a search: `make_tuner`, `tune` (what `layerwise-keras tune` does), the tuner folder check.
"""

import json
import os

import keras_tuner

from layerwise_keras.datasets.splits import load_splits
from layerwise_keras.runs.config import load_config, validate_config
from layerwise_keras.tuning.hypermodel import LayerwiseHyperModel
from layerwise_keras.tuning.space import is_int, default_space


TUNERS = ("random", "hyperband", "bayesian")


BEST_CONFIG = "best_config.json"


def make_tuner(hypermodel, tuner="random", max_trials=10, max_epochs=None, factor=3, objective="val_accuracy",
               directory="runs/tuning", project_name=None, seed=None, overwrite=False, **kwargs):
    """Builds a seeded keras-tuner tuner for a `LayerwiseHyperModel`.

    Args:
        hypermodel: a `LayerwiseHyperModel`.
        tuner: `"random"` (`RandomSearch`), `"hyperband"` or `"bayesian"`
            (`BayesianOptimization`).
        max_trials: int, the number of trials (for Hyperband, a cap on the
            trials its brackets would run).
        max_epochs: Hyperband only: the largest number of epochs *per stage*
            a trial gets (default: the configuration's largest stage epochs,
            at least 2).
        factor: Hyperband's reduction factor.
        objective: the metric to maximise or minimise (keras-tuner infers
            the direction), `"val_accuracy"` by default.
        directory, project_name: the search is kept in
            `directory/project_name` (default project: the hypermodel's name).
        seed: int, the oracle's seed (default: the hypermodel's seed).
        overwrite: keras-tuner's flag: `False` resumes an existing search of
            that folder, `True` deletes it first.
        **kwargs: other `keras_tuner.Tuner` arguments.

    Returns:
        The tuner.

    Example:

    >>> from layerwise_keras.runs.config import load_config
    >>> hypermodel = LayerwiseHyperModel(load_config("hierarchical_2level"), (9, 9, 1), 4,
    ...                                  space={"width": [8, 16]})
    >>> tuner = make_tuner(hypermodel, "hyperband", max_trials=6, max_epochs=3, directory=tmp_dir)
    >>> type(tuner).__name__, tuner.oracle.max_trials, os.path.relpath(tuner.project_dir, tmp_dir)
    ('Hyperband', 6, 'hierarchical_2level')
    """
    if tuner not in TUNERS:
        raise ValueError(f"make_tuner: tuner must be one of {TUNERS}, got {tuner!r}.")
    if not is_int(max_trials) or max_trials < 1:
        raise ValueError(f"make_tuner: max_trials must be a positive integer, got {max_trials!r}.")
    seed = hypermodel.seed if seed is None else int(seed)
    common = dict(objective=objective, seed=seed, directory=directory,
                  project_name=project_name or hypermodel.name, overwrite=overwrite, **kwargs)
    if tuner == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if tuner == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if getattr(hypermodel, "tunes_epochs", False):
        raise ValueError(
            "make_tuner: Hyperband sets the epochs of every stage from its budget (max_epochs); "
            "leave 'epochs' out of the search space."
        )
    if max_epochs is None:
        max_epochs = max(2, max(s["epochs"] for s in hypermodel.config["stages"]))
    if not is_int(max_epochs) or max_epochs < 1:
        raise ValueError(f"make_tuner: max_epochs must be a positive integer, got {max_epochs!r}.")
    result = keras_tuner.Hyperband(hypermodel, max_epochs=max_epochs, factor=factor, **common)
    if not result.oracle.trials:
        result.oracle.max_trials = max_trials
    return result


class TuningResult:
    """What `tune` returns.

    Attributes:
        tuner: the keras-tuner tuner (`tuner.get_best_models(1)[0]` reloads
            the best trial's grown model).
        hypermodel: the `LayerwiseHyperModel`.
        splits: the data (`pipeline.load_splits`).
        best_trial: the best `keras_tuner` trial.
        best_hyperparameters: dict of the best trial's values.
        best_score: float, its objective value (e.g. final val accuracy).
        best_config: the layerwise configuration of the best trial.
        best_config_path: where `best_config` was written.
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        return (f"TuningResult(best_score={self.best_score!r}, best_hyperparameters={self.best_hyperparameters!r}, "
                f"best_config_path={self.best_config_path!r})")


def check_tuner_folder(directory, project_name, overwrite=False):
    """Refuses an existing non-empty search folder unless `overwrite`.

    keras-tuner silently resumes a search found in its folder; a new search
    must not pick up someone else's trials, so an existing non-empty
    `directory/project_name` is an error unless `overwrite` (which deletes
    it).

    Args:
        directory: the tuner's `directory`.
        project_name: the tuner's `project_name`.
        overwrite: allow replacing it.

    Returns:
        The project folder's path.

    Example:

    >>> os.path.relpath(check_tuner_folder(tmp_dir, "digits"), tmp_dir)
    'digits'
    >>> os.makedirs(os.path.join(tmp_dir, "digits", "trial_0"))  # an earlier search
    >>> check_tuner_folder(tmp_dir, "digits")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: Tuner folder .../digits is not empty (an earlier search); refusing to resume or replace it. ...
    """
    path = os.path.join(directory, project_name)
    for folder in (directory, path):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise FileExistsError(f"{folder} exists and is not a folder.")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise FileExistsError(
            f"Tuner folder {path} is not empty (an earlier search); refusing to resume or replace it. "
            "Pass --overwrite (overwrite=True) to delete it and start a new search, or choose another "
            "--directory / --project-name."
        )
    return path


def tune(config, space=None, tuner="random", max_trials=10, max_epochs=None, factor=3,
         objective="val_accuracy", directory="runs/tuning", project_name=None, seed=None, overwrite=False,
         splits=None, verbose=1):
    """Runs a whole search for a configuration and writes the best configuration.

    Loads the configuration's dataset (`pipeline.load_splits`), searches the
    space with a seeded tuner, and writes the best trial's configuration to
    `directory/project_name/best_config.json` (a file `layerwise-keras train
    --config` accepts; training it with the same seed reproduces the trial).

    Args:
        config: a configuration dict, or a bundled name / JSON path.
        space: a search-space dict, or `None` for `default_space(config)`
            (without `epochs` under Hyperband).
        tuner: `"random"`, `"hyperband"` or `"bayesian"`.
        max_trials, max_epochs, factor, objective: see `make_tuner`.
        directory, project_name: the search folder (project default: the
            configuration's name); an existing non-empty one is refused
            unless `overwrite`.
        seed: int overriding the configuration's seed (data, trials, oracle).
        overwrite: delete an earlier search in that folder first.
        splits: the data (`pipeline.load_splits`'s dict), default: loaded
            from the configuration's `dataset` with `seed`.
        verbose: keras-tuner's and `fit`'s verbosity.

    Returns:
        A `TuningResult`.

    Example:

    `config`: a small configuration named `tiny_digits` (128 training
    images, three one-epoch stages); `layerwise-keras tune` gives a bundled
    name such as `"hierarchical_2level"`.

    >>> result = tune(config, space={"width": [8, 16]}, max_trials=2, directory=tmp_dir, verbose=0)
    >>> os.path.relpath(result.best_config_path, tmp_dir)
    'tiny_digits/best_config.json'
    >>> sorted(result.best_hyperparameters), len(result.tuner.oracle.trials)
    (['stage1_width', 'stage2_width', 'stage3_width'], 2)
    """

    config = load_config(config) if isinstance(config, str) else validate_config(config)
    seed = int(config.get("seed", 0) if seed is None else seed)
    config["seed"] = seed
    if tuner not in TUNERS:
        raise ValueError(f"tune: tuner must be one of {TUNERS}, got {tuner!r}.")
    project_name = project_name or config.get("name") or "layerwise"
    project = check_tuner_folder(directory, project_name, overwrite)
    if splits is None:
        splits = load_splits(config["dataset"], seed=seed)
    if space is None:
        space = default_space(config, tune_epochs=tuner != "hyperband")
    hypermodel = LayerwiseHyperModel(config, splits["x_train"].shape[1:], splits["num_classes"], space=space,
                                     kmeans_data=splits["x_train"], seed=seed)
    search = make_tuner(hypermodel, tuner, max_trials=max_trials, max_epochs=max_epochs, factor=factor,
                        objective=objective, directory=directory, project_name=project_name, seed=seed,
                        overwrite=overwrite)
    search.search(splits["x_train"], splits["y_train"], validation_data=(splits["x_val"], splits["y_val"]),
                  verbose=verbose)
    best = search.oracle.get_best_trials(1)
    if not best:
        raise RuntimeError(f"tune: no trial completed in {project}; see the trial messages there.")
    best = best[0]
    best_config = hypermodel.config_for(best.hyperparameters)
    best_config["name"] = f"{project_name}_tuned"
    best_config["description"] = (
        f"Best of {len(search.oracle.trials)} {tuner} trials (trial {best.trial_id}, "
        f"{objective} {best.score:.6g}) searched from configuration {config.get('name')!r}."
    )
    path = os.path.join(project, BEST_CONFIG)
    with open(path, "w") as f:
        json.dump(best_config, f, indent=2)
    values = {k: v for k, v in best.hyperparameters.values.items()
              if not k.startswith("tuner/") or k == "tuner/epochs"}
    return TuningResult(tuner=search, hypermodel=hypermodel, splits=splits, best_trial=best,
                        best_hyperparameters=values, best_score=float(best.score), best_config=best_config,
                        best_config_path=path)
