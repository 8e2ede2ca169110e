"""The growth on Keras' JAX backend, in a fresh process with TensorFlow made unimportable.

The GPU image we run on has JAX but no TensorFlow, so this checks the whole
path a GPU run takes (data as NumPy arrays, `LayerwiseTrainer.begin` before
`fit`, the k-means step under `jax.jit`, the end-to-end baseline) on the CPU, and that it gives the same kind of result as the
TensorFlow backend: a near-perfect classifier with pure clusters on the
paper's generative model.
"""

import json
import os

import pytest

pytest.importorskip("jax", reason="jax is not installed (pip install -e .[test] installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BLOCK_TENSORFLOW = r"""
import json, os, sys, tempfile
blocker = tempfile.mkdtemp()
os.makedirs(os.path.join(blocker, "tensorflow"))
with open(os.path.join(blocker, "tensorflow", "__init__.py"), "w") as f:
    f.write("raise ImportError('TensorFlow is blocked in this test')")
sys.path.insert(0, blocker)
os.environ["KERAS_BACKEND"] = "jax"
"""

SCRIPT = BLOCK_TENSORFLOW + r"""
import keras, numpy as np
from layerwise_keras.runs.config import load_config
from layerwise_keras.clustering.purity import purity
from layerwise_keras.runs.pipeline import end_to_end, grow, load_splits
import layerwise_keras as lk

config = load_config("hierarchical_2level")
splits = load_splits(config["dataset"], seed=0)
model, ours = grow(config, splits, seed=0, verbose=0)
maps = lk.assignments(model, splits["x_test"])
config["dataset"].setdefault("options", {})
base_model, base = end_to_end(config, splits, seed=0, verbose=0)
print(json.dumps({
    "backend": keras.backend.backend(),
    "tensorflow_loaded": "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None
        and hasattr(sys.modules["tensorflow"], "__version__"),
    "test_accuracy": ours["test_accuracy"],
    "purity": [s.get("test_purity") for s in ours["stages"]],
    "baseline_accuracy": base["test_accuracy"],
    "n_maps": len(maps),
}))
"""


def test_growth_on_jax_backend_without_tensorflow(fresh_python):
    result = fresh_python(SCRIPT, ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    assert out["tensorflow_loaded"] is False
    assert out["test_accuracy"] >= 0.98
    assert out["purity"][0] >= 0.98
    assert out["baseline_accuracy"] >= 0.9
    assert out["n_maps"] == 1


README_SCRIPT = r"""
import json, os, re, sys, tempfile
os.environ["KERAS_BACKEND"] = "jax"
blocks = [b for page in sys.argv[1:] for b in re.findall(r"```python\n(.*?)```", open(page).read(), re.S)]
ran = []
for index, block in enumerate(blocks):
    if "TensorFlow backend only" in block:
        continue
    os.chdir(tempfile.mkdtemp())
    namespace = {"__name__": "__readme__"}
    exec(compile(block, f"README.md + docs[python block {index}]", "exec"), namespace)
    if index == 0:
        lk = namespace["lk"]
        maps = lk.assignments(namespace["model"], namespace["x_test"])
        quickstart_purity = min(lk.stage_purities(maps, namespace["latents_test"]))
    ran.append(index)
import keras
print(json.dumps({"backend": keras.backend.backend(), "ran": ran, "blocks": len(blocks),
                  "quickstart_purity": quickstart_purity}))
"""


def test_readme_snippets_run_unchanged_on_jax(fresh_python, tmp_path):
    """The Python snippets of the README and the user guide, as written, on `KERAS_BACKEND=jax` (TensorFlow installed).

    Only a snippet that says it needs the TensorFlow backend is skipped (the
    LiteRT/ONNX export: converting a JAX-backend model fails inside jax2tf).
    """
    script = tmp_path / "readme_on_jax.py"
    script.write_text(README_SCRIPT)
    pages = ("README.md", "docs/stage_kinds.md", "docs/tensorboard.md", "docs/tuning.md", "docs/serving.md")
    result = fresh_python([str(script)] + [os.path.join(ROOT, p) for p in pages], tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    assert out["ran"] == [0, 1, 2, 3] and out["blocks"] == 5, out  # quick start, stage kinds, monitoring, tuning
    assert out["quickstart_purity"] >= 0.98


KINDS_SCRIPT = BLOCK_TENSORFLOW + r"""
import keras, numpy as np
from layerwise_keras.growth.codes import nearest_mask
from layerwise_keras.runs.config import load_config
from layerwise_keras.runs.pipeline import grow, load_splits

scores = np.random.default_rng(0).integers(0, 4, size=(200, 8)).astype("float32")  # many ties
reference = np.zeros_like(scores)
for row, s in zip(reference, scores):
    row[np.argsort(-s, kind="stable")[:3]] = 1
config = load_config("hierarchical_2level")
config["dataset"].update(train=600, val=100, test=200)
config["stages"][0].update(whiten=1e-2, assignment="nearest", q=2, schedule="cosine")
config["stages"][-1].update(readout="pooled", pool_size=1, schedule="step")
splits = load_splits(config["dataset"], seed=0)
model, ours = grow(config, splits, seed=0, verbose=0)
print(json.dumps({"mask_matches": bool((np.asarray(nearest_mask(scores, 3)) == reference).all()),
                  "test_accuracy": ours["test_accuracy"],
                  "whitened": bool(model.get_layer("stage1_assign").whiten)}))
"""


def test_cifar_stage_kinds_on_jax_backend_without_tensorflow(fresh_python):
    result = fresh_python(KINDS_SCRIPT, ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["mask_matches"] and out["whitened"]
    # Measured 0.965 (2-core CPU; 600 training images, whitened nearest-2 code, pooled head).
    assert out["test_accuracy"] >= 0.85


HABITS_SCRIPT = BLOCK_TENSORFLOW + r"""
import csv, keras, numpy as np, tempfile
import layerwise_keras as lk
from layerwise_keras.datasets import hierarchical_digits

x, y, _ = hierarchical_digits(240, seed=5)
def setup(loss="sparse_categorical_crossentropy"):
    trainer = lk.LayerwiseTrainer([lk.Stage(8, 3, strides=3, clusters=8, epochs=1), lk.Stage(16, 3, strides=3)], 10,
                                  kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", loss, metrics=["accuracy"])
    return trainer, model
errors = {}
for name, labels, callbacks in [("strings", np.array([str(v) for v in y]), []), ("too_large", y + 10, []),
                                ("early_stopping", y, [keras.callbacks.EarlyStopping(patience=1)])]:
    trainer, model = setup()
    try:
        model.fit(x, labels, epochs=trainer.total_epochs, callbacks=[trainer] + callbacks, verbose=0)
    except ValueError as err:
        errors[name] = str(err)[:80]
from layerwise_keras.runs.config import load_config
from layerwise_keras.runs.pipeline import grow, load_splits
cached = load_config("hierarchical_digits")
cached["dataset"].update(train=100, val=20, test=20)
try:  # a cached growth is TensorFlow-only: said before anything trains
    grow(dict(cached, cache=True), load_splits(cached["dataset"]), verbose=0)
except ValueError as err:
    errors["cache"] = str(err)
try:  # and so is grow_cached itself, said by name rather than as a missing tensorflow module
    from layerwise_keras.growth.cached import grow_cached
except ImportError as err:
    errors["grow_cached"] = str(err)
trainer, model = setup()
path = tempfile.mkdtemp() + "/log.csv"
model.fit(x, y, epochs=trainer.total_epochs, callbacks=[keras.callbacks.CSVLogger(path), trainer], verbose=0)
rows = list(csv.DictReader(open(path)))
saved = tempfile.mkdtemp() + "/m.keras"
model.save(saved)
print(json.dumps({"backend": keras.backend.backend(), "errors": errors, "from_logits": model.loss.get_config()["from_logits"],
                  "stages": [r["stage"] for r in rows], "inertia": [r["kmeans_inertia"] for r in rows], "finished": trainer.finished,
                  "reloaded": type(keras.saving.load_model(saved)).__name__}))
"""


def test_keras_habits_on_jax_backend_without_tensorflow(fresh_python):
    """Fit checks, refused callbacks, string losses, CSVLogger and .keras reloads on JAX (issue 23)."""
    result = fresh_python(HABITS_SCRIPT, ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    assert out["errors"]["strings"].startswith("`y` holds strings")
    assert out["errors"]["too_large"].startswith("`y` must be class ids in 0..9")
    assert "EarlyStopping beside the trainer" in out["errors"]["early_stopping"]
    assert "TensorFlow-only" in out["errors"]["cache"] and "Keras' jax backend" in out["errors"]["cache"]
    assert out["errors"]["grow_cached"].startswith("layerwise_keras.growth.cached (grow_cached)")
    assert "TensorFlow-only" in out["errors"]["grow_cached"] and "Keras' jax backend" in out["errors"]["grow_cached"]
    assert out["from_logits"] is True and out["finished"] is True
    assert out["stages"] == ["1", "2"] and float(out["inertia"][0]) > 0 and out["inertia"][1] == "nan"
    assert out["reloaded"] == "LayerwiseSequential"
