"""Tests for layerwise_keras.export: portable models and artifacts that run without the package.

The fresh-process checks share ONE subprocess (TensorFlow's import costs ~8 s):
the module-scoped `fresh_results` fixture writes every artifact's inputs as
.npy files, loads all artifacts in a new Python process that must not import
`layerwise_keras`, and saves that process's predictions for the tests to compare.
"""

import json
import os
import types

import keras
import numpy as np
import pytest

from layerwise_keras import export
from layerwise_keras.growth.kinds import ASSIGNMENTS
from layerwise_keras.growth.layers import ClusterAssignment
from layerwise_keras.clustering.purity import stage_purities
from layerwise_keras.growth import assignments

from helpers import grown_style_model

TOL = 1e-5


def _grown_style_model(assignment, seed=0):
    return grown_style_model(assignment, seed)[0]


def _inputs(seed=0, n=40):
    return np.random.default_rng(100 + seed).normal(size=(n, 9, 9, 1)).astype("float32")


def _has_cluster_assignment(model):
    return any(isinstance(layer, ClusterAssignment) for layer in model._flatten_layers(include_self=False))


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """For each assignment mode: a hand-built model, its inputs, predictions and saved artifacts."""
    root = tmp_path_factory.mktemp("export")
    result = {}
    for i, mode in enumerate(ASSIGNMENTS):
        model = _grown_style_model(mode, seed=i)
        x = _inputs(seed=i)
        out_dir = root / mode
        paths = export.save_artifacts(model, str(out_dir))
        result[mode] = types.SimpleNamespace(
            model=model, x=x, expected=model.predict(x, verbose=0), dir=out_dir, paths=paths
        )
    return result


FRESH_SCRIPT = r"""
import json, sys

class _NoLayerwiseKeras:
    # Any attempt to import the package fails loudly instead of silently succeeding.
    def find_spec(self, name, path=None, target=None):
        if name == "layerwise_keras" or name.startswith("layerwise_keras."):
            raise ImportError("the fresh process must not import " + name)
        return None

sys.meta_path.insert(0, _NoLayerwiseKeras())

import numpy as np
import keras
import tensorflow as tf

with open("jobs.json") as f:
    jobs = json.load(f)
for job in jobs:
    x = np.load(job["x"])
    model = keras.saving.load_model(job["keras"])
    np.save(job["out_keras"], model.predict(x, batch_size=256, verbose=0))
    serve = tf.saved_model.load(job["saved_model"]).signatures["serving_default"]
    (arg,) = serve.structured_input_signature[1].keys()
    outputs = serve(**{arg: tf.constant(x)})
    (logits,) = outputs.values()
    np.save(job["out_saved_model"], logits.numpy())

package = sorted(m for m in sys.modules if m == "layerwise_keras" or m.startswith("layerwise_keras."))
assert "layerwise_keras" not in sys.modules and not package, package
print("FRESH_OK", len(jobs), json.dumps(package))
"""


@pytest.fixture(scope="module")
def fresh_results(exported, grown_digits, fresh_python, tmp_path_factory):
    """Runs ONE fresh Python process over every artifact; returns {job name: (keras, saved_model) preds}."""
    work = tmp_path_factory.mktemp("fresh")
    jobs = {name: (item.dir, item.x) for name, item in exported.items()}
    jobs["grown"] = (grown_digits.output_dir, grown_digits.x_test)
    specs = []
    for name, (folder, x) in jobs.items():
        np.save(work / f"{name}_x.npy", x)
        specs.append(
            {
                "name": name,
                "x": f"{name}_x.npy",
                "keras": str(folder / "model.keras"),
                "saved_model": str(folder / "saved_model" / "1"),
                "out_keras": f"{name}_keras.npy",
                "out_saved_model": f"{name}_saved_model.npy",
            }
        )
    (work / "jobs.json").write_text(json.dumps(specs))
    proc = fresh_python(FRESH_SCRIPT, cwd=work, timeout=300)
    assert proc.returncode == 0, f"fresh process failed:\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr[-4000:]}"
    assert f"FRESH_OK {len(specs)} []" in proc.stdout
    return {
        s["name"]: (np.load(work / s["out_keras"]), np.load(work / s["out_saved_model"])) for s in specs
    }


# ---------------------------------------------------------------------------
# to_portable_model
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ASSIGNMENTS)
def test_portable_model_matches_and_has_no_custom_layer(exported, mode):
    item = exported[mode]
    assert _has_cluster_assignment(item.model)
    portable = export.to_portable_model(item.model)

    assert not _has_cluster_assignment(portable)
    assert {type(layer).__module__.split(".")[0] for layer in portable.layers} == {"keras"}
    assign = portable.get_layer("stage1_assign")
    assert isinstance(assign, keras.layers.Dense) and not assign.trainable
    centroids = keras.ops.convert_to_numpy(item.model.get_layer("stage1_assign").centroids)
    kernel, bias = assign.get_weights()
    np.testing.assert_allclose(kernel, 2.0 * centroids.T, rtol=1e-6)
    np.testing.assert_allclose(bias, -(centroids**2).sum(axis=1), rtol=1e-6)

    got = portable.predict(item.x, verbose=0)
    assert got.shape == item.expected.shape == (len(item.x), 3)
    assert np.abs(got - item.expected).max() <= TOL


