"""Tests for the `layerwise-keras` command line (layerwise_keras.cli)."""

import json
import os
import re

import pytest

from layerwise_keras import cli
from helpers import TINY_CLI_CONFIG

# TINY_CLI_CONFIG: smaller than the session's grown model, since the CLI tests train it three times.


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_CLI_CONFIG))
    return path


def _train(output, config, *extra):
    return cli.main(["train", "--output", str(output), "--config", str(config), "--verbose", "0", *extra])


def _stat(path):
    with open(path, "rb") as f:
        return f.read(), os.stat(path).st_mtime_ns


def test_train_writes_artifacts_then_refuses_then_overwrites(tmp_path, tiny_config, capsys):
    out = tmp_path / "runs" / "exp1" / "digits"  # its parents do not exist yet: train creates them
    assert _train(out, tiny_config) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["output"] == str(out)

    assert (out / "model.keras").is_file()
    assert (out / "saved_model" / "1" / "saved_model.pb").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_accuracy", "stages", "train_seconds", "machine"} <= set(metrics)
    # The tiny config trains 1 epoch per stage on 300 images: too little for the later stages (issue 12), but
    # stage 1 learns its strokes (test purity 0.91-0.94 over seeds 0-3 on the 2-core development CPU).
    assert metrics["stages"][0]["test_purity"] >= 0.8, metrics["stages"][0]
    assert summary["test_accuracy"] == metrics["test_accuracy"]
    assert metrics["test_examples"] == 100
    assert metrics["train_seconds"] > 0
    assert {"python", "tensorflow", "keras", "cpu_count"} <= set(metrics["machine"])
    assert isinstance(metrics["machine"]["cpu_model"], str) and metrics["machine"]["cpu_model"]  # the CPU's name
    assert [s["stage"] for s in metrics["stages"]] == [1, 2, 3]
    assert all(isinstance(stage["test_purity"], float) for stage in metrics["stages"][:2])  # the clustered stages
    assert "test_purity" not in metrics["stages"][2]
    written = json.loads((out / "config.json").read_text())
    assert written["stages"] == TINY_CLI_CONFIG["stages"]
    assert written["dataset"] == TINY_CLI_CONFIG["dataset"]
    assert written["seed"] == 1

    # Same non-empty folder again: a usage error before any training, nothing touched.
    before = _stat(out / "metrics.json")
    keras_before = _stat(out / "model.keras")
    assert _train(out, tiny_config) == 2
    captured = capsys.readouterr()
    assert "layerwise-keras: error:" in captured.err
    assert "not empty" in captured.err and "--overwrite" in captured.err
    assert captured.out == ""
    assert _stat(out / "metrics.json") == before
    assert _stat(out / "model.keras") == keras_before

    # --overwrite replaces the artifacts (with a different seed, so the run differs),
    # drops files derived from the replaced model, and keeps the user's own files.
    (out / "model.tflite").write_bytes(b"stale")
    (out / "saved_model" / "2").mkdir()
    (out / "notes.txt").write_text("mine")
    assert _train(out, tiny_config, "--overwrite", "--seed", "2") == 0
    assert not (out / "model.tflite").exists() and not (out / "saved_model" / "2").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads(capsys.readouterr().out)["output"] == str(out)
    after = _stat(out / "metrics.json")
    assert after[1] != before[1] and after[0] != before[0]
    assert json.loads(after[0])["seed"] == 2
    assert json.loads((out / "config.json").read_text())["seed"] == 2
    assert (out / "saved_model" / "1" / "saved_model.pb").is_file()
    assert _stat(out / "model.keras") != keras_before


def test_missing_config_file_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert _train(tmp_path / "run", missing) == 2
    err = capsys.readouterr().err
    assert "layerwise-keras: error:" in err
    assert "No configuration file" in err and "nope.json" in err
    assert not (tmp_path / "run").exists()


def test_unknown_config_key_is_a_usage_error(tmp_path, capsys):
    bad = dict(TINY_CLI_CONFIG, learning_rate=0.1)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert _train(tmp_path / "run", path) == 2
    err = capsys.readouterr().err
    assert "unknown keys ['learning_rate']" in err
    assert not (tmp_path / "run").exists()


