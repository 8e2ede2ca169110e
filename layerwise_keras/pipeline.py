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

import copy
import datetime
import json
import os
import platform
import time

import keras
import numpy as np

from layerwise_keras import datasets
from layerwise_keras.config import validate_config
from layerwise_keras.export import save_artifacts
from layerwise_keras.metrics import stage_purities
from layerwise_keras.baseline import end_to_end_model
from layerwise_keras.trainer import LayerwiseTrainer, Stage, assignments, input_model

ARTIFACTS = ("model.keras", "saved_model", "metrics.json", "config.json")
CHECKPOINT = "checkpoint"  # growth checkpoints, deleted once the artifacts are written
# Files made later from a run's model (`layerwise-keras export` / `report`): stale once it is replaced.
DERIVED_ARTIFACTS = ("model.tflite", "model_int8.tflite", "model.onnx", "report")


def _remove_stale_artifacts(output_dir):
    """With overwrite, removes what the replaced model left: its artifacts and the files derived from it."""
    import shutil

    for name in ARTIFACTS + DERIVED_ARTIFACTS:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def load_splits(dataset_config, seed=0):
    """Builds train/validation/test arrays for a configuration's dataset.

    Args:
        dataset_config: the config's `dataset` dict: `name`
            (`"hierarchical_digits"` or `"hierarchical"`), split sizes
            `train`, `val`, `test`, and `options` passed to the generator
            (`hierarchical_digits` keywords, or `HierarchicalModel`
            arguments for `"hierarchical"`).
        seed: int, the sampling seed.

    Returns:
        A dict with `x_train, y_train, x_val, y_val, x_test, y_test`,
        `latents_test` (list of int arrays, or None), and `num_classes`.

    Example:

    >>> splits = load_splits({"name": "hierarchical_digits", "train": 100, "val": 10, "test": 10})
    """
    name = dataset_config["name"]
    if name in REAL_DATASETS:
        return _real_splits(dataset_config, seed)
    try:
        sizes = [int(dataset_config.get(k, d)) for k, d in (("train", 6000), ("val", 1000), ("test", 2000))]
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"dataset: train/val/test sizes must be integers >= 1: {err}") from err
    if min(sizes) < 1:
        raise ValueError(f"dataset: train/val/test sizes must be >= 1, got {sizes}.")
    options = dict(dataset_config.get("options", {}))
    n = sum(sizes)
    if name not in ("hierarchical_digits", "hierarchical"):
        raise ValueError(
            f"dataset: unknown name {name!r}; expected 'hierarchical_digits', 'hierarchical' or one of {REAL_DATASETS}."
        )
    try:
        if name == "hierarchical_digits":
            images, labels, latents = datasets.hierarchical_digits(n, seed=seed, **options)
            num_classes = 10
        else:
            model = datasets.HierarchicalModel(**options)
            images, labels, latents = model.sample(n, seed=seed)
            num_classes = model.num_labels
    except TypeError as err:  # unknown or ill-typed options
        raise ValueError(f"dataset {name!r}: bad options {options}: {err}") from err
    a, b = sizes[0], sizes[0] + sizes[1]
    return {
        "x_train": images[:a], "y_train": labels[:a],
        "x_val": images[a:b], "y_val": labels[a:b],
        "x_test": images[b:], "y_test": labels[b:],
        "latents_test": [lat[b:] for lat in latents],
        "num_classes": num_classes,
        "data_label": name,
    }


REAL_DATASETS = ("cifar10", "mnist", "fashion_mnist")
REAL_OPTIONS = ("data_dir", "normalize", "test_split", "augment")


