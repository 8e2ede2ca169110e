"""Every model the toolkit makes loads with a plain `keras.saving.load_model` in a fresh process.

The models (grown by the pipeline, built for every stage kind, grown on cached
inputs, their portable forms) are saved here; new Python processes then load
them after `import layerwise_keras` in either order with `import keras`, after
touching other subpackages first, through `layerwise_keras.saving`, and on the
JAX backend, and must predict what the saved model predicted.
"""

import json

import keras
import numpy as np
import pytest

from layerwise_keras import Stage, registration
from layerwise_keras.export import to_portable_model
from layerwise_keras.growth import kinds
from layerwise_keras.growth.builder import grown_model
from layerwise_keras.growth.cached import grow_cached

# One growth per row of the table of stage kinds (assignments, whitening, cluster-first, heads, hand-offs, gate).
KINDS = {kind.name: [Stage(**arguments) for arguments in kind.example] for kind in kinds.KINDS}

LOADER = r"""
import json, os, sys
order = sys.argv[1]
if order == "jax":
    os.environ["KERAS_BACKEND"] = "jax"
if order == "keras_first":
    import keras
    import layerwise_keras
elif order == "subpackages_first":
    import layerwise_keras
    import layerwise_keras.datasets, layerwise_keras.cli, layerwise_keras.runs.config
    import keras
elif order == "saving_module":
    from layerwise_keras.saving import load_keras_file
    import keras
else:
    import layerwise_keras
    import keras
import numpy as np
paths = json.loads(sys.argv[2])
x = np.load(sys.argv[3])
out = {}
for name, path in paths.items():
    model = load_keras_file(path) if order == "saving_module" else keras.saving.load_model(path)
    out[name] = np.asarray(model.predict(x, verbose=0)).tolist()
print("RESULT " + json.dumps({"backend": keras.backend.backend(), "predictions": out}))
"""


def _set_centroids(model, seed=0):
    """Gives every assignment layer of an untrained grown model distinct centroids (so predictions differ)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "set_centroids"):
            k, d = keras.ops.shape(layer.centroids)
            layer.set_centroids(rng.normal(size=(int(k), int(d))).astype("float32"))


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, grown_digits):
    folder = tmp_path_factory.mktemp("saved")
    rng = np.random.default_rng(0)
    x = rng.random((6, 12, 12, 1), dtype="float32")
    models = {}
    for name, stages in KINDS.items():
        model = grown_model(stages, (12, 12, 1), 3, seed=0, name=name)
        _set_centroids(model)
        models[name] = model
        models[name + "_portable"] = to_portable_model(model)
    y = rng.integers(0, 3, 60)
    cached, _, _ = grow_cached([Stage(8, 3, clusters=4), Stage(8, 3)], rng.random((60, 12, 12, 1), dtype="float32"),
                               y, 3, {"class_name": "SGD", "config": {"learning_rate": 0.01}}, 30, verbose=0)
    models["cached"] = cached
    paths, expected = {}, {}
    for name, model in models.items():
        paths[name] = str(folder / f"{name}.keras")
        model.save(paths[name])
        expected[name] = np.asarray(model.predict(x, verbose=0))
    # The pipeline's grown model (a LayerwiseSequential grown inside fit) on its own images.
    paths["grown_digits"] = str(grown_digits.output_dir / "model.keras")
    x_digits = grown_digits.x_test[:6]
    expected["grown_digits"] = np.asarray(keras.saving.load_model(paths["grown_digits"]).predict(x_digits, verbose=0))
    np.save(folder / "x.npy", x)
    np.save(folder / "x_digits.npy", x_digits)
    return folder, paths, expected


def _load_in_fresh_process(fresh_python, folder, paths, order):
    results = {}
    for inputs, names in (("x.npy", [n for n in paths if n != "grown_digits"]), ("x_digits.npy", ["grown_digits"])):
        script = folder / "loader.py"
        script.write_text(LOADER)
        proc = fresh_python([str(script), order, json.dumps({n: paths[n] for n in names}), str(folder / inputs)],
                            cwd=folder, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
        out = json.loads(line[len("RESULT "):])
        results.update(out["predictions"])
        backend = out["backend"]
    return backend, results


@pytest.mark.parametrize("order", ["package_first", "keras_first", "subpackages_first", "saving_module"])
def test_every_model_loads_after_importing_the_package(saved_models, fresh_python, order):
    folder, paths, expected = saved_models
    backend, results = _load_in_fresh_process(fresh_python, folder, paths, order)
    assert backend == "tensorflow"
    assert set(results) == set(expected)
    for name, predictions in results.items():
        np.testing.assert_allclose(np.asarray(predictions), expected[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_every_model_loads_on_the_jax_backend(saved_models, fresh_python):
    pytest.importorskip("jax", reason="jax is not installed (pip install -e .[test] installs it)")
    folder, paths, expected = saved_models
    backend, results = _load_in_fresh_process(fresh_python, folder, paths, "jax")
    assert backend == "jax"
    for name, predictions in results.items():
        # Another backend's kernels: the same predictions within float32 noise, the same classes.
        np.testing.assert_allclose(np.asarray(predictions), expected[name], rtol=1e-3, atol=1e-3, err_msg=name)


def test_importing_the_package_does_not_import_keras(fresh_python, tmp_path):
    """The registration waits for `keras` (a hook), so the CLI can answer argument errors without TensorFlow."""
    proc = fresh_python("import sys, layerwise_keras; print('keras' in sys.modules, 'tensorflow' in sys.modules);"
                        "import keras; print('layerwise_keras>LayerwiseSequential' in keras.saving.get_custom_objects())",
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", "False", "True"]


def test_register_serializables_names_every_class():
    names = registration.register_serializables()
    assert sorted(names) == ["layerwise_keras>ClusterAssignment", "layerwise_keras>CodeGate",
                             "layerwise_keras>LayerwiseSequential"]
    registration.uninstall_hook()  # idempotent once keras is imported


def test_every_kind_saved_another_network(saved_models):
    """Guards the fixture: each row of the table of kinds builds other layers (else the loads would prove less)."""
    signatures = set()
    for name in kinds.BY_NAME:
        model = keras.saving.load_model(saved_models[1][name])
        signatures.add(tuple((layer.name, type(layer).__name__, getattr(layer, "assignment", None),
                              getattr(layer, "whiten", None), getattr(layer, "filters", None))
                             for layer in model.layers))
    assert len(signatures) == len(kinds.KINDS)
