"""Code probes: what a paper-order stage's clustering step cost, as a head trained on its frozen code.

`probe_codes` trains a fresh readout on each clustered stage's code;
`add_probe_figures` adds the figures to a run's per-stage figures (config
`probe_epochs`, `benchmarks/cifar10.py --probe-epochs`).
"""

import time

import keras

from layerwise_keras.growth.builder import code_probe_model
from layerwise_keras.growth.stage import Stage
from layerwise_keras.runs.training import compile_model, lr_schedule, train_data


def probe_codes(model, config, splits, seed=0, verbose=0):
    """Trains a fresh readout on each paper-order stage's frozen code: what its clustering step cost.

    For every clustered stage `n` in the paper's order (train, then cluster
    the embeddings), `growth.builder.code_probe_model` puts a new readout of
    the stage's kind on the grown model's frozen layers up to stage `n`'s
    code and trains it for `config["probe_epochs"]` epochs on the training
    data (same optimiser, batch size, augmentation and stage `schedule`);
    the grown model is not changed. A cluster-first stage
    (`Stage(cluster="patches")`) is skipped: its own accuracy is already a
    head trained on its code.

    Args:
        model: the grown `keras.Sequential`.
        config: a validated configuration dict with `probe_epochs` >= 1.
        splits: the dict of `load_splits`.
        seed: int, seeds the readouts and shuffling.
        verbose: Keras verbosity for `fit`.

    Returns:
        A dict `{n: figures}` with `code_probe_val_accuracy` (validation
        accuracy after the last probe epoch), `code_probe_epochs` and
        `code_probe_seconds` (`add_probe_figures` puts them into the stage
        figures).

    Example:

    `model`: a model grown with `config`'s stages (two clustered, as `grow`
    does); `config`, `splits`: a small configuration and its data.

    >>> probes = probe_codes(model, dict(config, probe_epochs=1), splits)
    >>> sorted(probes), sorted(probes[1])
    ([1, 2], ['code_probe_epochs', 'code_probe_seconds', 'code_probe_val_accuracy'])
    """
    epochs = int(config.get("probe_epochs") or 0)
    if epochs < 1:
        raise ValueError(f"probe_codes: config probe_epochs must be >= 1, got {config.get('probe_epochs')!r}.")
    stages = [Stage.from_config(s) for s in config["stages"]]
    results = {}
    for n, stage in enumerate(stages[:-1], start=1):
        if stage.cluster == "patches":
            continue
        keras.utils.set_random_seed(seed + n)
        probe = compile_model(code_probe_model(model, stage, n, splits["num_classes"], seed=seed), config)
        callbacks = [] if stage.schedule is None else [lr_schedule(probe, stage, epochs)]
        train, val = train_data(config, splits, seed)
        start = time.perf_counter()
        history = probe.fit(train, epochs=epochs, validation_data=val, callbacks=callbacks, verbose=verbose,
                            shuffle=False)  # `train` reshuffles itself every epoch
        accuracy = float(history.history["val_accuracy"][-1])
        results[n] = {"code_probe_val_accuracy": accuracy, "code_probe_epochs": epochs,
                      "code_probe_seconds": time.perf_counter() - start}
    return results


def add_probe_figures(stages, probes):
    """Puts `probe_codes` figures into per-stage figures, with `clustering_cost`.

    Args:
        stages: list of per-stage figure dicts (stage `n` at index `n - 1`),
            updated in place.
        probes: the dict `probe_codes` returns.

    Returns:
        `stages`; `clustering_cost` is the stage's `val_accuracy` (before
        clustering) minus `code_probe_val_accuracy`, where the stage has one.

    Example:

    Typically `add_probe_figures(figures["stages"], probe_codes(model,
    config, splits))` after `grow`:

    >>> stages = [{"stage": 1, "val_accuracy": 0.9}, {"stage": 2}]
    >>> probes = {1: {"code_probe_val_accuracy": 0.85, "code_probe_epochs": 2, "code_probe_seconds": 1.5},
    ...           2: {"code_probe_val_accuracy": 0.5, "code_probe_epochs": 2, "code_probe_seconds": 1.5}}
    >>> stages = add_probe_figures(stages, probes)
    >>> round(stages[0]["clustering_cost"], 6), "clustering_cost" in stages[1]
    (0.05, False)
    """
    for n, result in probes.items():
        stage = stages[n - 1]
        stage.update(result)
        if stage.get("val_accuracy") is not None:
            stage["clustering_cost"] = stage["val_accuracy"] - result["code_probe_val_accuracy"]
    return stages
