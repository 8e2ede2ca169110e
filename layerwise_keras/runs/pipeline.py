"""The main job: grow a model from a configuration, evaluate it, export it.

`run(config, output_dir)` is what `layerwise-keras train` calls. It writes
into `output_dir`:

* `model.keras`: the grown network as a portable Keras model (built-in
  layers and ops only; loads with `keras.saving.load_model`, no
  `layerwise_keras` needed);
* `saved_model/1/`: a TensorFlow SavedModel (`serving_default`: float32
  images -> logits), in the versioned layout TF Serving reads;
* `metrics.json`: test accuracy, per-stage figures (train/validation
  accuracy at the end of the stage, k-means inertia, iterations and time,
  cluster usage, purity against the true latent classes where the dataset
  has them, wall time), the per-epoch `history` (loss, accuracy,
  validation accuracy, stage), with `baseline=True` (`train --baseline`) the
  end-to-end SGD baseline's figures, the machine and library versions;
* `config.json`: the configuration that was run.

It refuses a non-empty `output_dir` unless `overwrite=True`. While it grows,
`output_dir/checkpoint/` holds the latest epoch's checkpoint, so that
`run(..., resume=True)` (`train --resume`) continues a killed run; it is
deleted once the artifacts are written.
"""

import datetime
import json
import os
import shutil
import time
import warnings

import keras

from layerwise_keras.clustering.purity import stage_purities
from layerwise_keras.datasets.checks import check_splits
from layerwise_keras.datasets.splits import load_splits
from layerwise_keras.export.artifacts import save_artifacts
from layerwise_keras.growth.builder import end_to_end_model, input_model
from layerwise_keras.growth.checkpoint import GrowthCheckpoint, read_checkpoint
from layerwise_keras.growth.inspect import assignments
from layerwise_keras.growth.lifecycle import HISTORY_KEYS
from layerwise_keras.growth.stage import Stage
from layerwise_keras.growth.diagnostics import StageWarning, more_steps_hint
from layerwise_keras.growth.names import CACHED, TRAINER
from layerwise_keras.growth.trainer import LayerwiseTrainer
from layerwise_keras.runs.config import validate_config
from layerwise_keras.runs.folders import CHECKPOINT, remove_stale_artifacts, check_output_dir
from layerwise_keras.runs.machine import machine_info
from layerwise_keras.runs.probes import add_probe_figures, probe_codes
from layerwise_keras.runs.training import compile_model, lr_schedule, top1_accuracy, train_data


def _fit_and_test(model, config, splits, seed, callbacks, epochs, verbose, initial_epoch=0, arrays=False, fit=True):
    train, val = train_data(config, splits, seed, epoch=initial_epoch, arrays=arrays)
    start = time.perf_counter()
    history = keras.callbacks.History()
    if fit:
        history = model.fit(
            train, epochs=epochs, validation_data=val, callbacks=callbacks, verbose=verbose,
            initial_epoch=initial_epoch,
            shuffle=False,  # `train` reshuffles itself every epoch
        )
    train_seconds = time.perf_counter() - start
    test_accuracy = top1_accuracy(model.predict(splits["x_test"], batch_size=256, verbose=0), splits["y_test"])
    return history, train_seconds, test_accuracy


# A clustered stage whose test purity is this much below the stage before's gets a warning.
PURITY_DROP = 0.25

def _epoch_history(per_key):
    """The per-epoch lists (loss, accuracy, val_*, stage, learning_rate) of a `History.history`-like dict."""
    return {
        k: [int(v) if k == "stage" else float(v) for v in per_key[k]]
        for k in HISTORY_KEYS if k in per_key
    }


