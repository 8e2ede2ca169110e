"""Serving artifacts: SavedModel versions, LiteRT (.tflite, float and int8), ONNX, TF Serving client.

Each artifact is run with its own runtime (`ai_edge_litert` interpreter,
onnxruntime, the SavedModel's `serving_default`) and compared with the Keras
model: float artifacts must agree on every top-1 class with logits within
1e-4; the int8 LiteRT model must agree on >= 99 % of a trained model's test
split. The session's `grown_digits` run is copied before anything is written
into it (it is shared, read-only).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types

import keras
import numpy as np
import pytest

from layerwise_keras import cli, export
from layerwise_keras.runs import exporting
from layerwise_keras.growth import kinds
from layerwise_keras.growth.kinds import ASSIGNMENTS

from helpers import grown_style_model

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
FLOAT_TOL = 1e-4
INT8_MIN_AGREEMENT = 0.99

# A small digits run that is actually trained (test accuracy ~0.998 in ~12 s on
# 2 cores): int8 agreement is only meaningful when logits are not near-ties. The
# session's `grown_digits` model (1 epoch per stage) is near chance, so its
# top-1 classes flip under any int8 scheme (measured: 0.83 agreement for
# `--int8`, 0.97 for dynamic-range quantisation); on this run `--int8` agrees
# on 100 % of the test split while quantising every op to int8 agrees on 12 %.
TRAINED_CONFIG = {
    "name": "trained_small_digits",
    "dataset": {"name": "hierarchical_digits", "train": 2000, "val": 100, "test": 500},
    "stages": [
        {"width": 16, "kernel_size": 3, "clusters": 16, "epochs": 3},
        {"width": 32, "kernel_size": 3, "clusters": 32, "epochs": 3},
        {"width": 32, "kernel_size": 3, "epochs": 3},
    ],
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.003}},
    "batch_size": 64,
    "seed": 0,
}



def _hand_built(assignment, seed=0):
    """A Sequential shaped like a grown model, with centroids near real embeddings."""
    return grown_style_model(assignment, seed, name=f"formats_{assignment}")


def _export(*argv):
    return cli.main(["export", *map(str, argv)])


def _json_out(capsys):
    return json.loads(capsys.readouterr().out)


def _stat(path):
    with open(path, "rb") as f:
        return f.read(), os.stat(path).st_mtime_ns


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory):
    """Per assignment mode: the model, inputs, Keras logits and its .tflite / .onnx files."""
    root = tmp_path_factory.mktemp("formats")
    result = {}
    for i, mode in enumerate(ASSIGNMENTS):
        model, x = _hand_built(mode, seed=20 + i)
        result[mode] = types.SimpleNamespace(
            model=model,
            x=x,
            expected=model.predict(x, verbose=0),
            litert=export.export_litert(model, str(root / f"{mode}.tflite")),
            onnx=export.export_onnx(model, str(root / f"{mode}.onnx")),
        )
    return result


@pytest.fixture(scope="module")
def run_copy(grown_digits, tmp_path_factory):
    """A private copy of the session's grown run folder (the CLI writes into it).

    It also exports `saved_model/7` with `export_run` and starts
    `saved_model_cli show` on it in the background (a fresh TensorFlow
    process takes ~10 s), for `test_saved_model_cli_lists_the_serving_signature`.
    """
    target = tmp_path_factory.mktemp("export_cli") / "run"
    shutil.copytree(grown_digits.output_dir, target)
    model = keras.saving.load_model(target / "model.keras")
    saved_model = exporting.export_run(str(target), "tf_saved_model", version=7, check=False)["path"]
    tool = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    show = subprocess.Popen(
        [tool, "show", "--dir", saved_model, "--tag_set", "serve", "--signature_def", "serving_default"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(target.parent),
    )
    yield types.SimpleNamespace(
        dir=target, expected=model.predict(grown_digits.x_test, verbose=0), x=grown_digits.x_test,
        saved_model=saved_model, show=show,
    )
    if show.poll() is None:
        show.kill()
        show.communicate()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from layerwise_keras.runs.pipeline import load_splits, run

    out = tmp_path_factory.mktemp("trained") / "run"
    metrics = run(json.loads(json.dumps(TRAINED_CONFIG)), str(out), verbose=0)
    splits = load_splits(TRAINED_CONFIG["dataset"], seed=TRAINED_CONFIG["seed"])
    return types.SimpleNamespace(dir=out, metrics=metrics, x=splits["x_test"], y=splits["y_test"])


# ---------------------------------------------------------------------------
# CLI on the grown digits run: every format, refusal, --overwrite, errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, relpath, predict",
    [
        ("litert", "model.tflite", export.predict_litert),
        ("onnx", "model.onnx", export.predict_onnx),
        ("tf_saved_model", None, export.predict_saved_model),  # the next free version
    ],
)
def test_cli_export_matches_keras_then_refuses_then_overwrites(run_copy, capsys, fmt, relpath, predict):
    if relpath is None:
        version = max(int(n) for n in os.listdir(run_copy.dir / "saved_model")) + 1
        relpath = f"saved_model/{version}"
    path = run_copy.dir / relpath
    assert not path.exists()
    assert _export(run_copy.dir, "--format", fmt) == 0
    summary = _json_out(capsys)
    assert summary["path"] == str(path) and summary["format"] == fmt
    assert summary["test_examples"] == len(run_copy.x)
    assert summary["top1_agreement"] == 1.0 and summary["max_abs_logit_diff"] <= FLOAT_TOL
    comparison = export.compare_predictions(run_copy.expected, predict(path, run_copy.x))
    assert comparison["top1_agreement"] == 1.0 and comparison["max_abs_logit_diff"] <= FLOAT_TOL

    marker = path / "saved_model.pb" if path.is_dir() else path
    before = _stat(marker)
    if fmt == "tf_saved_model":  # without --version, always a new version: no refusal
        assert _export(run_copy.dir, "--format", fmt, "--no-check") == 0
        assert _json_out(capsys)["path"] == str(run_copy.dir / "saved_model" / str(version + 1))
        refused = [run_copy.dir, "--format", fmt, "--version", str(version)]
    else:
        refused = [run_copy.dir, "--format", fmt]
    assert _export(*refused) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("layerwise-keras: error:") and "already exists" in captured.err
    assert "--overwrite" in captured.err
    assert _stat(marker) == before

    assert _export(*refused, "--overwrite", "--no-check") == 0
    assert _json_out(capsys) == {"format": fmt, "path": str(path)}
    assert os.stat(marker).st_mtime_ns != before[1]


def test_cli_int8_agrees_with_keras_on_a_trained_run(trained_run, capsys):
    assert trained_run.metrics["test_accuracy"] >= 0.95
    assert _export(trained_run.dir, "--format", "litert", "--int8") == 0
    summary = _json_out(capsys)
    path = trained_run.dir / "model_int8.tflite"
    assert summary["test_examples"] == len(trained_run.x) == 500
    assert summary["top1_agreement"] >= INT8_MIN_AGREEMENT
    model = keras.saving.load_model(trained_run.dir / "model.keras")
    expected = model.predict(trained_run.x, verbose=0)
    got = export.predict_litert(path, trained_run.x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    comparison = export.compare_predictions(expected, got)
    assert comparison["top1_agreement"] == summary["top1_agreement"] >= INT8_MIN_AGREEMENT
    assert float((got.argmax(-1) == trained_run.y).mean()) >= trained_run.metrics["test_accuracy"] - 0.01
    # What is quantised: the three convolutions and the readout run in int8; the two
    # stages' nearest-centroid scores (`stage{i}_assign`) and their argmax stay float.
    layout = [(d["op"], d["dtype"], "_assign" in d["output"]) for d in export.describe_litert(path)]
    weighted = [(op, dtype, assign) for op, dtype, assign in layout if op in ("CONV_2D", "FULLY_CONNECTED")]
    assert [dtype for op, dtype, _ in weighted if op == "CONV_2D"] == ["INT8"] * 3
    assert [dtype for op, dtype, assign in weighted if op == "FULLY_CONNECTED" and assign] == ["FLOAT32"] * 2
    assert weighted[-1] == ("FULLY_CONNECTED", "INT8", False)  # the readout
    assert [entry for entry in layout if entry[0] == "ARG_MAX"] == [("ARG_MAX", "INT32", False)] * 2


def test_cli_usage_errors_exit_2(run_copy, tmp_path, capsys):
    cases = [
        ([tmp_path / "missing", "--format", "onnx"], "does not exist"),
        ([tmp_path, "--format", "onnx"], "model.keras not found"),
        ([run_copy.dir, "--format", "onnx", "--int8"], "--int8 applies to --format litert only"),
        ([run_copy.dir, "--format", "litert", "--version", "3"], "--version applies to --format tf_saved_model"),
        ([run_copy.dir, "--format", "tf_saved_model", "--version", "0"], "positive integer"),
    ]
    for argv, message in cases:
        assert _export(*argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.err.startswith("layerwise-keras: error:") and message in captured.err, captured.err
        assert captured.out == ""
    assert not (tmp_path / "model.onnx").exists() and not (run_copy.dir / "saved_model" / "0").exists()
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(run_copy.dir), "--format", "coreml"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Python API: every assignment mode through LiteRT and ONNX
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["litert", "onnx"])
@pytest.mark.parametrize("mode", ASSIGNMENTS)
def test_float_artifacts_match_keras(hand_built, mode, fmt):
    item = hand_built[mode]
    got = export.predict_litert(item.litert, item.x) if fmt == "litert" else export.predict_onnx(item.onnx, item.x)
    assert got.shape == item.expected.shape == (64, 3)
    comparison = export.compare_predictions(item.expected, got)
    assert comparison["top1_agreement"] == 1.0
    assert comparison["max_abs_logit_diff"] <= FLOAT_TOL
    # The comparison is not vacuous: the inputs hit several clusters and classes.
    assert len(np.unique(item.expected.argmax(-1))) >= 2


@pytest.mark.parametrize("mode", ASSIGNMENTS)
def test_litert_graph_has_the_assignment_ops_and_only_builtins(hand_built, mode):
    ops = {d["op"] for d in export.describe_litert(hand_built[mode].litert)}
    assert kinds.BY_NAME[mode].litert_ops <= ops
    assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
    assert not any("FLEX" in op or op == "CUSTOM" for op in ops), ops  # no TF Select / custom ops


def test_serving_model_rewrites_argmax_and_shares_weights(hand_built):
    model = hand_built["hard"].model
    portable = export.to_portable_model(model)
    served = export.serving_model(portable)
    names = [type(op).__name__ for op in served.operations]
    assert "Argmax" in [type(op).__name__ for op in portable.operations]
    assert "Argmax" not in names and "_ConverterArgmax" in names
    assert served.get_layer("stage1_conv") is portable.get_layer("stage1_conv")
    np.testing.assert_array_equal(served.predict(hand_built["hard"].x, verbose=0), hand_built["hard"].expected)


def test_litert_from_saved_model_path(hand_built, tmp_path):
    soft = hand_built["soft"]
    saved = export.export_saved_model(soft.model, str(tmp_path / "soft_sm"))
    path = export.export_litert(saved, str(tmp_path / "soft.tflite"))
    comparison = export.compare_predictions(soft.expected, export.predict_litert(path, soft.x))
    assert comparison["top1_agreement"] == 1.0 and comparison["max_abs_logit_diff"] <= FLOAT_TOL
    # A SavedModel of a hard assignment holds Keras' sign-bit argmax: a clear error, no file.
    hard_saved = export.export_saved_model(hand_built["hard"].model, str(tmp_path / "hard_sm"))
    with pytest.raises(ValueError, match="pass the Keras model"):
        export.export_litert(hard_saved, str(tmp_path / "hard.tflite"))
    assert not (tmp_path / "hard.tflite").exists()


def test_api_refuses_existing_files_and_bad_int8_arguments(hand_built, tmp_path):
    item = hand_built["triangle"]
    for path, call in (
        (tmp_path / "m.tflite", lambda p, **kw: export.export_litert(item.model, p, **kw)),
        (tmp_path / "m.onnx", lambda p, **kw: export.export_onnx(item.model, p, **kw)),
    ):
        path.write_bytes(b"keep")
        with pytest.raises(FileExistsError, match="already exists.*overwrite"):
            call(str(path))
        assert path.read_bytes() == b"keep"
        assert call(str(path), overwrite=True) == str(path)
        assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="needs representative_data"):
        export.export_litert(item.model, str(tmp_path / "q.tflite"), int8=True)
    with pytest.raises(ValueError, match="only used with int8"):
        export.export_litert(item.model, str(tmp_path / "q.tflite"), representative_data=item.x)
    with pytest.raises(ValueError, match="non-empty float array of images"):
        export.export_litert(item.model, str(tmp_path / "q.tflite"), representative_data=item.x[0], int8=True)
    assert not (tmp_path / "q.tflite").exists()


# ---------------------------------------------------------------------------
# TF Serving REST client example
# ---------------------------------------------------------------------------


def _client():
    spec = importlib.util.spec_from_file_location(
        "tf_serving_client", os.path.join(ROOT, "examples", "tf_serving_client.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_client_request_body_round_trips_and_serves_the_same_logits(run_copy, tmp_path, capsys):
    client = _client()
    images = run_copy.x[:3]
    body = json.loads(client.build_request_body(images))
    assert set(body) == {"signature_name", "instances"}
    assert body["signature_name"] == "serving_default"
    instances = np.asarray(body["instances"], dtype="float32")
    assert instances.shape == (3, 27, 27, 1)
    np.testing.assert_array_equal(instances, images)  # float32 -> JSON -> float32 is exact
    # What TF Serving does with the row format: one batch of the instances through serving_default.
    logits = export.predict_saved_model(run_copy.dir / "saved_model" / "1", instances)
    np.testing.assert_allclose(logits, run_copy.expected[:3], atol=FLOAT_TOL)
    response = json.dumps({"predictions": logits.tolist()})
    parsed, classes = client.parse_response(response)
    np.testing.assert_array_equal(classes, run_copy.expected[:3].argmax(-1))
    assert parsed.shape == (3, 10)

    np.save(tmp_path / "images.npy", images)
    assert client.main(["--images", str(tmp_path / "images.npy"), "--count", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert np.asarray(printed["instances"]).shape == (2, 27, 27, 1)
    with pytest.raises(ValueError, match="batch, height, width, channels"):
        client.build_request_body(images[0])
    with pytest.raises(ValueError, match="no 'predictions'"):
        client.parse_response('{"error": "model not found"}')


def test_saved_model_cli_lists_the_serving_signature(run_copy):
    assert run_copy.saved_model == str(run_copy.dir / "saved_model" / "7")
    out, err = run_copy.show.communicate(timeout=180)
    assert run_copy.show.returncode == 0, err[-3000:]
    inputs, outputs = out.split("contains the following output(s):")
    assert "inputs['images']" in inputs and "dtype: DT_FLOAT" in inputs and "shape: (-1, 27, 27, 1)" in inputs
    assert "outputs['output_0']" in outputs and "dtype: DT_FLOAT" in outputs and "shape: (-1, 10)" in outputs
    assert "Method name is: tensorflow/serving/predict" in out
