"""Train / validation / test splits of a configuration's dataset.
"""

import os

import numpy as np

from layerwise_keras.datasets.digits import hierarchical_digits
from layerwise_keras.datasets.generative import HierarchicalModel
from layerwise_keras.datasets.local import resolve_folder
from layerwise_keras.datasets.real import resolve_data_dir, load_arrays, normalize_images


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
            images, labels, latents = hierarchical_digits(n, seed=seed, **options)
            num_classes = 10
        else:
            model = HierarchicalModel(**options)
            images, labels, latents = model.sample(n, seed=seed)
            num_classes = model.num_labels
    except (TypeError, ValueError) as err:  # unknown, ill-typed or out-of-range options
        raise ValueError(f"dataset.options of {name!r}: bad options {options}: {err}") from err
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
        raise ValueError(f"dataset.options of {name!r}: unknown options {unknown}; expected a subset of "
                         f"{list(REAL_OPTIONS)}.")
    data_dir = options.get("data_dir")
    normalize = options.get("normalize", "unit")
    test_split = options.get("test_split", "test")
    x_all, y_all = load_arrays(name, "train", data_dir)
    x_test, y_test = load_arrays(name, test_split, data_dir)
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
        return normalize_images(x, normalize, name=name, data_dir=data_dir)

    label = name
    folder = resolve_data_dir(data_dir)
    if name == "cifar10" and folder is not None:
        if os.path.isfile(os.path.join(resolve_folder(name, folder), "train_a.npz")):
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
