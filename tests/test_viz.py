"""Tests of `layerwise_keras.monitoring.plots` and `layerwise-keras report` / `train --baseline`."""

import copy
import json
import os
import shutil
import sys

import keras
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from layerwise_keras import cli
from layerwise_keras.monitoring import plots as viz
from helpers import TINY_CLI_CONFIG  # noqa: E402

ORANGE = np.array([255, 127, 14])  # matplotlib's "C1": the baseline curve
GREEN = np.array([44, 160, 44])  # "C2": the code probes

BASELINE_CONFIG = TINY_CLI_CONFIG
REPORT_PNGS = ["accuracy.png", "cluster_atlas_stage1.png", "cluster_atlas_stage2.png", "confusion.png",
               "samples.png"]


def _png(path):
    """Decodes a PNG as uint8 [H, W, C] (matplotlib's reader, floats in 0..1, scaled back)."""
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    assert image.dtype == np.float32 and image.max() <= 1.0
    return np.rint(image * 255).astype(int)


def _non_blank(image):
    assert image.std() > 10, "the picture is (almost) uniform"
    return True


def _orange_pixels(image):
    return int((np.abs(image[..., :3] - ORANGE).max(-1) < 30).sum())


def _green_pixels(image):
    return int((np.abs(image[..., :3] - GREEN).max(-1) < 30).sum())


@pytest.fixture(scope="module")
def portable(grown_digits):
    return keras.saving.load_model(str(grown_digits.output_dir / "model.keras"))


def test_cluster_atlas_patches_are_the_nearest_positions(grown_digits, portable):
    x = grown_digits.x_test[:120]
    atlas = viz.cluster_atlas(portable, x, stage=2, per_cluster=5)
    k = grown_digits.config["stages"][1]["clusters"]
    assert atlas["patches"].shape == (k, 5, 9, 9, 1)  # stage 2 of 3x3/3 convs sees 9x9 pixels
    assert atlas["counts"].sum() == len(x) * 3 * 3

    # Brute force: stage-2 embeddings, centroids from the portable Dense (kernel = 2 c^T).
    probe = keras.Model(portable.inputs[0], portable.get_layer("stage2_conv").output)
    emb = keras.ops.convert_to_numpy(probe(x)).astype("float64")
    kernel = portable.get_layer("stage2_assign").get_weights()[0]
    c = kernel.T.astype("float64") / 2.0
    d = ((emb[..., None, :] - c) ** 2).sum(-1)  # [n, 3, 3, K]
    ids = d.argmin(-1)
    np.testing.assert_array_equal(np.bincount(ids.ravel(), minlength=k), atlas["counts"])
    big = int(np.argmax(atlas["counts"]))
    members = np.sort(d[ids == big][:, big])[:5]
    np.testing.assert_allclose(atlas["sq_distances"][big], members, rtol=1e-4, atol=1e-3)
    for j in range(5):
        i, r, col = atlas["positions"][big, j]
        assert ids[i, r, col] == big
        assert d[i, r, col, big] == pytest.approx(members[j], rel=1e-4, abs=1e-3)
        np.testing.assert_array_equal(atlas["patches"][big, j], x[i, 9 * r : 9 * r + 9, 9 * col : 9 * col + 9])
    # Clusters with fewer members than per_cluster leave NaN cells, never someone else's patch.
    short = atlas["counts"] < 5
    if short.any():
        row = int(np.flatnonzero(short)[0])
        assert np.isnan(atlas["patches"][row, atlas["counts"][row]:]).all()


