"""The `layerwise-keras` command line.

```
layerwise-keras train --dataset hierarchical_digits --output saved_models/digits [--config FILE.json] [--seed N] [--overwrite]
layerwise-keras samples --config hierarchical_digits --output docs/images/hierarchical_digits.png
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
    samples = sub.add_parser("samples", help="write a PNG grid of dataset samples, one row per label")
    samples.add_argument("--config", default="hierarchical_digits",
                         help="config whose dataset to draw (file or bundled name)")
    samples.add_argument("--output", required=True, help="PNG file to write")
    samples.add_argument("--per-label", type=int, default=10, help="images per row")
    samples.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscaling")
    samples.add_argument("--seed", type=int, default=0, help="sampling seed")
    samples.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    return parser


def _samples(args):
    from layerwise_keras.config import load_config
    from layerwise_keras.datasets import save_sample_grid
    from layerwise_keras.pipeline import load_splits

    config = load_config(args.config)
    splits = load_splits(config["dataset"], seed=args.seed)
    save_sample_grid(splits["x_train"], splits["y_train"], args.output, per_label=args.per_label,
                     scale=args.scale, overwrite=args.overwrite)
    print(args.output)
    return 0


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
        if args.command == "samples":
            return _samples(args)
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