def test_malformed_config_and_dataset_mismatch_are_usage_errors(tmp_path, tiny_config, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"dataset": ')
    assert _train(tmp_path / "run", broken) == 2
    assert "Cannot read configuration" in capsys.readouterr().err

    code = cli.main(
        ["train", "--output", str(tmp_path / "run"), "--config", str(tiny_config), "--dataset", "hierarchical"]
    )
    assert code == 2
    assert "does not match" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(batch_size=None), "batch_size must be a positive integer"),
        (lambda c: c["stages"][0].update(width=float("inf")), "stages[0].width must be an integer or null, got inf"),
        (lambda c: c["stages"][0].update(clusters=1), "bad stage: stages[0].clusters must be an integer >= 2"),
        (lambda c: c["dataset"].update(train=None), "dataset.train must be a positive integer, got None"),
        (lambda c: c["dataset"].update(trian=1000), "unknown keys ['dataset.trian'] (did you mean 'train'?)"),
        (lambda c: c["dataset"].update(options={"colour": True}), "unknown keys ['dataset.options.colour']"),
        (lambda c: c["dataset"].update(name="cifar"), "unknown name 'cifar' (did you mean 'cifar10'?)"),
        (lambda c: c["optimizer"]["config"].update(learnin_rate=0.1),
         "unknown keys ['optimizer.config.learnin_rate'] (did you mean 'learning_rate'?)"),
    ],
    ids=["batch_size_null", "width_infinity", "clusters_one", "train_null", "dataset_typo", "unknown_option",
         "unknown_dataset", "optimizer_typo"],
)
def test_bad_config_values_exit_2_without_traceback(tmp_path, capsys, mutate, message):
    config = json.loads(json.dumps(TINY_CLI_CONFIG))
    mutate(config)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    assert _train(tmp_path / "run", path) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise-keras: error:") and message in err
    assert not (tmp_path / "run").exists()