def test_hand_built_models_use_every_cluster(exported):
    # Guards the fixture: the comparisons above are only meaningful if all clusters are hit.
    for mode, item in exported.items():
        prefix = keras.Sequential([keras.Input((9, 9, 1)), item.model.get_layer("stage1_conv")])
        emb = prefix.predict(item.x, verbose=0)
        ids = item.model.get_layer("stage1_assign").scores(emb).numpy().argmax(-1)
        assert len(np.unique(ids)) == 5, mode


def test_to_portable_model_rejects_functional_models():
    inputs = keras.Input((9, 9, 1))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    with pytest.raises(TypeError, match="keras.Sequential"):
        export.to_portable_model(model)


# ---------------------------------------------------------------------------
# save_artifacts and fresh-process loading
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ASSIGNMENTS)
def test_save_artifacts_layout(exported, mode):
    item = exported[mode]
    assert item.paths == {
        "keras": str(item.dir / "model.keras"),
        "saved_model": str(item.dir / "saved_model" / "1"),
    }
    assert (item.dir / "model.keras").is_file()
    assert (item.dir / "saved_model" / "1" / "saved_model.pb").is_file()
    assert (item.dir / "saved_model" / "1" / "variables").is_dir()


@pytest.mark.parametrize("mode", ASSIGNMENTS)
def test_artifacts_load_in_fresh_process_without_package(exported, fresh_results, mode):
    expected = exported[mode].expected
    from_keras, from_saved_model = fresh_results[mode]
    assert from_keras.shape == from_saved_model.shape == expected.shape
    assert np.abs(from_keras - expected).max() <= TOL
    assert np.abs(from_saved_model - expected).max() <= TOL


def test_grown_model_loads_in_fresh_process_and_reproduces_test_accuracy(grown_digits, fresh_results):
    metrics = json.loads((grown_digits.output_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] == grown_digits.metrics["test_accuracy"]
    from_keras, from_saved_model = fresh_results["grown"]
    y = grown_digits.y_test
    assert from_keras.shape == from_saved_model.shape == (len(y), 10)
    assert np.abs(from_keras - from_saved_model).max() <= TOL
    assert float((from_keras.argmax(-1) == y).mean()) == metrics["test_accuracy"]
    assert float((from_saved_model.argmax(-1) == y).mean()) == metrics["test_accuracy"]


def test_grown_portable_file_reproduces_stage_purities(grown_digits):
    # The portable .keras file keeps the stage{i}_assign score layers, so the
    # cluster maps (and purities) computed from it equal the pipeline's.
    model = keras.saving.load_model(grown_digits.output_dir / "model.keras")
    assert not _has_cluster_assignment(model)
    maps = assignments(model, grown_digits.x_test)
    assert [m.shape for m in maps] == [(len(grown_digits.y_test), 9, 9), (len(grown_digits.y_test), 3, 3)]
    purities = stage_purities(maps, grown_digits.latents_test)
    recorded = [s["test_purity"] for s in grown_digits.metrics["stages"][:2]]
    assert purities == pytest.approx(recorded, abs=1e-12)
    assert "test_purity" not in grown_digits.metrics["stages"][2]


# ---------------------------------------------------------------------------
# Overwrite protection
# ---------------------------------------------------------------------------


def _saved_model_predict(path, x):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (arg,) = serve.structured_input_signature[1].keys()
    (logits,) = serve(**{arg: tf.constant(x)}).values()
    return logits.numpy()


def test_save_artifacts_refuses_existing_then_overwrites(tmp_path):
    first = _grown_style_model("hard", seed=10)
    second = _grown_style_model("hard", seed=11)
    x = _inputs(seed=10)
    out = tmp_path / "artifacts"
    export.save_artifacts(first, str(out))
    keras_file = out / "model.keras"
    pb_file = out / "saved_model" / "1" / "saved_model.pb"
    keras_bytes, pb_bytes = _read_bytes(keras_file), _read_bytes(pb_file)
    keras_mtime = os.stat(keras_file).st_mtime_ns

    with pytest.raises(FileExistsError, match="model.keras already exists.*overwrite"):
        export.save_artifacts(second, str(out))
    assert _read_bytes(keras_file) == keras_bytes
    assert os.stat(keras_file).st_mtime_ns == keras_mtime
    assert _read_bytes(pb_file) == pb_bytes

    # A lone existing SavedModel is protected too, and nothing is written before refusing.
    keras_file.unlink()
    with pytest.raises(FileExistsError, match="saved_model.*already exists"):
        export.save_artifacts(second, str(out))
    assert not keras_file.exists()
    assert _read_bytes(pb_file) == pb_bytes

    export.save_artifacts(first, str(out), overwrite=True)  # restore the first model's artifacts
    assert _read_bytes(pb_file) != b""
    paths = export.save_artifacts(second, str(out), overwrite=True)
    assert paths["keras"] == str(keras_file)
    expected_second = second.predict(x, verbose=0)
    assert np.abs(expected_second - first.predict(x, verbose=0)).max() > 1e-3
    reloaded = keras.saving.load_model(keras_file)
    assert np.abs(reloaded.predict(x, verbose=0) - expected_second).max() <= TOL
    assert np.abs(_saved_model_predict(out / "saved_model" / "1", x) - expected_second).max() <= TOL


def test_export_saved_model_refuses_existing_path(tmp_path):
    model = _grown_style_model("soft", seed=12)
    target = tmp_path / "sm"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="already exists"):
        export.export_saved_model(model, str(target))
    assert (target / "keep.txt").read_text() == "keep"
    assert export.export_saved_model(model, str(target), overwrite=True) == str(target)
    assert not (target / "keep.txt").exists()
    assert (target / "saved_model.pb").is_file()
