"""Bad input, systematically: every public entry point, fed malformed data, says what is wrong.

Each case feeds one entry point one kind of bad input (wrong rank or dtype,
NaN/Inf, an empty set, K larger than the sample, labels out of range, a
truncated file, an unwritable or occupied output folder) and asserts a clear
error whose message names the problem; where files exist beforehand, that
they are byte-for-byte untouched afterwards. Module-specific tests cover more
variants (test_datasets, test_kmeans, test_local_data, test_config,
test_checkpoint); this module is the one place that walks all entry points.
"""

import json
import os

import numpy as np
import pytest

import layerwise_keras as lk
from helpers import TINY_CLI_CONFIG, tree_digest
from layerwise_keras import cli, datasets
from layerwise_keras.datasets import local as local_data
from layerwise_keras.runs import exporting, folders, pipeline
from layerwise_keras.runs.config import load_config, validate_config

RNG = np.random.default_rng(0)
GOOD = RNG.normal(size=(8, 9, 9, 1)).astype(np.float32)
LABELS = np.arange(8) % 4


def _with(value, index=(0, 0, 0, 0)):
    x = GOOD.copy()
    x[index] = value
    return x


BAD_IMAGES = [
    pytest.param(GOOD[..., 0], "channel axis", id="rank3-no-channels"),
    pytest.param(GOOD[0, :, :, 0], "rank|4-D|shape", id="rank2"),
    pytest.param(GOOD.astype(str), "numeric dtype", id="string-dtype"),
    pytest.param(GOOD > 0, "numeric dtype", id="bool-dtype"),
    pytest.param(_with(np.nan), "NaN", id="nan"),
    pytest.param(_with(np.inf), "infinite", id="inf"),
    pytest.param(GOOD[:0], "empty", id="empty"),
]


# -- images -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("images, match", BAD_IMAGES)
@pytest.mark.parametrize("entry", ["check_images", "from_arrays", "ArrayBatches", "trainer", "assignments"])
def test_bad_images_are_refused_by_every_entry_point(entry, images, match):
    with pytest.raises(ValueError, match=match):
        if entry == "check_images":
            datasets.check_images(images)
        elif entry == "from_arrays":
            datasets.from_arrays(images, LABELS[: len(images)] if images.ndim else LABELS)
        elif entry == "ArrayBatches":
            datasets.ArrayBatches(images, LABELS[: len(images)] if images.ndim else LABELS)
        elif entry == "trainer":
            lk.LayerwiseTrainer([lk.Stage(4, 3, clusters=2), lk.Stage(4, 3)], 4, kmeans_data=images)
        else:
            model = lk.input_model((9, 9, 1))
            lk.assignments(model, images)


POINTS = RNG.normal(size=(40, 3)).astype(np.float32)


@pytest.mark.parametrize("points, match", [
    pytest.param(POINTS.reshape(40, 3, 1), "2-D input", id="rank3"),
    pytest.param(POINTS[:, 0], "2-D input", id="rank1"),
    pytest.param(POINTS.astype(str), "numeric", id="string-dtype"),
    pytest.param(np.where(np.arange(40)[:, None] == 3, np.nan, POINTS), "NaN", id="nan"),
    pytest.param(np.where(np.arange(40)[:, None] == 3, np.inf, POINTS), "Inf|infinite|non-finite", id="inf"),
])
def test_bad_points_are_refused_by_kmeans(points, match):
    with pytest.raises(ValueError, match=match):
        lk.KMeans(2).fit(points)


# -- labels -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels, match", [
    pytest.param(LABELS[:-1], "must match", id="too-few"),
    pytest.param(LABELS.reshape(2, 4), "1-D", id="rank2"),
    pytest.param(LABELS - 1, ">= 0", id="negative"),
    pytest.param(LABELS + 0.5, "whole numbers", id="fractional"),
    pytest.param(np.array(["a"] * 8), "integers", id="strings"),
    pytest.param(LABELS * 3, r"0\.\.3", id="out-of-range"),
])
def test_bad_labels_are_refused(labels, match):
    with pytest.raises(ValueError, match=match):
        datasets.check_labels(labels, 8, num_classes=4)


def _tiny_splits():
    config = validate_config(dict(TINY_CLI_CONFIG))
    return config, pipeline.load_splits(config["dataset"], seed=config["seed"])


