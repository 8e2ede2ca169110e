"""Pictures of a grown model: accuracy curves, cluster atlases, confusion matrices.

Needs matplotlib (`pip install layerwise_keras[viz]`), imported lazily and
used through its object-oriented API on the Agg canvas, so importing this
module, or drawing, never changes matplotlib's global backend.

* `plot_stage_accuracy(metrics, path)`: validation accuracy per epoch of
  layerwise growth (stages shaded, boundaries marked), and of the end-to-end
  SGD baseline when `metrics["baseline"]` holds it (`layerwise-keras train
  --baseline`).
* `cluster_atlas(model, images, stage)` / `plot_cluster_atlas(...)`: for
  each centroid of a clustered stage, the input-image patches (the
  receptive fields, in pixels) of the positions nearest to it.
* `confusion_matrix(y_true, y_pred)` / `plot_confusion_matrix(...)`.
* `write_report(run_dir)`: all of them, plus the dataset sample grid
  (`layerwise_keras.datasets.save_sample_grid`), for a folder written by
  `layerwise-keras train`; `layerwise-keras report` runs it.
"""

import json
import math
import os

import numpy as np

from layerwise_keras.datasets.checks import check_images
from layerwise_keras.growth.names import stage_layer
from layerwise_keras.monitoring.patches import iter_stage_outputs, receptive_field, stage_patches


DPI = 100


GAP_COLOUR = (0.86, 0.90, 0.95)


def import_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "layerwise_keras.monitoring.plots needs matplotlib; install it with `pip install layerwise_keras[viz]` "
            "(or `pip install matplotlib`)."
        ) from err
    return Figure, FigureCanvasAgg


def _figure(width, height):
    Figure, FigureCanvasAgg = import_matplotlib()
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_target(path, overwrite, owner):
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{owner}: {path} already exists; pass overwrite=True (--overwrite) to replace it.")


def _save(fig, path):
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _load_metrics(metrics):
    if isinstance(metrics, (str, os.PathLike)):
        with open(metrics) as f:
            return json.load(f)
    return metrics


def _code_probes(metrics):
    """`(stage, accuracy)` of every stage with a code probe (`probe_epochs`) in `metrics["stages"]`."""
    return [(n, s["code_probe_val_accuracy"]) for n, s in enumerate(metrics.get("stages") or [], start=1)
            if s.get("code_probe_val_accuracy") is not None]


