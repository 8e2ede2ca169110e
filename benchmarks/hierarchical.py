"""Benchmark: layerwise growth vs end-to-end SGD on the paper's generative model.

For each bundled configuration (`hierarchical_digits`, `hierarchical_2level`,
`hierarchical_3level`) and each seed, grows the network layer by layer and,
in the same run on the same machine and data, trains the same network end to
end by SGD (`layerwise_keras.runs.pipeline.end_to_end`). For the random
instances, the seed also draws a new instance of the generative model.

Writes `benchmarks/results/hierarchical.json` (every run) and
`benchmarks/results/hierarchical.md` (a summary table), with the command,
commit, machine and date.

Usage:
    python benchmarks/hierarchical.py [--seeds 5] [--configs hierarchical_digits ...] [--quick]
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _common import commit, cpu_description, now, write_results  # noqa: E402
from layerwise_keras.runs.config import load_config  # noqa: E402
from layerwise_keras.runs.pipeline import machine_info, end_to_end, grow, load_splits  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ("hierarchical_digits", "hierarchical_2level", "hierarchical_3level")


def run_one(name, seed, quick):
    config = load_config(name)
    if config["dataset"]["name"] == "hierarchical":
        config["dataset"]["options"]["seed"] = seed
    if quick:
        for key, n in (("train", 1500), ("val", 200), ("test", 300)):
            config["dataset"][key] = n
        for stage in config["stages"]:
            stage["epochs"] = 1
    splits = load_splits(config["dataset"], seed=seed)
    _, ours = grow(config, splits, seed=seed, verbose=0)
    _, base = end_to_end(config, splits, seed=seed, verbose=0)
    clustered = len(config["stages"]) - 1
    return {
        "config": name,
        "seed": seed,
        "layerwise": {
            "test_accuracy": ours["test_accuracy"],
            "train_seconds": ours["train_seconds"],
            "stage_purity": [s["test_purity"] for s in ours["stages"][:clustered]],
            "stage_val_accuracy": [s.get("val_accuracy") for s in ours["stages"]],
            "kmeans_seconds": [s["kmeans_seconds"] for s in ours["stages"][:clustered]],
            "stage_seconds": [s["stage_seconds"] for s in ours["stages"]],
        },
        "end_to_end": {"test_accuracy": base["test_accuracy"], "train_seconds": base["train_seconds"]},
        "test_examples": int(len(splits["y_test"])),
    }


def _span(values, fmt="{:.4f}"):
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(values.mean())} ({fmt.format(values.min())}–{fmt.format(values.max())})"


def markdown(report):
    lines = [
        "# Layerwise growth vs end-to-end SGD on the paper's generative model",
        "",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}",
        f"- machine: {cpu_description(report['machine'])}, "
        f"no GPU; TensorFlow {report['machine']['tensorflow']}, Keras {report['machine']['keras']} "
        f"({report['machine']['backend']} backend)",
        f"- seeds: {report['seeds']}{' (QUICK MODE: reduced data and epochs, not a full run)' if report['quick'] else ''}",
        "",
        "Mean (min–max) over seeds. Purity: fraction of test positions whose cluster's majority true class "
        "is their own, per clustered stage. Times are wall-clock seconds of `fit` (layerwise: training + "
        "k-means of all stages).",
        "",
        "| config | stage purity (test) | layerwise test acc | end-to-end SGD test acc | layerwise s | end-to-end s |",
        "|---|---|---|---|---|---|",
    ]
    for name in report["configs"]:
        runs = [r for r in report["runs"] if r["config"] == name]
        if not runs:
            continue
        n_stages = len(runs[0]["layerwise"]["stage_purity"])
        purity = "; ".join(
            f"{i + 1}: {_span([r['layerwise']['stage_purity'][i] for r in runs])}" for i in range(n_stages)
        )
        lines.append(
            f"| {name} | {purity} | {_span([r['layerwise']['test_accuracy'] for r in runs])} | "
            f"{_span([r['end_to_end']['test_accuracy'] for r in runs])} | "
            f"{_span([r['layerwise']['train_seconds'] for r in runs], '{:.1f}')} | "
            f"{_span([r['end_to_end']['train_seconds'] for r in runs], '{:.1f}')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--quick", action="store_true", help="smoke mode: small data, 1 epoch per stage")
    parser.add_argument("--output", default=os.path.join(HERE, "results"), help="results folder")
    args = parser.parse_args(argv)
    stem = "hierarchical_quick" if args.quick else "hierarchical"
    runs = []
    start = time.perf_counter()
    started_at = commit()  # the code that runs, whatever is committed while it does
    for name in args.configs:
        for seed in range(args.seeds):
            result = run_one(name, seed, args.quick)
            runs.append(result)
            print(json.dumps(result), flush=True)
    report = {
        "command": "python benchmarks/hierarchical.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": started_at,
        "date": now(),
        "machine": machine_info(),
        "platform": platform.platform(),
        "seeds": args.seeds,
        "quick": args.quick,
        "configs": args.configs,
        "total_seconds": time.perf_counter() - start,
        "runs": runs,
    }
    write_results(args.output, stem, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
