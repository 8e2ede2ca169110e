"""Shared fixtures: one tiny grown model per test session, fresh-process helpers."""

import copy
import os
import subprocess
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

# Tiny enough to grow in ~10 s on 2 CPU cores; three stages so that two are
# clustered and both get a test purity (stage maps 9x9 and 3x3 on 27x27 digits).
# Plain dicts (Stage fields): importing the package here would make every test
# file fail to collect whenever one module is broken.
TINY_GROWN_CONFIG = {
    "name": "tiny_digits",
    "dataset": {"name": "hierarchical_digits", "train": 1500, "val": 200, "test": 300},
    "stages": [
        {"width": 16, "kernel_size": 3, "clusters": 16, "epochs": 1},
        {"width": 16, "kernel_size": 3, "clusters": 24, "epochs": 1},
        {"width": 32, "kernel_size": 3, "epochs": 1},
    ],
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.003}},
    "batch_size": 64,
    "seed": 0,
}

_GROWN_RUNS = []


@pytest.fixture(scope="session")
def digits():
    """The `hierarchical_digits` splits of TINY_GROWN_CONFIG (1,500 / 200 / 300 images, seed 0), loaded once."""
    from layerwise_keras.runs.pipeline import load_splits

    return load_splits(TINY_GROWN_CONFIG["dataset"], seed=0)


@pytest.fixture(scope="session")
def grown_digits(tmp_path_factory):
    """Grows ONE tiny model on `hierarchical_digits` with `pipeline.run` per session.

    Returns a namespace with `output_dir` (the pipeline's output folder: model.keras,
    saved_model/1, metrics.json, config.json), `config`, `metrics` (run's return value),
    `x_test`, `y_test`, `latents_test` (the exact test split the run evaluated on).
    Treat everything as read-only: the run is shared by every test of the session.
    """
    from layerwise_keras.runs.pipeline import load_splits, run

    assert not _GROWN_RUNS, "the session's grown model must be built only once"
    _GROWN_RUNS.append(True)
    output_dir = tmp_path_factory.mktemp("grown_digits") / "run"
    config = copy.deepcopy(TINY_GROWN_CONFIG)
    metrics = run(config, str(output_dir), verbose=0)
    splits = load_splits(config["dataset"], seed=config["seed"])
    assert metrics["test_examples"] == len(splits["y_test"])
    return types.SimpleNamespace(
        output_dir=output_dir,
        config=config,
        metrics=metrics,
        x_test=splits["x_test"],
        y_test=splits["y_test"],
        latents_test=splits["latents_test"],
    )


@pytest.fixture(scope="session")
def fresh_python():
    """Returns `run(script_or_args, cwd, timeout=180)`: a new Python process (TF logs quiet).

    A str is run as `python -c script`; a list as `python *args`. Returns the
    `subprocess.CompletedProcess` (text mode, stdout/stderr captured).
    """
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.setdefault("CUDA_VISIBLE_DEVICES", "")

    def run(script_or_args, cwd, timeout=180):
        args = ["-c", script_or_args] if isinstance(script_or_args, str) else list(script_or_args)
        return subprocess.run(
            [sys.executable, *args], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout
        )

    return run