def plot_stage_accuracy(metrics, path, overwrite=False):
    """Plots validation accuracy per epoch of layerwise growth, stage by stage.

    Draws `metrics["history"]["val_accuracy"]` (and the training accuracy,
    dashed) against the epoch, with each stage's epochs shaded and the stage
    boundaries (where the stage is clustered and frozen) marked; the
    end-to-end SGD baseline's validation accuracy when `metrics["baseline"]`
    has it; test accuracies in the legend; where `metrics["stages"]` hold
    code probes (config `probe_epochs`), the validation accuracy of a fresh
    head trained on each stage's code, at its boundary (the cost of the
    clustering step is the drop from the stage's last epoch to it). Metrics
    without a per-epoch
    `history` (written by an older `layerwise-keras train`) get the
    validation accuracy at the end of each stage instead.

    Args:
        metrics: the dict `layerwise_keras.runs.pipeline.run` returns, or the
            path of its `metrics.json`.
        path: the PNG file to write (parent folders are created).
        overwrite: replace an existing `path` instead of raising
            `FileExistsError`.

    Returns:
        `path`.

    Example:

    `run_dir`: the output folder of a run (`runs.run`), with its
    `metrics.json`.

    >>> import os
    >>> path = plot_stage_accuracy(os.path.join(run_dir, "metrics.json"), os.path.join(tmp_dir, "accuracy.png"))
    >>> os.path.basename(path), os.path.getsize(path) > 0
    ('accuracy.png', True)
    """
    _check_target(path, overwrite, "plot_stage_accuracy")
    metrics = _load_metrics(metrics)
    history = metrics.get("history") or {}
    baseline = metrics.get("baseline") or {}
    fig = _figure(8, 5.2)
    ax = fig.add_subplot()
    values = []
    test = metrics.get("test_accuracy")
    test_note = f" (test {test:.4f})" if test is not None else ""
    key = "val_accuracy" if history.get("val_accuracy") else "accuracy"
    if history.get(key):
        curve = np.asarray(history[key], dtype=float)
        epochs = np.arange(1, len(curve) + 1)
        stages = np.asarray(history.get("stage") or [1] * len(curve), dtype=int)
        for i, s in enumerate(np.unique(stages)):
            first, last = epochs[stages == s][[0, -1]]
            ax.axvspan(first - 0.5, last + 0.5, color="#eef2f7" if i % 2 == 0 else "#ffffff", zorder=0)
            ax.text((first + last) / 2, 1.0, f"stage {s}", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=9, color="#445")
            if last < epochs[-1]:
                ax.axvline(last + 0.5, color="#8892a0", linestyle=":", linewidth=1.2, zorder=1,
                           label="stage boundary: k-means, freeze, grow" if i == 0 else None)
        label = "validation" if key == "val_accuracy" else "training"
        ax.plot(epochs, curve, "o-", color="C0", linewidth=2, label=f"layerwise, {label}{test_note}")
        values.extend(curve)
        ends = {s: epochs[stages == s][-1] for s in np.unique(stages)}
        probes = [(ends[n] + 0.5, a) for n, a in _code_probes(metrics) if n in ends]
        if probes:
            ax.plot(*zip(*probes), "D", color="C2", markersize=7, linestyle="none",
                    label="fresh head trained on the stage's code (after clustering)")
            values.extend(a for _, a in probes)
        if key == "val_accuracy" and history.get("accuracy"):
            train = np.asarray(history["accuracy"], dtype=float)
            ax.plot(epochs[: len(train)], train, "--", color="C0", alpha=0.55, label="layerwise, training")
            values.extend(train)
        if baseline.get("val_accuracy"):
            base = np.asarray(baseline["val_accuracy"], dtype=float)
            note = f" (test {baseline['test_accuracy']:.4f})" if "test_accuracy" in baseline else ""
            ax.plot(np.arange(1, len(base) + 1), base, "s-", color="C1", linewidth=2,
                    label=f"end-to-end SGD, validation{note}")
            values.extend(base)
        ax.set_xlabel("epoch")
        ax.set_xticks(epochs if len(epochs) <= 30 else epochs[:: math.ceil(len(epochs) / 30)])
        ax.set_xlim(0.5, epochs[-1] + 0.5)
    else:
        per_stage = [s.get("val_accuracy", s.get("accuracy")) for s in metrics.get("stages", [])]
        if not per_stage or None in per_stage:
            raise ValueError("plot_stage_accuracy: metrics hold neither a per-epoch history nor per-stage accuracies.")
        stages = np.arange(1, len(per_stage) + 1)
        ax.plot(stages, per_stage, "o-", color="C0", linewidth=2,
                label=f"layerwise, accuracy at the end of each stage{test_note}")
        values.extend(per_stage)
        probes = _code_probes(metrics)
        if probes:
            ax.plot(*zip(*probes), "D", color="C2", markersize=7, linestyle="none",
                    label="fresh head trained on the stage's code (after clustering)")
            values.extend(a for _, a in probes)
        if baseline.get("test_accuracy") is not None:
            ax.axhline(baseline["test_accuracy"], color="C1", linestyle="--", label="end-to-end SGD, test")
            values.append(baseline["test_accuracy"])
        ax.set_xlabel("stage (no per-epoch history in these metrics)")
        ax.set_xticks(stages)
    low = max(0.0, min(values) - 0.05)
    ax.set_ylim(low, 1.0 + (1.0 - low) * 0.03)
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", alpha=0.4)
    title = "Accuracy per epoch: layerwise growth" + (" vs end-to-end SGD" if baseline else "")
    if metrics.get("name"):
        title = f"{metrics['name']}\n{title}"  # two lines: a long name would be cut off
    fig.suptitle(title, fontsize=12)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9, frameon=False)
    return _save(fig, path)