def _real_splits(dataset_config, seed):
    """Splits of a real dataset: train/val from the official train set, test from `test_split`.

    `val` images are the last ones of the official train set (held out, never
    trained on); `train` are the first ones. `test` (default: all) is a seeded
    random subset of the test split when smaller than it (the local CIFAR-10
    test file is class-major, so a prefix would be one class).
    """
    name = dataset_config["name"]
    options = dict(dataset_config.get("options", {}))
    unknown = sorted(set(options) - set(REAL_OPTIONS))
    if unknown:
        raise ValueError(f"dataset {name!r}: unknown options {unknown}; expected a subset of {list(REAL_OPTIONS)}.")
    data_dir = options.get("data_dir")
    normalize = options.get("normalize", "unit")
    test_split = options.get("test_split", "test")
    x_all, y_all = datasets.load_arrays(name, "train", data_dir)
    x_test, y_test = datasets.load_arrays(name, test_split, data_dir)
    n_val = int(dataset_config.get("val", 5000))
    n_train = int(dataset_config.get("train", len(x_all) - n_val))
    n_test = int(dataset_config.get("test", len(x_test)))
    if min(n_train, n_val, n_test) < 1 or n_train + n_val > len(x_all) or n_test > len(x_test):
        raise ValueError(
            f"dataset {name!r}: sizes train={n_train}, val={n_val}, test={n_test} do not fit "
            f"{len(x_all)} train and {len(x_test)} {test_split} images."
        )
    if n_test < len(x_test):
        keep = np.sort(np.random.default_rng(seed).choice(len(x_test), n_test, replace=False))
        x_test, y_test = x_test[keep], y_test[keep]

    def norm(x):
        return datasets.normalize_images(x, normalize, name=name, data_dir=data_dir)

    label = name
    folder = datasets._data_dir(data_dir)
    if name == "cifar10" and folder is not None:
        from layerwise_keras.local_data import _resolve_folder

        if os.path.isfile(os.path.join(_resolve_folder(name, folder), "train_a.npz")):
            label = "CIFAR-10 (JPEG re-encoded local copy)"
            if test_split == "test_exact":
                label += "; test: its 1,000 byte-exact official test images"
    return {
        "x_train": norm(x_all[:n_train]), "y_train": y_all[:n_train],
        "x_val": norm(x_all[len(x_all) - n_val:]), "y_val": y_all[len(x_all) - n_val:],
        "x_test": norm(x_test), "y_test": y_test,
        "latents_test": None,
        "num_classes": 10,
        "data_label": label,
    }


def check_output_dir(output_dir, overwrite=False, resume=False):
    """Refuses an existing non-empty folder unless `overwrite` (before any training).

    Args:
        output_dir: the folder artifacts go to.
        overwrite: allow replacing this job's artifacts in it.
        resume: the folder must hold an interrupted run's checkpoint, which
            the run continues.

    Returns:
        None.

    Example:

    >>> check_output_dir("saved_models/new_run")
    """
    from layerwise_keras.checkpoint import has_checkpoint

    checkpoint = os.path.join(output_dir, CHECKPOINT)
    if resume:
        if overwrite:
            raise ValueError("--resume and --overwrite contradict each other: resume keeps the run, overwrite restarts it.")
        if not has_checkpoint(checkpoint):
            raise FileNotFoundError(
                f"nothing to resume: {checkpoint} holds no checkpoint (a run writes one at every epoch end; "
                "it is deleted when the run completes)."
            )
    elif os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise FileExistsError(f"{output_dir} exists and is not a folder.")
        if has_checkpoint(checkpoint) and not overwrite:
            raise FileExistsError(
                f"{output_dir} holds an interrupted run's checkpoint; pass --resume (resume=True) to continue it, "
                "or --overwrite to start over."
            )
        if os.listdir(output_dir) and not overwrite:
            raise FileExistsError(
                f"Output folder {output_dir} is not empty; refusing to overwrite it "
                "(pass --overwrite, or overwrite=True, to replace its artifacts)."
            )
    parent = os.path.dirname(os.path.abspath(output_dir))
    if not os.access(parent if not os.path.exists(output_dir) else output_dir, os.W_OK):
        raise PermissionError(f"Output folder {output_dir} is not writable.")


