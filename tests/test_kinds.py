"""Every row of the table of stage kinds (`growth.kinds.KINDS`) grows, exports, tunes and grows cached.

Each row carries a small growth that uses its kind (`StageKind.example`, for
12x12x1 images and 3 classes); the tests here grow it with the
`LayerwiseTrainer` on a small seeded problem and check, row by row: the
SavedModel, LiteRT and ONNX files predict what Keras predicts and contain the
row's ops, the tuner builds and configures it from its default search space
(and tunes the row's `tuned_by` keys), and the cached growth of the same
config agrees with the uncached one on the grown structure, every layer's
output shape, the per-epoch stages and learning rates, and stores the code
as the row says. `tests/test_saving.py` round-trips every row in a fresh
process. A new kind is covered by adding its row.
"""

import os

import keras
import numpy as np
import pytest

from helpers import assert_export_parity
from layerwise_keras import export, tuning
from layerwise_keras.growth import kinds
from layerwise_keras.growth.stage import Stage
from layerwise_keras.runs.config import validate_config
from layerwise_keras.runs.pipeline import grow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = [kind.name for kind in kinds.KINDS]


def _problem(n, seed):
    """12x12x1 images; the label is the brightest of three horizontal bands (learnable by a 3x3/3 stage)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 12, 12, 1), dtype="float32")
    y = x[:, :, :, 0].reshape(n, 3, 48).mean(-1).argmax(-1).astype("int64")
    return x, y


@pytest.fixture(scope="module")
def splits():
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (_problem(n, s) for n, s in ((384, 0), (64, 1), (64, 2)))
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val, "x_test": x_test,
            "y_test": y_test, "num_classes": 3}


def _config(kind, **extra):
    stages = [Stage(**dict(arguments, epochs=2, schedule="cosine")).get_config() for arguments in kind.example]
    return validate_config({"name": f"kind_{kind.name}", "dataset": {"name": "hierarchical_digits"},
                            "stages": stages, "optimizer": {"class_name": "Adam", "config": {"learning_rate": 3e-3}},
                            "batch_size": 64, "seed": 0, **extra})


@pytest.fixture(scope="module")
def grown(splits):
    """Every row's example grown in `fit` with the `LayerwiseTrainer` (and its figures)."""
    out = {}
    for kind in kinds.KINDS:
        keras.utils.set_random_seed(0)
        out[kind.name] = grow(_config(kind), splits, seed=0, verbose=0)
    return out


def test_the_table_is_consistent():
    assert len(set(NAMES)) == len(NAMES)
    assert kinds.ASSIGNMENTS == ("hard", "nearest", "soft", "triangle")
    for kind in kinds.KINDS:
        stages = [Stage(**arguments) for arguments in kind.example]
        assert any(kind.selects(stage) for stage in stages), kind.name  # the example uses its kind
        assert kind.label and kind.label.split(" ")[0].format(q=2) in kinds.describe(stages)
        assert set(kind.tuned_by) <= set(kinds.KNOBS) and kind.litert_ops and kind.onnx_ops
        assert (kind.code is not None) == (kind.name in kinds.ASSIGNMENTS)
    assert set(kinds.KNOBS) <= set(tuning.space.SPACE_KEYS)
    assert [name for name in kinds.ASSIGNMENTS if kinds.caches_as_ids(name, q=2)] == ["hard"]
    # The user guide shows the table as it is.
    with open(os.path.join(ROOT, "docs", "stage_kinds.md")) as f:
        guide = f.read()
    assert kinds.markdown() in guide, "docs/stage_kinds.md: paste kinds.markdown() between its kinds-table markers"


@pytest.mark.parametrize("name", NAMES)
def test_every_kind_grows_and_its_exports_predict_the_same_with_its_ops(name, grown, splits, tmp_path):
    model, figures = grown[name]
    kind = kinds.BY_NAME[name]
    assert np.isfinite(figures["history"]["loss"]).all()
    x = splits["x_test"]
    expected = model.predict(x, verbose=0)
    assert_export_parity(model, x, expected, tmp_path, min_classes=1)
    assert kind.litert_ops <= {d["op"] for d in export.describe_litert(str(tmp_path / "m.tflite"))}
    import onnx

    assert kind.onnx_ops <= {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}


@pytest.mark.parametrize("name", NAMES)
def test_every_kind_builds_in_the_tuner_and_its_knobs_are_tuned(name):
    kind = kinds.BY_NAME[name]
    config = _config(kind)
    hypermodel = tuning.LayerwiseHyperModel(config, (12, 12, 1), 3)  # the default space around the config
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert model.output_shape == (None, 3)
    # The first choice of every knob is the config's own: the default space keeps every stage's kinds.
    names = [[k.name for k in kinds.kinds_of(Stage.from_config(s))] for s in hypermodel.config_for(hp)["stages"]]
    assert names == [[k.name for k in kinds.kinds_of(Stage.from_config(s))] for s in config["stages"]]
    # Each of the row's knobs, given two values on the first stage, reaches the built network's config.
    stage = Stage.from_config(config["stages"][0])
    for key in kind.tuned_by:
        knob = kinds.KNOBS[key]
        current = getattr(stage, key)
        other = {"assignment": "soft" if current != "soft" else "hard", "q": 3, "whiten": 0.1, "gate": 2}[key]
        space = {key: [[current if current is not None else knob.none, other]]}
        if key == "q":
            space["assignment"] = [["nearest"]]
        tuned = tuning.LayerwiseHyperModel(config, (12, 12, 1), 3, space=space)
        hp = keras_tuner.HyperParameters()
        hp.Fixed(f"stage1_{key}", other)
        chosen = tuned.config_for(hp)["stages"][0]
        assert chosen[key] == other, (key, chosen)
        assert tuned.build(hp).output_shape == (None, 3)


def test_a_knob_is_refused_on_a_stage_without_its_field():
    config = _config(kinds.BY_NAME["hard"])
    with pytest.raises(ValueError, match="gate needs handoff='bottleneck'.*stage 1"):
        tuning.LayerwiseHyperModel(config, (12, 12, 1), 3, space={"gate": [[8, 0]]})


@pytest.mark.parametrize("name", NAMES)
def test_every_kind_grows_cached_as_it_grows_in_fit(name, grown, splits):
    kind = kinds.BY_NAME[name]
    model_a, figures_a = grown[name]
    keras.utils.set_random_seed(0)
    model_b, figures_b = grow(_config(kind, cache=True), splits, seed=0, verbose=0)
    assert [(l.name, l.output.shape) for l in model_a.layers] == [(l.name, l.output.shape) for l in model_b.layers]
    for key in ("stage", "learning_rate"):
        np.testing.assert_allclose(figures_b["history"][key], figures_a["history"][key], rtol=1e-6)
    assert [s["epochs"] for s in figures_b["stages"]] == [s["epochs"] for s in figures_a["stages"]] == [2, 2]
    # Stage 1's first epoch sees the same inputs in both paths.
    np.testing.assert_allclose(figures_b["history"]["loss"][0], figures_a["history"]["loss"][0], rtol=1e-3)
    if kind.code is not None:  # the code the second stage trains on, stored as the row says
        assert figures_b["stages"][1]["cache_dtype"] == ("int16" if kind.caches_as_ids else "float16")