def grow(config, splits, seed=0, verbose=1, callbacks=(), checkpoint_dir=None, resume=False, checkpoint_every=1):
    """Grows and evaluates a model in memory (files only with `checkpoint_dir`).

    Args:
        config: a validated configuration dict.
        splits: the dict of `load_splits`.
        seed: int, seeds weights, shuffling and k-means.
        verbose: Keras verbosity for `fit`.
        callbacks: extra Keras callbacks, run after the `LayerwiseTrainer`
            (not supported with `"cache": true`).
        checkpoint_dir: folder for a `checkpoint.GrowthCheckpoint` at every
            epoch end (training batches then come from `ArrayBatches`, whose
            order depends on the epoch only); with `"cache": true`,
            `grow_cached`'s own checkpoints.
        resume: continue from the latest checkpoint in `checkpoint_dir`
            (which must exist and hold this same `config`).
        checkpoint_every: int >= 1, write the checkpoint after every this
            many epochs (and at every stage end and the last epoch).

    Returns:
        `(model, figures)`: the grown `keras.Sequential`, and a dict with
        `test_accuracy`, `stages` (per-stage figures, with `test_purity`
        where the dataset has true latents), `train_seconds` and `history`
        (per-epoch lists `loss`, `accuracy`, `val_loss`, `val_accuracy` and
        `stage`). With config `probe_epochs` >= 1, each paper-order
        clustered stage's figures also hold `code_probe_val_accuracy`,
        `code_probe_epochs`, `code_probe_seconds` and `clustering_cost`
        (`probe_codes`, run after growth; not in `train_seconds`).

    Example:

    `config`: a small validated configuration (`hierarchical_digits`, 128
    training images, three one-epoch stages, two clustered); `splits`: its
    `load_splits(config["dataset"])`. (A bundled configuration is
    `runs.config.load_config("hierarchical_digits")`.)

    >>> model, figures = grow(config, splits, verbose=0)
    >>> sorted(figures), figures["history"]["stage"]
    (['history', 'stages', 'test_accuracy', 'train_seconds'], [1, 2, 3])
    >>> ["test_purity" in stage for stage in figures["stages"]]  # against the true latent classes
    [True, True, False]
    """
    check_splits(splits)
    keras.utils.set_random_seed(seed)
    stages = [Stage.from_config(s) for s in config["stages"]]
    if resume and checkpoint_dir is None:
        raise ValueError("grow: resume=True needs the checkpoint_dir to resume from.")
    if config.get("cache"):
        if callbacks:
            raise ValueError("grow: extra callbacks are not supported with \"cache\": true.")
        model, figures = _grow_cached(config, splits, stages, seed, verbose, checkpoint_dir, resume, checkpoint_every)
    else:
        model, figures = _grow(config, splits, stages, seed, verbose, callbacks, checkpoint_dir, resume,
                               checkpoint_every)
    if config.get("probe_epochs"):
        add_probe_figures(figures["stages"], probe_codes(model, config, splits, seed=seed, verbose=verbose))
    return model, figures


