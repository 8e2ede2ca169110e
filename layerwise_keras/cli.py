"""The `layerwise-keras` command line.

```
layerwise-keras train --dataset hierarchical_digits --output saved_models/digits [--config FILE.json] [--seed N] [--overwrite | --resume] [--checkpoint-every N]
layerwise-keras baseline --config hierarchical_digits --output saved_models/digits_e2e [--seed N] [--overwrite]
layerwise-keras samples --config hierarchical_digits --output docs/images/hierarchical_digits.png
layerwise-keras report saved_models/digits [--output DIR] [--overwrite]
layerwise-keras export saved_models/digits --format {tf_saved_model,litert,onnx} [--int8] [--version N] [--overwrite]
layerwise-keras tune --config hierarchical_2level --max-trials 10 [--tuner random|hyperband|bayesian] [--overwrite]
layerwise-keras --version
```

Arguments and the configuration (`runs.config.check_config`: every key and
value type) are checked before TensorFlow is imported, so a usage error is
answered at once; the checks that need Keras (`runs.config.validate_config`:
the stages' ranges, the optimizer's class and keys) follow the import.
"""

import argparse
import difflib
import importlib.util
import json
import logging
import os
import sys
import textwrap

from layerwise_keras import __version__  # the package's __init__ imports nothing heavy

CONFIG_MODULE = "layerwise_keras.runs.config"


def _config_module():
    """Returns `layerwise_keras.runs.config` (it imports neither Keras nor TensorFlow)."""
    return importlib.import_module(CONFIG_MODULE)


