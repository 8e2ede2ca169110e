"""`layerwise-keras report`: all the pictures of a run folder.
"""

import json
import os

import numpy as np

from layerwise_keras.datasets.grids import save_sample_grid
from layerwise_keras.datasets.splits import load_splits
from layerwise_keras.monitoring.plots import import_matplotlib, plot_cluster_atlas, plot_confusion_matrix, plot_stage_accuracy
from layerwise_keras.saving import load_keras_file


REPORT_DIR = "report"


def report_paths(run_dir, output=None):
    """Returns the PNG paths `write_report` writes for a `layerwise-keras train` folder.

    Args:
        run_dir: the folder `layerwise-keras train --output` wrote.
        output: the folder for the PNGs (default `run_dir/report`).

    Returns:
        A dict: `accuracy`, `atlas` (list, one per clustered stage, in
        stage order), `confusion`, `samples`.

    Example:

    `run_dir`: the output folder of a run (`runs.run`) whose stages 1 and
    2 are clustered.

    >>> paths = report_paths(run_dir)
    >>> os.path.relpath(paths["confusion"], run_dir), [os.path.relpath(p, run_dir) for p in paths["atlas"]]
    ('report/confusion.png', ['report/cluster_atlas_stage1.png', 'report/cluster_atlas_stage2.png'])
    """
    output = os.fspath(output) if output is not None else os.path.join(run_dir, REPORT_DIR)
    config = _read_json(os.path.join(run_dir, "config.json"))
    clustered = [i for i, s in enumerate(config.get("stages", []), start=1) if s.get("clusters")]
    return {
        "accuracy": os.path.join(output, "accuracy.png"),
        "atlas": [os.path.join(output, f"cluster_atlas_stage{i}.png") for i in clustered],
        "confusion": os.path.join(output, "confusion.png"),
        "samples": os.path.join(output, "samples.png"),
    }


def _read_json(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found (is its folder the output of `layerwise-keras train`?).")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"Cannot read {path}: {err}") from err


def write_report(run_dir, output=None, overwrite=False, atlas_images=1000, per_cluster=8):
    """Writes the pictures of a `layerwise-keras train` run as PNGs.

    Loads `model.keras` with plain Keras, regenerates the run's test split
    from its `config.json` (`pipeline.load_splits(config["dataset"],
    seed=config["seed"])`) and writes `accuracy.png`
    (`plot_stage_accuracy` of `metrics.json`), `cluster_atlas_stage{i}.png`
    per clustered stage (`plot_cluster_atlas` on the first `atlas_images`
    test images), `confusion.png` (test split) and `samples.png`
    (`datasets.save_sample_grid` of the test split). Nothing is written if
    any of these PNGs exists, unless `overwrite`.

    Args:
        run_dir: the folder `layerwise-keras train --output` wrote.
        output: the folder for the PNGs (default `run_dir/report`).
        overwrite: replace existing PNGs.
        atlas_images: int >= 1, test images the atlas searches.
        per_cluster: patches per centroid in the atlas.

    Returns:
        The list of PNG paths written.

    Example:

    `run_dir`: the output folder of a run (`runs.run`).

    >>> [os.path.relpath(path, run_dir) for path in write_report(run_dir, atlas_images=100)]
    ['report/accuracy.png', 'report/cluster_atlas_stage1.png', 'report/cluster_atlas_stage2.png',
     'report/confusion.png', 'report/samples.png']
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir} is not a folder; expected the output folder of `layerwise-keras train`.")
    model_path = os.path.join(run_dir, "model.keras")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"{model_path} not found (is {run_dir} the output of `layerwise-keras train`?).")
    metrics = _read_json(os.path.join(run_dir, "metrics.json"))
    config = _read_json(os.path.join(run_dir, "config.json"))
    paths = report_paths(run_dir, output)
    targets = [paths["accuracy"], *paths["atlas"], paths["confusion"], paths["samples"]]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{', '.join(existing)} already exist(s); refusing to overwrite (pass --overwrite to replace them)."
        )
    import_matplotlib()  # fail before the slow part when matplotlib is missing
    model = load_keras_file(model_path)
    splits = load_splits(config["dataset"], seed=config.get("seed", 0))
    x_test, y_test = splits["x_test"], splits["y_test"]
    logits = model.predict(x_test, batch_size=256, verbose=0)
    plot_stage_accuracy(metrics, paths["accuracy"], overwrite=overwrite)
    atlas_stages = [int(os.path.basename(p)[len("cluster_atlas_stage"):-len(".png")]) for p in paths["atlas"]]
    for stage, path in zip(atlas_stages, paths["atlas"]):
        plot_cluster_atlas(model, x_test[:atlas_images], path, stage=stage, per_cluster=per_cluster,
                           overwrite=overwrite)
    plot_confusion_matrix(y_test, np.asarray(logits).argmax(-1), paths["confusion"], overwrite=overwrite,
                          class_names=list(range(splits["num_classes"])))
    save_sample_grid(x_test, y_test, paths["samples"], per_label=10, scale=3, overwrite=overwrite)
    return targets