def test_plots_write_valid_non_blank_pngs_and_refuse_to_overwrite(grown_digits, portable, tmp_path):
    metrics = grown_digits.metrics
    assert metrics["history"]["stage"] == [1, 2, 3] and len(metrics["history"]["val_accuracy"]) == 3
    path = viz.plot_stage_accuracy(metrics, str(tmp_path / "acc.png"))
    image = _png(path)
    assert image.shape[:2] == (520, 800) and _non_blank(image)  # 8 x 5.2 inches at 100 dpi
    assert _orange_pixels(image) == 0  # no baseline in these metrics, so no baseline curve
    with pytest.raises(FileExistsError, match="overwrite"):
        viz.plot_stage_accuracy(metrics, path)
    assert _green_pixels(image) == 0  # no code probes in these metrics
    probed = copy.deepcopy(metrics)
    probed["stages"][0]["code_probe_val_accuracy"] = 0.5
    assert _green_pixels(_png(viz.plot_stage_accuracy(probed, str(tmp_path / "probed.png")))) > 20
    del probed["history"]  # the per-stage fallback marks them too
    assert _green_pixels(_png(viz.plot_stage_accuracy(probed, str(tmp_path / "per_stage.png")))) > 20

    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    np.testing.assert_array_equal(viz.confusion_matrix(y_true, y_pred), [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    image = _png(viz.plot_confusion_matrix(y_true, y_pred, str(tmp_path / "cm.png"), class_names=["a", "b", "c"]))
    assert _non_blank(image)

    atlas_path = viz.plot_cluster_atlas(portable, grown_digits.x_test[:50], str(tmp_path / "atlas.png"), stage=1)
    assert _non_blank(_png(atlas_path))


def test_cluster_atlas_selection_draws_the_most_used_centroids(portable, grown_digits, tmp_path):
    from layerwise_keras.monitoring.plots import _atlas_selection

    counts = np.array([5, 9, 0, 9, 1])
    np.testing.assert_array_equal(_atlas_selection(None, counts), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(_atlas_selection(3, counts), [0, 1, 3])  # the 3 most used, in id order
    np.testing.assert_array_equal(_atlas_selection([4, 2], counts), [4, 2])
    for bad in (0, 6, [], [5], [1.5], True):
        with pytest.raises(ValueError, match="clusters must be"):
            _atlas_selection(bad, counts)
    x = grown_digits.x_test[:50]
    few = _png(viz.plot_cluster_atlas(portable, x, str(tmp_path / "few.png"), stage=2, clusters=4))
    every = _png(viz.plot_cluster_atlas(portable, x, str(tmp_path / "all.png"), stage=2))
    assert _non_blank(few) and few.shape[0] < every.shape[0]  # 4 rows against K


def test_report_cli_on_the_grown_run_then_refuses_to_overwrite(grown_digits, tmp_path, capsys):
    run = tmp_path / "run"  # a copy: the session's run folder is read-only
    run.mkdir()
    for name in ("model.keras", "config.json", "metrics.json"):
        shutil.copy(grown_digits.output_dir / name, run / name)
    assert cli.main(["report", str(run)]) == 0
    report = run / "report"
    assert capsys.readouterr().out.split() == [str(report / n) for n in REPORT_PNGS]
    images = {name: _png(report / name) for name in REPORT_PNGS}
    assert all(_non_blank(image) for image in images.values())
    assert _orange_pixels(images["accuracy.png"]) == 0  # trained without --baseline
    # The sample grid of the regenerated test split: 10 labels x 10 images of 27x27 (+1 px), x3.
    assert images["samples.png"].shape[:2] == ((10 * 28 + 1) * 3, (10 * 28 + 1) * 3)

    before = {n: (report / n).stat().st_mtime_ns for n in REPORT_PNGS}
    assert cli.main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise-keras: error:") and "--overwrite" in err and "accuracy.png" in err
    assert {n: (report / n).stat().st_mtime_ns for n in REPORT_PNGS} == before


def test_report_usage_errors(tmp_path, capsys, monkeypatch):
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "model.keras not found" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(ImportError, match=r"pip install layerwise_keras\[viz\]"):
        viz.plot_confusion_matrix([0], [0], str(tmp_path / "cm.png"))


def test_train_baseline_records_it_and_the_report_draws_it(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(BASELINE_CONFIG))
    run = tmp_path / "run"
    code = cli.main(["train", "--output", str(run), "--config", str(config), "--verbose", "0", "--baseline"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    baseline = metrics["baseline"]
    assert summary["baseline_test_accuracy"] == baseline["test_accuracy"]
    assert baseline["train_seconds"] > 0  # (its accuracy: 0.14-0.21 over seeds 0-3, too near chance to bound)
    assert len(baseline["val_accuracy"]) == 3  # one per epoch: the stages' total
    assert metrics["history"]["stage"] == [1, 2, 3]
    assert all(len(v) == 3 for v in metrics["history"].values())
    assert [len(s["kmeans_counts"]) for s in metrics["stages"][:2]] == [8, 8]

    # A PNG already there: the report refuses, then replaces everything with --overwrite.
    os.makedirs(run / "report")
    (run / "report" / "accuracy.png").write_bytes(b"not a png")
    assert cli.main(["report", str(run)]) == 2
    capsys.readouterr()
    assert not (run / "report" / "confusion.png").exists()
    assert cli.main(["report", str(run), "--overwrite"]) == 0
    assert sorted(os.listdir(run / "report")) == sorted(REPORT_PNGS)
    accuracy = _png(run / "report" / "accuracy.png")
    assert _orange_pixels(accuracy) > 200  # the baseline curve is drawn