def cluster_atlas(model, images, stage=1, per_cluster=8, batch_size=256):
    """Finds, for each centroid of a stage, the positions nearest to it and their pixel patches.

    Every position of `images` in stage `stage`'s map is assigned to its
    nearest centroid; for each centroid, its `per_cluster` members nearest to
    it (smallest `||e - c_k||^2`, from the model's own nearest-centroid
    scores) are kept, and their receptive fields are cut out of the images.

    Args:
        model: a model grown by `LayerwiseTrainer`, or its portable form
            (e.g. `model.keras` of `layerwise-keras train`, loaded with plain
            Keras).
        images: float array `[n, H, W, C]`, the real images to search.
        stage: 1-based index of a clustered stage.
        per_cluster: int >= 1, patches per centroid.
        batch_size: images per forward pass.

    Returns:
        A dict with `stage`, `field` (the `ReceptiveField`), `patches`
        (float32 `[K, per_cluster, fh, fw, C]`, NaN where a cluster has
        fewer members), `positions` (int64 `[K, per_cluster, 3]` of
        `(image, row, col)`, -1 where missing), `sq_distances` (float64
        `[K, per_cluster]`, ascending per row, NaN where missing) and
        `counts` (int64 `[K]`, positions assigned to each centroid).

    Example:

    `x`: 27x27x1 images; `model`: a model grown on them whose stage 1
    clusters 3x3 patches into K=8 clusters.

    >>> atlas = cluster_atlas(model, x[:100], stage=1, per_cluster=4)
    >>> atlas["patches"].shape, atlas["positions"].shape, int(atlas["counts"].sum()) == 100 * 9 * 9
    ((8, 4, 3, 3, 1), (8, 4, 3), True)
    """

    images = check_images(images)
    if int(per_cluster) != per_cluster or per_cluster < 1:
        raise ValueError(f"cluster_atlas: per_cluster must be an integer >= 1, got {per_cluster!r}.")
    per_cluster = int(per_cluster)
    field = receptive_field(model, stage)
    ids, sq, where = [], [], []
    offset = 0
    for batch, emb, scores in iter_stage_outputs(model, images, stage, batch_size):
        k = scores.shape[-1]
        nearest = scores.argmax(-1)
        # ||e - c||^2 = ||e||^2 - score (the model's own score of the nearest centroid).
        dist = np.square(emb.astype("float64")).sum(-1) - scores.max(-1).astype("float64")
        grid = np.indices(nearest.shape).reshape(3, -1).T
        grid[:, 0] += offset
        offset += len(batch)
        ids.append(nearest.reshape(-1))
        sq.append(np.maximum(dist, 0.0).reshape(-1))
        where.append(grid)
    ids, sq, where = np.concatenate(ids), np.concatenate(sq), np.concatenate(where)
    fh, fw = field.size
    patches = np.full((k, per_cluster, fh, fw, images.shape[-1]), np.nan, dtype="float32")
    positions = np.full((k, per_cluster, 3), -1, dtype="int64")
    sq_distances = np.full((k, per_cluster), np.nan)
    counts = np.bincount(ids, minlength=k).astype("int64")
    for c in range(k):
        members = np.flatnonzero(ids == c)
        order = members[np.argsort(sq[members], kind="stable")[:per_cluster]]
        m = len(order)
        if m:
            positions[c, :m] = where[order]
            sq_distances[c, :m] = sq[order]
            patches[c, :m] = stage_patches(images, field, where[order])
    return {
        "stage": int(stage), "field": field, "patches": patches, "positions": positions,
        "sq_distances": sq_distances, "counts": counts,
    }


def _atlas_canvas(patches, gap, value_range):
    """Lays `[rows, cols, fh, fw, C]` patches out as an RGB float image with gaps."""
    rows, cols, fh, fw, c = patches.shape
    lo, hi = value_range
    scaled = (patches - lo) / (hi - lo) if hi > lo else np.zeros_like(patches)
    scaled = np.clip(scaled, 0.0, 1.0)
    if c == 1:
        scaled = np.repeat(scaled, 3, axis=-1)
    elif c != 3:
        scaled = np.repeat(scaled.mean(-1, keepdims=True), 3, axis=-1)
    canvas = np.empty((rows * (fh + gap) - gap, cols * (fw + gap) - gap, 3))
    canvas[:] = GAP_COLOUR
    for r in range(rows):
        for j in range(cols):
            tile = scaled[r, j]
            if np.isnan(tile).any():
                continue
            y, x = r * (fh + gap), j * (fw + gap)
            canvas[y : y + fh, x : x + fw] = tile
    return canvas