@pytest.mark.parametrize("part, value, match", [
    pytest.param("y_train", "out_of_range", r"y_train.*class ids in 0\.\.9", id="labels-out-of-range"),
    pytest.param("x_val", "nan", r"x_val.*NaN", id="nan-validation-images"),
    pytest.param("x_test", "shape", "image shapes differ", id="test-shape-differs"),
    pytest.param("y_test", "missing", r"missing \['y_test'\]", id="missing-split"),
])
@pytest.mark.parametrize("entry", ["grow", "end_to_end"])
def test_bad_splits_are_refused_before_any_training(entry, part, value, match):
    config, splits = _tiny_splits()
    splits = dict(splits)
    if value == "out_of_range":
        splits[part] = splits[part] + 10
    elif value == "nan":
        splits[part] = splits[part].copy()
        splits[part][0, 0, 0, 0] = np.nan
    elif value == "shape":
        splits[part] = splits[part][:, :-1]
    else:
        del splits[part]
    with pytest.raises(ValueError, match=match):
        (pipeline.grow if entry == "grow" else pipeline.end_to_end)(config, splits, verbose=0)


# -- k-means ------------------------------------------------------------------------------------------------


def test_kmeans_refuses_more_clusters_than_points_and_bad_predict_input():
    points = RNG.normal(size=(5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="at least 8 points, got 5"):
        lk.KMeans(8).fit(points)
    with pytest.raises(ValueError, match="empty|at least"):
        lk.KMeans(2).fit(points[:0])
    fitted = lk.KMeans(2, seed=0).fit(points)
    with pytest.raises(ValueError, match="3"):
        fitted.predict(RNG.normal(size=(4, 5)).astype(np.float32))  # 5 features, fitted on 3
    with pytest.raises(ValueError, match="NaN|non-finite"):
        fitted.predict(np.full((2, 3), np.nan, np.float32))


def test_growth_with_fewer_embeddings_than_clusters_names_the_stage():
    x = GOOD[:2]  # 2 images x 3x3 positions = 18 embeddings < 32 clusters
    trainer = lk.LayerwiseTrainer([lk.Stage(4, 3, clusters=32), lk.Stage(4, 3)], 4, kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"stage 1 failed: .*at least 32 points, got 18"):
        model.fit(x, LABELS[:2], epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


# -- files and folders --------------------------------------------------------------------------------------


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_CLI_CONFIG))
    return path


def _train(tmp_path, config, output, *extra):
    return cli.main(["train", "--config", str(config), "--output", str(output), "--verbose", "0", *extra])


def test_cli_refuses_an_occupied_output_folder_and_leaves_it_alone(tmp_path, tiny_config, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_bytes(b"a model the user saved")
    before = tree_digest(out)
    assert _train(tmp_path, tiny_config, out) == 2
    assert "not empty" in capsys.readouterr().err
    assert tree_digest(out) == before
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    assert _train(tmp_path, tiny_config, target) == 2
    assert "not a folder" in capsys.readouterr().err
    assert target.read_text() == "not a folder"


def test_cli_refuses_a_read_only_output_folder(tmp_path, tiny_config, capsys, monkeypatch):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root may write to a 0o555 folder; make the permission check see what any other user would
        real_access = os.access
        monkeypatch.setattr(folders.os, "access", lambda path, mode: False if os.fspath(path) == str(parent)
                            and mode & os.W_OK else real_access(path, mode))
    try:
        assert _train(tmp_path, tiny_config, parent / "run") == 2
        assert "not writable" in capsys.readouterr().err
        assert _train(tmp_path, tiny_config, parent / "exp1" / "run") == 2  # would be created inside it
        assert f"({parent}, where it would be created, is not)" in capsys.readouterr().err
        assert os.listdir(parent) == []
    finally:
        parent.chmod(0o755)


def test_truncated_model_file_is_a_clear_error_and_the_run_folder_is_untouched(tmp_path, tiny_config):
    out = tmp_path / "run"
    assert _train(tmp_path, tiny_config, out) == 0
    model_file = out / "model.keras"
    model_file.write_bytes(model_file.read_bytes()[:1000])  # truncated
    before = tree_digest(out)
    with pytest.raises(ValueError, match=r"model\.keras is not a readable \.keras archive"):
        exporting.export_run(str(out), "onnx")
    assert cli.main(["export", str(out), "--format", "litert"]) == 2
    assert tree_digest(out) == before


def test_truncated_and_missing_data_files_name_the_path(tmp_path):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    with pytest.raises(local_data.DataError, match=str(folder)):
        datasets.load_arrays("cifar10", "train", str(tmp_path))
    np.savez(folder / "test.npz", x=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2, np.uint8))
    data = (folder / "test.npz").read_bytes()
    (folder / "test.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(local_data.DataError, match="test.npz"):
        datasets.load_arrays("cifar10", "test", str(tmp_path))
    with pytest.raises(local_data.DataError, match="does not exist"):
        datasets.load_arrays("cifar10", "test", str(tmp_path / "nowhere"))


def test_bad_config_values_are_refused_with_the_key_named():
    config = load_config("hierarchical_digits")
    config["stages"][0]["clusters"] = 1
    with pytest.raises(ValueError, match="clusters"):
        validate_config(config)
    config = load_config("hierarchical_digits")
    config["batch_size"] = 0
    with pytest.raises(ValueError, match="batch_size"):
        validate_config(config)