def _integer(text, minimum=1):
    """An argparse type: an int >= `minimum` (1: `--max-trials`, ...; 0: `--seed`)."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
    return value


def _seed(text):
    return _integer(text, minimum=0)


def _configs_epilog(flag):
    """The --help lines listing the bundled configurations and where their keys are documented."""
    module = _config_module()
    names = ", ".join(module.bundled_configs())
    return "\n\n".join(textwrap.fill(text, 78) for text in (
        f"bundled configs ({flag} NAME): {names}.",
        f"config keys (top level, dataset and its options, stages[i] and their kmeans, optimizer and its "
        f"config): every key is described in {module.DOCS}.",
    ))


def _config_parser(sub, name, flag="--config", description=None, **kwargs):
    """A sub-command parser whose --help ends with `_configs_epilog`."""
    return sub.add_parser(name, description=textwrap.fill(description, 78) if description else None,
                          epilog=_configs_epilog(flag), formatter_class=argparse.RawDescriptionHelpFormatter,
                          **kwargs)


def _parser():
    parser = argparse.ArgumentParser(
        prog="layerwise-keras",
        description="Grow deep CNNs layer by layer (Malach & Shalev-Shwartz, arXiv 1803.09522) with Keras.",
    )
    parser.add_argument("--version", action="version", version=f"layerwise-keras {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = _config_parser(sub, "train", flag="--dataset or --config", help="grow, evaluate and export a model")
    train.add_argument("--dataset", default=None,
                       help="with no --config: the bundled config to train (default: hierarchical_digits); "
                            "with --config: the dataset name the config must use")
    train.add_argument("--config", default=None, help="a config .json file or a bundled config name")
    train.add_argument("--output", required=True, help="output folder (must be empty or absent)")
    train.add_argument("--seed", type=_seed, default=None, help="override the config's seed")
    train.add_argument("--overwrite", action="store_true", help="replace artifacts in a non-empty --output")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in --output from its last completed epoch (same command)")
    train.add_argument("--checkpoint-every", type=_integer, default=1, metavar="N",
                       help="write the resume checkpoint every N epochs and at every stage end (default 1)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras verbosity (0, 1 or 2)")
    train.add_argument("--baseline", action="store_true", help="also train the end-to-end SGD baseline")
    baseline = _config_parser(sub, "baseline", help="train the config's network end to end by SGD (no clustering)")
    baseline.add_argument("--config", required=True, help="a config .json file or a bundled config name")
    baseline.add_argument("--output", required=True, help="output folder (must be empty or absent)")
    baseline.add_argument("--seed", type=_seed, default=None, help="override the config's seed")
    baseline.add_argument("--overwrite", action="store_true", help="replace artifacts in a non-empty --output")
    baseline.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras verbosity (0, 1 or 2)")
    samples = _config_parser(sub, "samples", help="write a PNG grid of dataset samples, one row per label")
    samples.add_argument("--config", default="hierarchical_digits",
                         help="config whose dataset to draw (file or bundled name)")
    samples.add_argument("--output", required=True, help="PNG file to write")
    samples.add_argument("--per-label", type=_integer, default=10, help="images per row")
    samples.add_argument("--scale", type=_integer, default=3, help="nearest-neighbour upscaling")
    samples.add_argument("--seed", type=_seed, default=0, help="sampling seed")
    samples.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    _add_report_parser(sub)
    _add_tune_parser(sub)
    _add_export_parser(sub)
    return parser


def _add_report_parser(sub):
    report = sub.add_parser("report", help="write PNG pictures of a trained run (needs matplotlib)")
    report.add_argument("run_dir", help="the --output folder of `layerwise-keras train`")
    report.add_argument("--output", default=None, help="folder for the PNGs (default: RUN_DIR/report)")
    report.add_argument("--overwrite", action="store_true", help="replace existing PNGs")


def _report(args, config):
    from layerwise_keras.runs.report import write_report

    try:
        paths = write_report(args.run_dir, args.output, overwrite=args.overwrite)
    except ImportError as err:  # no matplotlib: a usage error, with the install hint
        raise ValueError(str(err)) from err
    print("\n".join(paths))
    return 0


def _add_tune_parser(sub):
    tune = _config_parser(
        sub, "tune", help="search stage settings with keras-tuner; write the best config",
        description="Search widths, K, assignment, epochs and learning rate (default space: around the "
                    "config's values, see layerwise_keras.tuning.default_space) over whole layerwise "
                    "growths; print the best and write DIRECTORY/PROJECT_NAME/best_config.json.")
    tune.add_argument("--config", required=True, help="the base config: a .json file or a bundled config name")
    tune.add_argument("--max-trials", type=_integer, required=True,
                      help="number of trials (for hyperband: a cap on the trials its brackets run)")
    tune.add_argument("--tuner", choices=("random", "hyperband", "bayesian"), default="random",
                      help="keras-tuner search algorithm (default: random)")
    tune.add_argument("--space", default=None, help="search-space .json file (default: derived from --config)")
    tune.add_argument("--max-epochs", type=_integer, default=None,
                      help="hyperband: most epochs per stage of a trial (default: the config's largest, >= 2)")
    tune.add_argument("--directory", default="runs/tuning", help="tuner folder (default: runs/tuning)")
    tune.add_argument("--project-name", default=None, help="search sub-folder (default: the config's name)")
    tune.add_argument("--seed", type=_seed, default=None, help="override the config's seed")
    tune.add_argument("--overwrite", action="store_true",
                      help="delete an earlier search in DIRECTORY/PROJECT_NAME (otherwise refused)")
    tune.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                      help="keras-tuner and Keras verbosity (0, 1 or 2)")


def _tune(args, config):
    try:
        from layerwise_keras import tuning
    except ImportError as err:  # no keras-tuner: a usage error, with the install hint
        raise ValueError(str(err)) from err
    space = tuning.load_space(args.space) if args.space else None
    result = tuning.tune(config, space=space, tuner=args.tuner, max_trials=args.max_trials,
                         max_epochs=args.max_epochs, directory=args.directory, project_name=args.project_name,
                         seed=args.seed, overwrite=args.overwrite, verbose=args.verbose)
    print(json.dumps({
        "best_hyperparameters": result.best_hyperparameters,
        result.tuner.oracle.objective.name: result.best_score,
        "best_trial": result.best_trial.trial_id,
        "trials": len(result.tuner.oracle.trials),
        "best_config": result.best_config_path,
    }, indent=2))
    return 0


def _add_export_parser(sub):
    export = sub.add_parser(
        "export", help="export a run's model.keras for serving: SavedModel, LiteRT (.tflite) or ONNX",
        description="Write RUN_DIR/saved_model/<version>/ (tf_saved_model), RUN_DIR/model.tflite or "
                    "model_int8.tflite (litert) or RUN_DIR/model.onnx (onnx) from RUN_DIR/model.keras, run the "
                    "artifact on the run's test split and print its top-1 agreement with the Keras model.")
    export.add_argument("run_dir", help="the --output folder of `layerwise-keras train`")
    export.add_argument("--format", required=True, choices=("tf_saved_model", "litert", "onnx"),
                        help="artifact to write")
    export.add_argument("--int8", action="store_true",
                        help="litert: post-training int8 quantisation calibrated on training images")
    export.add_argument("--calibration-samples", type=_integer, default=200,
                        help="litert --int8: number of training images to calibrate on (default: 200)")
    export.add_argument("--version", type=int, default=None,
                        help="tf_saved_model: version folder number (default: highest existing + 1)")
    export.add_argument("--no-check", action="store_true",
                        help="do not run the artifact on the test split")
    export.add_argument("--overwrite", action="store_true", help="replace an existing artifact")


def _export(args, config):
    from layerwise_keras.runs.exporting import export_run

    result = export_run(args.run_dir, args.format, int8=args.int8, version=args.version, overwrite=args.overwrite,
                        calibration_samples=args.calibration_samples, check=not args.no_check)
    print(json.dumps(result, indent=2))
    return 0


def _samples(args, config):
    from layerwise_keras.datasets.grids import save_sample_grid
    from layerwise_keras.datasets.splits import load_splits

    splits = load_splits(config["dataset"], seed=args.seed)
    save_sample_grid(splits["x_train"], splits["y_train"], args.output, per_label=args.per_label,
                     scale=args.scale, overwrite=args.overwrite)
    print(args.output)
    return 0


def _quiet_start_up(verbose):
    """Hides TensorFlow's start-up lines unless `verbose >= 2`.

    TensorFlow prints oneDNN and CUDA notes, and "failed call to cuInit" on a
    machine without a GPU, when it is imported; some of them are written
    before its log level is read. So, unless `--verbose 2`, TensorFlow (if
    installed) is imported here with file descriptor 2 pointed at /dev/null,
    with `TF_CPP_MIN_LOG_LEVEL=3` (unless the caller set it) and TensorFlow's
    and absl's Python loggers at ERROR. An import error is still raised.
    """
    if verbose is not None and verbose >= 2:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401  (imported for its side effect: its start-up lines go nowhere)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from absl import logging as absl_logging  # installed with TensorFlow

    absl_logging.set_verbosity(absl_logging.ERROR)


def _bundled_path(name, module):
    """The file of the bundled config `name` (`train --dataset NAME`), or a ValueError listing the choices."""
    if name in module.bundled_configs():
        return os.path.join(module.CONFIG_DIR, name + ".json")
    for_dataset = module.bundled_configs(dataset=name)
    choices = for_dataset or module.bundled_configs()
    close = [] if for_dataset else difflib.get_close_matches(name, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    own = f" whose dataset.name is {name!r}" if name in module.DATASET_OPTIONS and not for_dataset else ""
    raise ValueError(f"--dataset {name}: no bundled config named {name!r}{hint}; choices: {', '.join(choices)}, "
                     f"or pass --config FILE.json{own}.")


def _early_config(args):
    """Reads and checks the command's configuration before TensorFlow is imported (`check_config`).

    Args:
        args: the parsed arguments.

    Returns:
        `(config, path)`, or `(None, None)` for a command without --config.

    Example:

    >>> config, path = _early_config(_parser().parse_args(["train", "--output", "run"]))
    """
    if args.command not in ("train", "baseline", "samples", "tune"):
        return None, None
    module = _config_module()
    if args.command == "train" and not args.config:
        path = _bundled_path(args.dataset or "hierarchical_digits", module)
    else:
        path = module.config_path(args.config)
    config = module.load_config(path, full=False)
    if args.command == "train" and args.config and args.dataset and config["dataset"]["name"] != args.dataset:
        raise ValueError(
            f"--dataset {args.dataset} does not match the config's dataset {config['dataset']['name']!r}."
        )
    return config, path


def _baseline(args, config):
    from layerwise_keras.runs.pipeline import run_baseline

    metrics = run_baseline(config, args.output, overwrite=args.overwrite, seed=args.seed, verbose=args.verbose)
    print(json.dumps({"model": "end_to_end", "test_accuracy": metrics["test_accuracy"],
                      "train_seconds": round(metrics["train_seconds"], 2), "output": args.output}, indent=2))
    return 0


def _train(args, config):
    from layerwise_keras.runs.folders import check_output_dir
    from layerwise_keras.runs.pipeline import run

    check_output_dir(args.output, args.overwrite, args.resume)
    metrics = run(config, args.output, overwrite=args.overwrite, seed=args.seed, verbose=args.verbose,
                  baseline=args.baseline, resume=args.resume, checkpoint_every=args.checkpoint_every)
    summary = {
        "test_accuracy": metrics["test_accuracy"],
        "stages": [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()
             if k in ("stage", "accuracy", "val_accuracy", "test_purity", "stage_seconds")}
            for s in metrics["stages"]
        ],
        "output": args.output,
    }
    if "baseline" in metrics:
        summary["baseline_test_accuracy"] = metrics["baseline"]["test_accuracy"]
    print(json.dumps(summary, indent=2))
    return 0


COMMANDS = {"train": _train, "baseline": _baseline, "samples": _samples, "report": _report, "tune": _tune,
            "export": _export}


def _usage_error(err):
    print(f"layerwise-keras: error: {err}", file=sys.stderr)
    return 2


def main(argv=None):
    """Runs the command line; returns the process exit code.

    Arguments and the configuration's keys and value types are checked
    before TensorFlow is imported; the rest (`validate_config`) after.

    Args:
        argv: argument list (default `sys.argv[1:]`).

    Returns:
        0 on success, 2 on a usage or input error (printed to stderr).

    Example:

    >>> import os
    >>> main(["samples", "--output", os.path.join(tmp_dir, "digits.png"), "--per-label", "3"])
    /.../digits.png
    0
    >>> main(["train", "--config", "no_such_config", "--output", tmp_dir])  # the error goes to stderr
    2
    """
    args = _parser().parse_args(argv)
    try:
        config, path = _early_config(args)
    except (ValueError, FileNotFoundError) as err:
        return _usage_error(err)
    _quiet_start_up(getattr(args, "verbose", 1))
    # Imported here, after the log level is set: TensorFlow reads it when it is first imported (the package
    # `layerwise_keras.runs` imports its pipeline: Keras and TensorFlow).
    from layerwise_keras.runs.config import validate_config

    try:
        if config is not None:
            config = validate_config(config, source=path)
        return COMMANDS[args.command](args, config)
    except (ValueError, FileExistsError, FileNotFoundError, PermissionError) as err:
        return _usage_error(err)


if __name__ == "__main__":
    sys.exit(main())