def _machine():
    backend = keras.backend.backend()
    try:
        import tensorflow as tf
    except ImportError:  # a JAX/PyTorch-only install
        tf = None
    if backend == "jax":
        import jax

        gpus = [str(d.device_kind) for d in jax.devices() if d.platform == "gpu"]
    elif tf is not None:
        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    else:
        gpus = []
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__ if tf is not None else None,
        "keras": keras.__version__,
        "backend": backend,
        "gpus": gpus,
    }


def _compile(model, config):
    model.compile(
        # a copy: keras.optimizers.get rewrites the dict it is given (lower-cases class_name)
        optimizer=keras.optimizers.get(copy.deepcopy(config["optimizer"])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _train_data(config, splits, seed, epoch=0, arrays=False):
    """Training and validation batches.

    `tf.data` on TensorFlow; NumPy `ArrayBatches` on other backends, to
    augment, and with `arrays=True` (checkpointed runs: its batches depend on
    the epoch only, so a resumed run sees the same ones).
    """
    batch_size = config["batch_size"]
    augment = bool(config["dataset"].get("options", {}).get("augment", False))
    if keras.backend.backend() == "tensorflow" and not augment and not arrays:
        train = datasets.from_arrays(
            splits["x_train"], splits["y_train"], batch_size=batch_size, shuffle=True, seed=seed
        )
        return train, datasets.from_arrays(splits["x_val"], splits["y_val"], batch_size=batch_size)
    train = datasets.ArrayBatches(
        splits["x_train"], splits["y_train"], batch_size=batch_size, shuffle=True, augment=augment, seed=seed,
        epoch=epoch,
    )
    return train, (splits["x_val"], splits["y_val"])


def _fit_and_test(model, config, splits, seed, callbacks, epochs, verbose, initial_epoch=0, arrays=False):
    train, val = _train_data(config, splits, seed, epoch=initial_epoch, arrays=arrays)
    start = time.perf_counter()
    history = model.fit(
        train, epochs=epochs, validation_data=val, callbacks=callbacks, verbose=verbose,
        initial_epoch=initial_epoch,
        shuffle=False,  # `train` reshuffles itself every epoch
    )
    train_seconds = time.perf_counter() - start
    logits = model.predict(splits["x_test"], batch_size=256, verbose=0)
    test_accuracy = float((logits.argmax(-1) == splits["y_test"]).mean())
    return history, train_seconds, test_accuracy


HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "stage")


def _epoch_history(per_key):
    """The per-epoch lists (loss, accuracy, val_*, stage) of a `History.history`-like dict, as floats/ints."""
    return {
        k: [int(v) if k == "stage" else float(v) for v in per_key[k]]
        for k in HISTORY_KEYS if k in per_key
    }


def check_splits(splits):
    """Validates a splits dict (`load_splits`' layout) before any training.

    Args:
        splits: dict with `x_train, y_train, x_val, y_val, x_test, y_test`
            and `num_classes`.

    Returns:
        None.

    Raises:
        ValueError: naming the array: a missing key, images that are not
            finite real `[n, H, W, C]` arrays, image shapes that differ
            between splits, or labels that are not class ids in
            `0..num_classes - 1` (one per image).

    Example:

    >>> check_splits(load_splits({"name": "hierarchical_digits", "train": 100, "val": 10, "test": 10}))
    """
    missing = [k for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "num_classes")
               if k not in splits]
    if missing:
        raise ValueError(f"splits: missing {missing}.")
    num_classes = splits["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"splits: num_classes must be an integer >= 2, got {num_classes!r}.")
    shapes = {}
    for part in ("train", "val", "test"):
        x = datasets.check_images(splits[f"x_{part}"], name=f"x_{part}")
        datasets.check_labels(splits[f"y_{part}"], len(x), name=f"y_{part}", num_classes=int(num_classes))
        shapes[part] = x.shape[1:]
    if len(set(shapes.values())) != 1:
        raise ValueError(f"splits: the image shapes differ between splits: {shapes}.")


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
            order depends on the epoch only); not with `"cache": true`.
        resume: continue from the latest checkpoint in `checkpoint_dir`
            (which must exist and hold this same `config`).
        checkpoint_every: int >= 1, write the checkpoint after every this
            many epochs (and at every stage end and the last epoch).

    Returns:
        `(model, figures)`: the grown `keras.Sequential`, and a dict with
        `test_accuracy`, `stages` (per-stage figures, with `test_purity`
        where the dataset has true latents), `train_seconds` and `history`
        (per-epoch lists `loss`, `accuracy`, `val_loss`, `val_accuracy` and
        `stage`).

    Example:

    >>> config = load_config("hierarchical_digits")
    >>> model, figures = grow(config, load_splits(config["dataset"]))
    """
    check_splits(splits)
    keras.utils.set_random_seed(seed)
    stages = [Stage.from_config(s) for s in config["stages"]]
    if resume and checkpoint_dir is None:
        raise ValueError("grow: resume=True needs the checkpoint_dir to resume from.")
    if config.get("cache"):
        if checkpoint_dir is not None:
            raise ValueError(
                "grow: checkpoints (and --resume) are not supported with \"cache\": true; the cached path grows "
                "stage by stage outside one fit. Drop \"cache\" to get a resumable run."
            )
        if callbacks:
            raise ValueError("grow: extra callbacks are not supported with \"cache\": true.")
        if config["dataset"].get("options", {}).get("augment"):
            raise ValueError(
                "grow: \"cache\": true cannot be combined with dataset option \"augment\": augmented images "
                "change every epoch, so their cluster maps cannot be cached; drop one of the two."
            )
        return _grow_cached(config, splits, stages, seed, verbose)
    trainer = LayerwiseTrainer(
        stages, splits["num_classes"], kmeans_data=splits["x_train"], seed=seed, verbose=verbose
    )
    initial_epoch, past = 0, ()
    if resume:
        from layerwise_keras.checkpoint import read_checkpoint

        model, state = read_checkpoint(checkpoint_dir)
        if state["config"] != json.loads(json.dumps(config)):
            raise ValueError(
                f"the checkpoint in {checkpoint_dir} belongs to a run with a different configuration; resume with "
                "the same config (and seed) or start over with --overwrite."
            )
        trainer.restore(state["stage_results"], state["epochs_done"])
        initial_epoch, past = state["epochs_done"], state["history"]
    else:
        model = _compile(input_model(splits["x_train"].shape[1:], name=config.get("name") or "layerwise"), config)
        trainer.begin(model)  # the JAX/PyTorch trainers need stage 1 before fit
    extra = list(callbacks)
    if checkpoint_dir is not None:
        from layerwise_keras.checkpoint import GrowthCheckpoint

        extra.append(GrowthCheckpoint(checkpoint_dir, trainer, config, history=past, every=checkpoint_every))
    history, train_seconds, test_accuracy = _fit_and_test(
        model, config, splits, seed, [trainer, *extra], trainer.total_epochs, verbose,
        initial_epoch=initial_epoch, arrays=checkpoint_dir is not None,
    )
    if checkpoint_dir is not None:
        per_epoch = extra[-1].history  # every epoch, also those before a resume
        epoch_history = _epoch_history(
            {k: [h[k] for h in per_epoch] for k in HISTORY_KEYS if per_epoch and all(k in h for h in per_epoch)}
        )
    else:
        epoch_history = _epoch_history(history.history)
    figures = _figures(model, splits, trainer.stage_results, test_accuracy, train_seconds, epoch_history)
    if resume:
        figures["resumed_from_epoch"] = initial_epoch
    return model, figures


def _grow_cached(config, splits, stages, seed, verbose):
    from layerwise_keras.cached import grow_cached

    start = time.perf_counter()
    model, results, history = grow_cached(
        stages, splits["x_train"], splits["y_train"], splits["num_classes"], config["optimizer"],
        config["batch_size"], x_val=splits["x_val"], y_val=splits["y_val"], seed=seed, verbose=verbose,
        name=config.get("name") or "layerwise",
    )
    train_seconds = time.perf_counter() - start
    logits = model.predict(splits["x_test"], batch_size=256, verbose=0)
    test_accuracy = float((logits.argmax(-1) == splits["y_test"]).mean())
    return model, _figures(model, splits, results, test_accuracy, train_seconds, history)


def _figures(model, splits, stage_results, test_accuracy, train_seconds, history):
    per_stage = [dict(r) for r in stage_results]
    if splits["latents_test"] is not None and len(per_stage) > 1:
        maps = assignments(model, splits["x_test"])
        for result, value in zip(per_stage, stage_purities(maps, splits["latents_test"])):
            result["test_purity"] = value
    return {
        "test_accuracy": test_accuracy, "stages": per_stage, "train_seconds": train_seconds,
        "history": history,
    }


def end_to_end(config, splits, seed=0, verbose=1, callbacks=()):
    """Trains the same network end to end by SGD, without clustering: the baseline.

    The network is `layerwise_keras.baseline.end_to_end_model` of the
    configuration's stages; it trains for the stages' total epochs with the
    same optimiser, batch size and data.

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

    >>> model, figures = end_to_end(config, splits)
    """
    check_splits(splits)
    keras.utils.set_random_seed(seed)
    stages = [Stage.from_config(s) for s in config["stages"]]
    model = _compile(
        end_to_end_model(stages, splits["x_train"].shape[1:], splits["num_classes"], seed=seed), config
    )
    epochs = sum(s.epochs for s in stages)
    history, train_seconds, test_accuracy = _fit_and_test(
        model, config, splits, seed, list(callbacks), epochs, verbose
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
        config: a configuration dict (see `layerwise_keras.config`).
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
    into `output_dir/checkpoint/` (`layerwise_keras.checkpoint`), except with
    `"cache": true`. If the process dies, `run(..., resume=True)`
    (`train --resume`) continues from the last checkpointed epoch; the grown
    model then equals that of an
    uninterrupted run with the same seed. Without `resume`, a folder holding a
    checkpoint is refused (unless `overwrite`, which deletes it). The
    checkpoint is deleted once the artifacts are written. With `baseline`, the
    baseline is not checkpointed: a resumed run trains it from the start.

    Returns:
        The metrics dict written to `metrics.json` (`resumed_from_epoch` when
        resumed; `train_seconds` then counts this process's training only).

    Example:

    >>> metrics = run(load_config("hierarchical_digits"), "saved_models/digits")
    >>> metrics["test_accuracy"]
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every (--checkpoint-every) must be an integer >= 1, got {checkpoint_every!r}.")
    config, seed, splits = _prepare(config, output_dir, overwrite, seed, resume)
    checkpoint_dir = None if config.get("cache") else os.path.join(output_dir, CHECKPOINT)
    if resume and checkpoint_dir is None:
        raise ValueError("resume: runs with \"cache\": true are not checkpointed, so they cannot be resumed.")
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
        import shutil

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

    >>> metrics = run_baseline(load_config("hierarchical_digits"), "saved_models/digits_e2e")
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
        import shutil

        shutil.rmtree(os.path.join(output_dir, CHECKPOINT), ignore_errors=True)
    return config, seed, load_splits(config["dataset"], seed=seed)


def _write_run(model, figures, extra, config, splits, seed, output_dir, overwrite):
    os.makedirs(output_dir, exist_ok=True)
    if overwrite:
        _remove_stale_artifacts(output_dir)
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
        "machine": _machine(),
    }
    for name, payload in (("metrics.json", metrics), ("config.json", config)):
        path = os.path.join(output_dir, name)
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} already exists; refusing to overwrite it.")
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
    return metrics
