"""The `layerwise-keras` command line.

```
layerwise-keras train --dataset hierarchical_digits --output saved_models/digits [--config FILE.json] [--seed N] [--overwrite]
```
"""

import argparse
import json
import os
import sys


def _parser():
    parser = argparse.ArgumentParser(
        prog="layerwise-keras",
        description="Grow deep CNNs layer by layer (Malach & Shalev-Shwartz, arXiv 1803.09522) with Keras.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="grow, evaluate and export a model")
    train.add_argument("--dataset", default=None,
                       help="dataset name; with no --config, the bundled config of that name is used "
                            "(default: hierarchical_digits)")
    train.add_argument("--config", default=None, help="a config .json file or a bundled config name")
    train.add_argument("--output", required=True, help="output folder (must be empty or absent)")
    train.add_argument("--seed", type=int, default=None, help="override the config's seed")
    train.add_argument("--overwrite", action="store_true", help="replace artifacts in a non-empty --output")
    train.add_argument("--verbose", type=int, default=1, help="Keras verbosity (0, 1 or 2)")
    return parser


def main(argv=None):
    """Runs the command line; returns the process exit code.

    Args:
        argv: argument list (default `sys.argv[1:]`).

    Returns:
        0 on success, 2 on a usage or input error (printed to stderr).

    Example:

    >>> main(["train", "--output", "saved_models/digits"])
    """
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from layerwise_keras.config import load_config
    from layerwise_keras.pipeline import check_output_dir, run

    try:
        config = load_config(args.config or args.dataset or "hierarchical_digits")
        if args.dataset and config["dataset"]["name"] != args.dataset:
            raise ValueError(
                f"--dataset {args.dataset} does not match the config's dataset {config['dataset']['name']!r}."
            )
        check_output_dir(args.output, args.overwrite)
        metrics = run(config, args.output, overwrite=args.overwrite, seed=args.seed, verbose=args.verbose)
    except (ValueError, FileExistsError, FileNotFoundError, PermissionError) as err:
        print(f"layerwise-keras: error: {err}", file=sys.stderr)
        return 2
    summary = {
        "test_accuracy": metrics["test_accuracy"],
        "stages": [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()
             if k in ("stage", "accuracy", "val_accuracy", "test_purity", "stage_seconds")}
            for s in metrics["stages"]
        ],
        "output": args.output,
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