def _atlas_selection(clusters, counts):
    """The centroid ids `plot_cluster_atlas` draws (see its `clusters` argument)."""
    k = len(counts)
    if clusters is None:
        return np.arange(k)
    if isinstance(clusters, (int, np.integer)) and not isinstance(clusters, bool):
        if not 1 <= clusters <= k:
            raise ValueError(f"plot_cluster_atlas: clusters must be between 1 and {k}, got {clusters}.")
        return np.sort(np.argsort(-counts, kind="stable")[: int(clusters)])
    ids = np.asarray(clusters)
    if ids.ndim != 1 or len(ids) == 0 or ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= k:
        raise ValueError(f"plot_cluster_atlas: clusters must be None, an int or centroid ids in [0, {k}), "
                         f"got {clusters!r}.")
    return ids


def _selection_text(clusters):
    return f"the {clusters} most used" if isinstance(clusters, (int, np.integer)) else "the ids on the left"


def _stage_whitens(model, stage):
    assign = stage_layer(model, stage, "assign", required=False)
    return bool(getattr(assign, "whiten", False)) or stage_layer(model, stage, "whiten", required=False) is not None


def plot_cluster_atlas(model, images, path, stage=1, per_cluster=8, overwrite=False, batch_size=256,
                       rows_per_column=16, clusters=None):
    """Draws a stage's cluster atlas: each centroid's nearest input patches, on the real images.

    One row per centroid (cluster id and the number of positions assigned
    to it on the left), its `per_cluster` nearest positions' receptive-field
    patches from left (nearest) to right; empty cells when a cluster has
    fewer members. Pixel values keep the images' own scale (the range of
    `images`), so patches compare across clusters. With more than
    `rows_per_column` centroids the rows continue in further columns. When
    the stage whitens its embeddings, "nearest" is measured after the
    whitening, as k-means measured it (the title says so).

    Args:
        model: a model grown by `LayerwiseTrainer`, or its portable form.
        images: float array `[n, H, W, C]`, the real images to search.
        path: the PNG file to write (parent folders are created).
        stage: 1-based index of a clustered stage.
        per_cluster: int >= 1, patches per centroid.
        overwrite: replace an existing `path` instead of raising
            `FileExistsError`.
        batch_size: images per forward pass.
        rows_per_column: int >= 1, centroids per column of the figure.
        clusters: which centroids to draw: None (all), an int n (the n
            with the most positions, in id order) or a sequence of ids.

    Returns:
        `path`.

    Example:

    `x`: 27x27x1 images; `model`: a model grown on them.

    >>> import os
    >>> plot_cluster_atlas(model, x[:100], os.path.join(tmp_dir, "cluster_atlas_stage1.png"), stage=1)
    '/.../cluster_atlas_stage1.png'
    """
    _check_target(path, overwrite, "plot_cluster_atlas")
    import_matplotlib()
    atlas = cluster_atlas(model, images, stage=stage, per_cluster=per_cluster, batch_size=batch_size)
    images = np.asarray(images, dtype="float32")
    patches, counts = atlas["patches"], atlas["counts"]
    shown = _atlas_selection(clusters, counts)
    k, p, fh, fw, _ = patches[shown].shape
    blocks = math.ceil(k / rows_per_column)
    rows = math.ceil(k / blocks)
    gap = max(1, fh // 4)
    cell = float(np.clip(fh * 0.06, 0.32, 1.2))  # inches per patch
    width = max(6.0, blocks * (p * cell * (fh + gap) / fh + 1.3) + 0.3)
    height = rows * cell * (fh + gap) / fh + 1.2
    fig = _figure(width, height)
    axes = fig.subplots(1, blocks, squeeze=False)[0]
    value_range = (float(images.min()), float(images.max()))
    for b, ax in enumerate(axes):
        ids = [int(c) for c in shown[b * rows : min(k, (b + 1) * rows)]]
        block = np.full((rows, p, fh, fw, patches.shape[-1]), np.nan, dtype="float32")
        block[: len(ids)] = patches[ids]
        ax.imshow(_atlas_canvas(block, gap, value_range), interpolation="nearest")
        ax.set_yticks([r * (fh + gap) + (fh - 1) / 2 for r in range(len(ids))])
        ax.set_yticklabels([f"{c}  (n={counts[c]})" for c in ids], fontsize=8)
        ax.set_xticks([j * (fw + gap) + (fw - 1) / 2 for j in range(p)])
        ax.set_xticklabels([str(j + 1) for j in range(p)], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if b == 0:
            ax.set_ylabel("cluster (positions assigned)", fontsize=9)
        ax.set_xlabel("nearest → farther", fontsize=8)
    n_pos = int(counts.sum())
    which = f"{k} centroids" if k == len(counts) else f"{k} of {len(counts)} centroids ({_selection_text(clusters)})"
    whitened = " after its ZCA whitening" if _stage_whitens(model, stage) else ""
    fig.suptitle(
        f"Cluster atlas, stage {stage}: {which}, the {p} nearest positions of each{whitened}\n"
        f"{fh}×{fw}-pixel input patches (receptive fields), {n_pos} positions of {len(images)} images",
        fontsize=10,
    )
    return _save(fig, path)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts (true, predicted) label pairs.

    Args:
        y_true: int array `[n]` of true labels >= 0.
        y_pred: int array `[n]` of predicted labels >= 0.
        num_classes: the matrix size (default: the largest label + 1).

    Returns:
        An int64 array `[num_classes, num_classes]`; entry `[t, p]` counts
        the examples of true class t predicted as p.

    Example:

    >>> confusion_matrix([0, 1, 1], [0, 1, 0])
    array([[1, 0],
           [1, 1]])
    """
    y_true = np.asarray(y_true, dtype="int64").reshape(-1)
    y_pred = np.asarray(y_pred, dtype="int64").reshape(-1)
    if len(y_true) != len(y_pred):
        raise ValueError(f"confusion_matrix: {len(y_true)} true labels but {len(y_pred)} predictions.")
    if len(y_true) and min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("confusion_matrix: labels must be >= 0.")
    size = int(num_classes or (max(y_true.max(), y_pred.max()) + 1 if len(y_true) else 0))
    return np.bincount(y_true * size + y_pred, minlength=size * size).reshape(size, size)


def plot_confusion_matrix(y_true, y_pred, path, class_names=None, overwrite=False, title=None):
    """Draws the confusion matrix of predictions, with counts in the cells.

    Rows are true classes, columns predicted ones; the colour is the
    fraction of the row (so classes of different sizes compare), the
    number the count. The title gives the accuracy.

    Args:
        y_true: int array `[n]` of true labels.
        y_pred: int array `[n]` of predicted labels.
        path: the PNG file to write (parent folders are created).
        class_names: optional list of names, one per class (its length sets
            the number of classes).
        overwrite: replace an existing `path` instead of raising
            `FileExistsError`.
        title: the figure title (default: "Confusion matrix", n and
            accuracy).

    Returns:
        `path`.

    Example:

    `model`: a grown model; `x`, `y`: images and their labels.

    >>> import os
    >>> logits = model.predict(x, verbose=0)
    >>> plot_confusion_matrix(y, logits.argmax(-1), os.path.join(tmp_dir, "confusion.png"))
    '/.../confusion.png'
    """
    _check_target(path, overwrite, "plot_confusion_matrix")
    matrix = confusion_matrix(y_true, y_pred, len(class_names) if class_names is not None else None)
    size = len(matrix)
    names = [str(c) for c in (class_names if class_names is not None else range(size))]
    total = int(matrix.sum())
    accuracy = float(np.trace(matrix)) / max(total, 1)
    side = float(np.clip(0.55 * size + 1.8, 4.0, 11.0))
    fig = _figure(side + 0.8, side)
    ax = fig.add_subplot()
    fraction = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    fontsize = 9 if size <= 12 else 6
    for t in range(size):
        for q in range(size):
            if matrix[t, q]:
                ax.text(q, t, str(matrix[t, q]), ha="center", va="center", fontsize=fontsize,
                        color="white" if fraction[t, q] > 0.55 else "black")
    ax.set_xticks(range(size), names, fontsize=fontsize, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(range(size), names, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    ax.set_title(title or f"Confusion matrix: {total} test images, accuracy {accuracy:.4f}", fontsize=11)
    return _save(fig, path)