def _grow(config, splits, stages, seed, verbose, callbacks, checkpoint_dir, resume, checkpoint_every):
    trainer = LayerwiseTrainer(
        stages, splits["num_classes"], kmeans_data=splits["x_train"], seed=seed, verbose=verbose,
        steps_per_epoch=-(-len(splits["x_train"]) // config["batch_size"]),  # the batches of _train_data
    )
    initial_epoch, past = 0, ()
    if resume:
        model, state = read_checkpoint(checkpoint_dir)
        if state["config"] != json.loads(json.dumps(config)):
            raise ValueError(
                f"the checkpoint in {checkpoint_dir} belongs to a run with a different configuration; resume with "
                "the same config (and seed) or start over with --overwrite."
            )
        trainer.restore(state["stage_results"], state["epochs_done"], state.get("trainer"), state["best_weights"])
        initial_epoch, past = state["epochs_done"], state["history"]
    else:
        model = compile_model(input_model(splits["x_train"].shape[1:], name=config.get("name") or "layerwise"), config)
    extra = list(callbacks)
    if checkpoint_dir is not None:
        extra.append(GrowthCheckpoint(checkpoint_dir, trainer, config, history=past, every=checkpoint_every))
    history, train_seconds, test_accuracy = _fit_and_test(
        model, config, splits, seed, [trainer, *extra], trainer.total_epochs, verbose,
        initial_epoch=initial_epoch, arrays=checkpoint_dir is not None,
        fit=not trainer.finished,  # a run killed after its last epoch's checkpoint has nothing left to train
    )
    if checkpoint_dir is not None:
        per_epoch = extra[-1].history  # every epoch, also those before a resume
        epoch_history = _epoch_history(
            {k: [h[k] for h in per_epoch] for k in HISTORY_KEYS if per_epoch and all(k in h for h in per_epoch)}
        )
    else:
        epoch_history = _epoch_history(history.history)
    figures = _figures(model, splits, trainer.stage_results, test_accuracy, train_seconds, epoch_history, TRAINER)
    if resume:
        figures["resumed_from_epoch"] = initial_epoch
    return model, figures


def _grow_cached(config, splits, stages, seed, verbose, checkpoint_dir, resume, checkpoint_every):
    if keras.backend.backend() != "tensorflow":  # before the import, which would only say "no module tensorflow"
        raise ValueError(f"grow: \"cache\": true grows on cached stage inputs, which are TensorFlow-only "
                         f"(growth.stage_inputs), and this is Keras' {keras.backend.backend()} backend: leave "
                         "\"cache\" and \"cache_variants\" out of the config to grow with the LayerwiseTrainer, "
                         "or use the tensorflow backend.")
    from layerwise_keras.growth.cached import grow_cached  # TensorFlow-only: imported when a config asks for it

    start = time.perf_counter()
    model, results, history = grow_cached(
        stages, splits["x_train"], splits["y_train"], splits["num_classes"], config["optimizer"],
        config["batch_size"], x_val=splits["x_val"], y_val=splits["y_val"], seed=seed, verbose=verbose,
        name=config.get("name") or "layerwise",
        augment_variants=config.get("cache_variants"),  # (validate_config: set exactly when augmenting)
        checkpoint_dir=checkpoint_dir, resume=resume, config=json.loads(json.dumps(config)),
        checkpoint_every=checkpoint_every,
    )
    train_seconds = time.perf_counter() - start
    test_accuracy = top1_accuracy(model.predict(splits["x_test"], batch_size=256, verbose=0), splits["y_test"])
    figures = _figures(model, splits, results, test_accuracy, train_seconds, history, CACHED)
    resumed = [r["resumed_from_epoch"] for r in results if "resumed_from_epoch" in r]
    if resumed:
        figures["resumed_from_epoch"] = resumed[0]
    return model, figures


def _figures(model, splits, stage_results, test_accuracy, train_seconds, history, owner):
    per_stage = [dict(r) for r in stage_results]
    if splits.get("latents_test") is not None and len(per_stage) > 1:
        maps = assignments(model, splits["x_test"])
        for result, value in zip(per_stage, stage_purities(maps, splits["latents_test"])):
            result["test_purity"] = value
        for n in range(2, len(maps) + 1):
            before, now = per_stage[n - 2]["test_purity"], per_stage[n - 1]["test_purity"]
            if now < before - PURITY_DROP:
                message = (
                    f"stage {n}'s clusters match the true classes of their level far worse than stage {n - 1}'s "
                    f"(test purity {now:.3f} after {before:.3f}): likely too few gradient steps for stage {n} "
                    f"({more_steps_hint(owner)}) or too few points per cluster."
                )
                per_stage[n - 1].setdefault("warnings", []).append(message)
                warnings.warn(message, StageWarning, stacklevel=4)  # _figures <- _grow* <- grow <- caller
    return {
        "test_accuracy": test_accuracy, "stages": per_stage, "train_seconds": train_seconds,
        "history": history,
    }


def end_to_end(config, splits, seed=0, verbose=1, callbacks=()):
    """Trains the same network end to end by SGD, without clustering: the baseline.

    The network is `layerwise_keras.growth.end_to_end_model` of the
    configuration's stages; it trains with the same optimiser, batch size
    and data, for the stages' budgets added up: their total epochs, or
    total gradient steps for `Stage(steps=...)` budgets (the same number of
    updates the growth makes). When stages stop on convergence
    (`Stage(patience=...)`), the baseline does too: Keras' `EarlyStopping`
    on the first such stage's monitor with the largest patience, best
    weights restored, up to the same total budget. When stages have a
    learning-rate `schedule`, the baseline follows the last such stage's
    schedule over its whole run.

    Args:
        config: a validated configuration dict.
        splits: the dict of `load_splits`.
        seed: int, seeds weights and shuffling.
        verbose: Keras verbosity for `fit`.
        callbacks: extra Keras callbacks for `fit`.

    Returns:
        `(model, figures)` with `test_accuracy`, `train_seconds` and the
        per-epoch validation accuracy `val_accuracy`.

    Example:

    `config`: a small validated configuration (three one-epoch stages);
    `splits`: its `load_splits(config["dataset"])`.

    >>> model, figures = end_to_end(config, splits, verbose=0)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage2_conv', 'stage3_conv', 'stage3_readout_flatten', 'stage3_readout']
    >>> sorted(figures), len(figures["val_accuracy"])
    (['test_accuracy', 'train_seconds', 'val_accuracy'], 3)
    """
    check_splits(splits)
    keras.utils.set_random_seed(seed)
    stages = [Stage.from_config(s) for s in config["stages"]]
    model = compile_model(
        end_to_end_model(stages, splits["x_train"].shape[1:], splits["num_classes"], seed=seed), config
    )
    steps_per_epoch = -(-len(splits["x_train"]) // config["batch_size"])
    epochs = sum(s.budget(steps_per_epoch) for s in stages)
    callbacks = list(callbacks)
    converging = [s for s in stages if s.patience is not None]
    if converging:
        monitor = converging[0].monitor
        if monitor == "auto":
            monitor = "val_loss"  # fit always validates here
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=max(s.patience for s in converging), min_delta=converging[0].min_delta,
            mode="max" if "acc" in monitor else "min", restore_best_weights=True))
    scheduled = [s for s in stages if s.schedule is not None]
    if scheduled:
        callbacks.append(lr_schedule(model, scheduled[-1], epochs))
    history, train_seconds, test_accuracy = _fit_and_test(
        model, config, splits, seed, callbacks, epochs, verbose
    )
    return model, {
        "test_accuracy": test_accuracy,
        "train_seconds": train_seconds,
        "val_accuracy": [float(v) for v in history.history.get("val_accuracy", [])],
    }