def test_output_that_is_a_file_is_a_usage_error(tmp_path, tiny_config, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep")
    assert _train(target, tiny_config, "--overwrite") == 2
    assert "is not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep"


def test_missing_required_arguments_exit_with_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train"])
    assert info.value.code == 2
    assert "--output" in capsys.readouterr().err


def test_module_entry_point_smoke(tmp_path, tiny_config, fresh_python):
    out = tmp_path / "smoke"
    proc = fresh_python(
        ["-m", "layerwise_keras.cli", "train", "--output", str(out), "--config", str(tiny_config), "--verbose", "0"],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "test_accuracy" in proc.stdout
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["output"] == str(out)
    assert (out / "metrics.json").is_file() and (out / "model.keras").is_file()


def test_samples_writes_a_png_and_refuses_to_overwrite(tmp_path, capsys):
    import tensorflow as tf

    out = tmp_path / "grid.png"
    assert cli.main(["samples", "--config", "hierarchical_2level", "--output", str(out), "--per-label", "3"]) == 0
    png = tf.io.decode_png(tf.io.read_file(str(out))).numpy()
    # 4 label rows x 3 images of 9x9 (+1 px padding), scaled 3x.
    assert png.shape == ((4 * 10 + 1) * 3, (3 * 10 + 1) * 3, 1)
    before = out.read_bytes()
    assert cli.main(["samples", "--config", "hierarchical_2level", "--output", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_baseline_trains_the_same_network_end_to_end(tmp_path, tiny_config, capsys):
    import keras

    out = tmp_path / "e2e"
    assert cli.main(["baseline", "--config", str(tiny_config), "--output", str(out), "--verbose", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "end_to_end" and summary["test_accuracy"] == metrics["test_accuracy"]
    assert len(metrics["val_accuracy"]) == 3  # one per epoch: the stages' epochs together
    model = keras.saving.load_model(out / "model.keras")
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.strides for c in convs] == [(3, 3)] * 3  # the grown network's convolutions, no assignments
    assert (out / "saved_model" / "1" / "saved_model.pb").is_file()
    assert cli.main(["baseline", "--config", str(tiny_config), "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_start_up_is_quiet_and_each_stage_end_is_one_readable_line(tmp_path, fresh_python):
    """No TensorFlow start-up lines (oneDNN, CUDA, cuInit) unless --verbose 2; a line as each stage begins,
    one as its k-means starts and ends, and one readable line per stage end."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CLI_CONFIG))
    env_script = ("import os, sys; os.environ.pop('TF_CPP_MIN_LOG_LEVEL', None); "
                  "from layerwise_keras.cli import main; sys.exit(main(sys.argv[1:]))")
    result = fresh_python(["-c", env_script, "train", "--config", str(config), "--output", str(tmp_path / "run"),
                           "--verbose", "1"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in ("oneDNN", "cuda", "cuInit", "absl::InitializeLog", "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr[:2000]
    trainer_lines = [line for line in result.stdout.splitlines() if line.startswith("LayerwiseTrainer:")]
    begins = [line for line in trainer_lines if " begins: " in line]
    assert [line.split(" begins")[0] for line in begins] == [f"LayerwiseTrainer: stage {n}/3" for n in (1, 2, 3)]
    assert "budget 1 epoch(s)" in begins[0] and "the classifier" in begins[2]
    kmeans = [line for line in trainer_lines if "k-means" in line and " done in " not in line]
    assert len(kmeans) == 4, kmeans  # start and end, stages 1 and 2
    assert re.fullmatch(r"LayerwiseTrainer: stage 2: k-means done: \d+ iterations on \d+ points in \d+\.\d s\.",
                        kmeans[3]), kmeans[3]
    lines = [line for line in trainer_lines if " done in " in line]
    assert len(lines) == 3, result.stdout[-2000:]
    assert re.fullmatch(r"LayerwiseTrainer: stage 1/3 done in \d+\.\d s: accuracy \d\.\d{4}, val accuracy \d\.\d{4}, "
                        r"loss \d+\.\d{4}, k-means \d+/8 clusters used \(entropy \d\.\d\d\), \d+ iterations, "
                        r"\d+\.\d s", lines[0]), lines[0]
    assert re.fullmatch(r"LayerwiseTrainer: stage 3/3 done in \d+\.\d s: accuracy \d\.\d{4}, val accuracy \d\.\d{4}, "
                        r"loss \d+\.\d{4}", lines[2]), lines[2]


# -- a Keras user's habits (issue 23): --version, --help, --dataset, errors before TensorFlow ----------------


def test_version_prints_the_package_version(capsys):
    import layerwise_keras

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"layerwise-keras {layerwise_keras.__version__}\n"


@pytest.mark.parametrize("command", ["train", "baseline", "tune", "samples"])
def test_help_lists_the_bundled_configs_and_where_the_keys_are_documented(command, capsys):
    from layerwise_keras.runs.config import bundled_configs

    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "bundled configs (" in out and ", ".join(bundled_configs()) in out
    assert "every key is described in the docstring of layerwise_keras/runs/config.py" in out


@pytest.mark.parametrize("name", ["hierarchical_digits", "hierarchical_2level", "cifar10_best"])
def test_dataset_names_a_bundled_config(name):
    config, path = cli._early_config(cli._parser().parse_args(["train", "--dataset", name, "--output", "run"]))
    assert config["name"] == name and path.endswith(os.path.join("configs", f"{name}.json"))


@pytest.mark.parametrize(
    "name, message",
    [
        ("cifar10", "--dataset cifar10: no bundled config named 'cifar10'; choices: cifar10_best, cifar10_paper, "
                    "cifar10_stacked, or pass --config FILE.json."),
        ("mnist", "--dataset mnist: no bundled config named 'mnist'; choices: cifar10_best, cifar10_paper, "
                  "cifar10_stacked, hierarchical_2level, hierarchical_3level, hierarchical_digits, or pass "
                  "--config FILE.json whose dataset.name is 'mnist'."),
        ("hierarchical_digit", "no bundled config named 'hierarchical_digit' (did you mean 'hierarchical_digits'?)"),
    ],
)
def test_dataset_without_a_bundled_config_lists_the_choices(tmp_path, capsys, name, message):
    assert cli.main(["train", "--dataset", name, "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise-keras: error: ") and message in err
    assert "No configuration file" not in err
    assert not (tmp_path / "run").exists()


def test_dataset_still_names_the_dataset_beside_config(tmp_path, tiny_config, capsys):
    code = cli.main(["train", "--config", str(tiny_config), "--dataset", "cifar10", "--output", str(tmp_path / "r")])
    assert code == 2
    assert "--dataset cifar10 does not match the config's dataset 'hierarchical_digits'" in capsys.readouterr().err


# Runs the CLI in a fresh interpreter and reports, at exit, whether TensorFlow or Keras got imported.
_NO_TF_WRAPPER = (
    "import sys\n"
    "from layerwise_keras.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exit:\n"
    "    code = exit.code\n"
    "print('heavy imports:', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--config", "{bad}", "--output", "{out}"], "unknown keys ['dataset.trian'] (did you mean 'train'?)"),
        (["baseline", "--config", "{bad}", "--output", "{out}"], "unknown keys ['dataset.trian']"),
        (["tune", "--config", "{bad}", "--max-trials", "1"], "unknown keys ['dataset.trian']"),
        (["samples", "--config", "{bad}", "--output", "{out}"], "unknown keys ['dataset.trian']"),
        (["train", "--config", "{typed}", "--output", "{out}"], "stages[1].kmeans.max_iterr"),
        (["train", "--dataset", "cifar10", "--output", "{out}"], "choices: cifar10_best, cifar10_paper"),
        (["train", "--config", "{missing}", "--output", "{out}"], "No configuration file"),
        (["train", "--output", "{out}", "--checkpoint-every", "0"], "expected a positive integer, got 0"),
        (["train", "--output", "{out}", "--verbose", "3"], "invalid choice: 3"),
        (["nope"], "invalid choice: 'nope'"),
    ],
    ids=["train", "baseline", "tune", "samples", "kmeans_typo", "dataset", "missing_file", "checkpoint_every",
         "verbose", "command"],
)
def test_usage_errors_answer_before_tensorflow_is_imported(tmp_path, fresh_python, argv, message):
    config = json.loads(json.dumps(TINY_CLI_CONFIG))
    config["dataset"]["trian"] = 1000
    (tmp_path / "bad.json").write_text(json.dumps(config))
    del config["dataset"]["trian"]
    config["stages"][1]["kmeans"] = {"max_iterr": 5}
    (tmp_path / "typed.json").write_text(json.dumps(config))
    paths = {"bad": tmp_path / "bad.json", "typed": tmp_path / "typed.json", "missing": tmp_path / "missing.json",
             "out": tmp_path / "run"}
    proc = fresh_python(["-c", _NO_TF_WRAPPER, *(a.format(**paths) for a in argv)], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip().endswith("heavy imports: False False"), proc.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [["--version"], ["train", "--help"]])
def test_version_and_help_import_neither_tensorflow_nor_keras(tmp_path, fresh_python, argv):
    proc = fresh_python(["-c", _NO_TF_WRAPPER, *argv], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("heavy imports: False False"), proc.stdout


def test_console_script_answers_a_config_error(tmp_path):
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "layerwise-keras")
    if not os.path.isfile(script):
        pytest.skip("the layerwise-keras console script is not installed beside this Python")
    config = dict(TINY_CLI_CONFIG, dataset={"name": "hierarchical_digits", "trian": 1000})
    (tmp_path / "bad.json").write_text(json.dumps(config))
    proc = subprocess.run([script, "train", "--config", str(tmp_path / "bad.json"), "--output", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (f"layerwise-keras: error: {tmp_path / 'bad.json'}: unknown keys ['dataset.trian'] "
                           "(did you mean 'train'?); dataset takes ['name', 'train', 'val', 'test', 'options'].\n")