def run(config, output_dir, overwrite=False, seed=None, verbose=1, baseline=False, resume=False, checkpoint_every=1):
    """Grows, evaluates and exports a model as a configuration describes.

    `metrics.json` also holds `history`, the per-epoch `loss`, `accuracy`,
    `val_loss`, `val_accuracy` and `stage` of growth; with `baseline=True`,
    `baseline` holds the end-to-end SGD baseline (`end_to_end`, same splits,
    epochs and optimiser): its per-epoch `val_accuracy`, `test_accuracy` and
    `train_seconds`.

    Args:
        config: a configuration dict (see `layerwise_keras.runs.config`).
        output_dir: folder for the artifacts (see the module docstring).
        overwrite: replace this job's artifacts in a non-empty `output_dir`.
        seed: int overriding the configuration's seed.
        verbose: Keras verbosity for `fit` (1 shows progress bars).
        baseline: also train the end-to-end SGD baseline and record it.
        resume: continue an interrupted run of the same config from the
            checkpoint in `output_dir/checkpoint/` (see below).
        checkpoint_every: int >= 1, checkpoint after every this many epochs
            (and at every stage end and the last epoch) instead of every
            epoch; a resumed run repeats the epochs after the last one.

    Growth is checkpointed at every epoch end (or per `checkpoint_every`)
    into `output_dir/checkpoint/` (`layerwise_keras.growth.checkpoint`). If the
    process dies, `run(..., resume=True)` (`train --resume`) continues from the
    last checkpointed epoch; the grown model then equals that of an
    uninterrupted run with the same seed (with `"cache": true`, up to the
    float16 rounding of a later stage's input, cached again on resuming). Without `resume`, a folder holding a
    checkpoint is refused (unless `overwrite`, which deletes it). The
    checkpoint is deleted once the artifacts are written. With `baseline`, the
    baseline is not checkpointed: a resumed run trains it from the start.

    Returns:
        The metrics dict written to `metrics.json` (`resumed_from_epoch` when
        resumed; `train_seconds` then counts this process's training only).

    Example:

    `config`: a small configuration (`hierarchical_digits`, 32 test
    images); `layerwise-keras train` runs a bundled one,
    `runs.config.load_config("hierarchical_digits")`.

    >>> import os
    >>> metrics = run(config, os.path.join(tmp_dir, "digits"), verbose=0)
    >>> sorted(os.listdir(os.path.join(tmp_dir, "digits")))
    ['config.json', 'metrics.json', 'model.keras', 'saved_model']
    >>> metrics["test_examples"], metrics["artifacts"]
    (32, {'keras': 'model.keras', 'saved_model': 'saved_model/1'})
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every (--checkpoint-every) must be an integer >= 1, got {checkpoint_every!r}.")
    config, seed, splits = _prepare(config, output_dir, overwrite, seed, resume)
    checkpoint_dir = os.path.join(output_dir, CHECKPOINT)
    model, figures = grow(config, splits, seed=seed, verbose=verbose, checkpoint_dir=checkpoint_dir, resume=resume,
                          checkpoint_every=checkpoint_every)
    base = end_to_end(config, splits, seed=seed, verbose=verbose)[1] if baseline else None
    metrics = {
        "stages": figures["stages"],
        "history": figures["history"],
    }
    if "resumed_from_epoch" in figures:
        metrics["resumed_from_epoch"] = figures["resumed_from_epoch"]
    if base is not None:
        metrics["baseline"] = {
            "model": "end_to_end: the same convolutions and readout without clustering, trained by SGD",
            "test_accuracy": base["test_accuracy"],
            "val_accuracy": base["val_accuracy"],
            "train_seconds": base["train_seconds"],
        }
    metrics = _write_run(model, figures, metrics, config, splits, seed, output_dir, overwrite or resume)
    if checkpoint_dir is not None:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return metrics


def run_baseline(config, output_dir, overwrite=False, seed=None, verbose=1):
    """Trains a configuration's network end to end by SGD (no clustering) and exports it.

    The same convolutions and readout as the grown network
    (`baseline.end_to_end_model`), the same data, optimiser, batch size and
    total epochs; written like `run` (model.keras, saved_model/1/,
    metrics.json with `"model": "end_to_end"`, config.json).

    Args:
        config: a configuration dict.
        output_dir: folder for the artifacts.
        overwrite: replace this job's artifacts in a non-empty `output_dir`.
        seed: int overriding the configuration's seed.
        verbose: Keras verbosity for `fit`.

    Returns:
        The metrics dict written to `metrics.json`.

    Example:

    `config`: a small configuration (three one-epoch stages).

    >>> import os
    >>> metrics = run_baseline(config, os.path.join(tmp_dir, "digits_e2e"), verbose=0)
    >>> metrics["model"], len(metrics["val_accuracy"]), sorted(os.listdir(os.path.join(tmp_dir, "digits_e2e")))
    ('end_to_end', 3, ['config.json', 'metrics.json', 'model.keras', 'saved_model'])
    """
    config, seed, splits = _prepare(config, output_dir, overwrite, seed)
    model, figures = end_to_end(config, splits, seed=seed, verbose=verbose)
    metrics = {"model": "end_to_end", "val_accuracy": figures["val_accuracy"]}
    return _write_run(model, figures, metrics, config, splits, seed, output_dir, overwrite)


def _prepare(config, output_dir, overwrite, seed, resume=False):
    config = validate_config(config)
    seed = int(config.get("seed", 0) if seed is None else seed)
    config["seed"] = seed
    check_output_dir(output_dir, overwrite, resume)
    if overwrite and not resume:  # the replaced run's artifacts stay until the new ones are written
        shutil.rmtree(os.path.join(output_dir, CHECKPOINT), ignore_errors=True)
    return config, seed, load_splits(config["dataset"], seed=seed)


def _write_run(model, figures, extra, config, splits, seed, output_dir, overwrite):
    os.makedirs(output_dir, exist_ok=True)
    if overwrite:
        remove_stale_artifacts(output_dir)
    paths = save_artifacts(model, output_dir, overwrite=overwrite)
    metrics = {
        "name": config.get("name"),
        "dataset": config["dataset"]["name"],
        "data": splits["data_label"],
        "test_accuracy": figures["test_accuracy"],
        "test_examples": int(len(splits["y_test"])),
        **extra,
        "train_seconds": figures["train_seconds"],
        "seed": seed,
        "artifacts": {k: os.path.relpath(v, output_dir) for k, v in paths.items()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    for name, payload in (("metrics.json", metrics), ("config.json", config)):
        path = os.path.join(output_dir, name)
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} already exists; refusing to overwrite it.")
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
    return metrics
