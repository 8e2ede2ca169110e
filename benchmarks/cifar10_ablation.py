"""Benchmark: what each CIFAR-10 ingredient buys, one removed at a time, at one reduced budget.

From a base network (stage 1: a 5x5 stride-1 convolution trained with a pooled,
normalised head, its embeddings ZCA-whitened and k-means-clustered, the
multi-hot mask of the q nearest centroids as its code; stage 2: the classifier,
a 1x1 convolution on the code with the same pooled head), each row removes one
ingredient (no whitening, q = 1, no BatchNorm, flatten instead of pooling) or
swaps the code (triangle); one more row trains the same network end to end by
SGD. Every row has the same data, seed and budget (stated in the results). For
each row: test accuracy on the 10,000 test images, and per stage its
validation accuracy at the stage's end. Stage 1's is the two-layer net before
clustering and stage 2's is a head trained on the code after it, so the gap
between them is what clustering costs.

Not the issue-10 full runs: the budget is cut to fit this 2-core CPU (a slice
of the training set, a few epochs per stage, no augmentation); `--quick` is a
smoke test on a tiny slice. The local CIFAR-10 copy is JPEG re-encoded: every
figure is labelled so.

Writes `benchmarks/results/cifar10_ablation.{json,md}` (`_quick` with `--quick`).

Usage:
    python benchmarks/cifar10_ablation.py [--train 20000] [--epochs 4] [--rows base no_whitening ...] [--quick]
"""

import argparse
import copy
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import HERE, RESULTS, commit, now, write_results  # noqa: E402
from layerwise_keras import datasets  # noqa: E402
from layerwise_keras.runs.machine import machine_info  # noqa: E402
from layerwise_keras.runs.pipeline import end_to_end, grow, load_splits  # noqa: E402

DEFAULT_DATA = os.path.join(HERE, os.pardir, os.pardir, "shared", "data")
CLUSTERS = 256


def base_config(train, val, epochs, data_dir):
    """The base network of the ablation (see the module docstring)."""
    head = {"readout": "pooled", "pool_size": 4, "bottleneck": 64}
    return {
        "name": "cifar10_ablation_base",
        "dataset": {"name": "cifar10", "train": int(train), "val": int(val),
                    "options": {"normalize": "standardize", "data_dir": data_dir}},
        "stages": [
            {"width": 64, "kernel_size": 5, "strides": 1, "clusters": CLUSTERS, "assignment": "nearest",
             "q": CLUSTERS // 8, "whiten": 1e-2, "epochs": int(epochs), "schedule": "cosine",
             "kmeans": {"n_init": 1, "max_iter": 30}, **head},
            {"width": 64, "kernel_size": 1, "strides": 1, "epochs": int(epochs), "schedule": "cosine", **head},
        ],
        "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.002}},
        "batch_size": 128,
        "seed": 0,
    }


def _without(name, **changes):
    def edit(config):
        for stage in config["stages"]:
            for key, value in changes.items():
                if key in ("whiten", "assignment", "q") and stage.get("clusters") is None:
                    continue
                stage[key] = value
        return config
    return name, edit


ROWS = dict([
    ("base", lambda c: c),
    _without("no_whitening", whiten=None),
    _without("q_1", assignment="hard", q=1),
    _without("triangle_code", assignment="triangle", q=1),
    _without("no_batchnorm", batchnorm=False),
    _without("flatten_readout", readout="flatten"),
    ("end_to_end", lambda c: c),
])


def run_row(name, config, splits, seed):
    start = time.perf_counter()
    if name == "end_to_end":
        _, figures = end_to_end(copy.deepcopy(config), splits, seed=seed, verbose=2)
        stages = []
    else:
        _, figures = grow(copy.deepcopy(config), splits, seed=seed, verbose=2)
        stages = [{k: s.get(k) for k in ("stage", "val_accuracy", "epochs", "stage_seconds", "cluster_usage",
                                         "kmeans_seconds", "whiten_seconds", "test_purity")}
                  for s in figures["stages"]]
    return {"row": name, "test_accuracy": figures["test_accuracy"], "train_seconds": figures["train_seconds"],
            "stages": stages, "seconds": time.perf_counter() - start,
            "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def _fmt(value, spec="{:.4f}"):
    return "—" if value is None else spec.format(value)


def markdown(report):
    config = report["base_config"]
    lines = [
        "# CIFAR-10 ablation: one ingredient removed at a time (reduced budget)",
        "",
        f"- data: {report['data']}; sizes {report['sizes']}",
        f"- budget (every row): {report['budget']}",
        f"- base: stage 1 conv {config['stages'][0]['width']} 5x5 stride 1, K = {CLUSTERS}, q = "
        f"{config['stages'][0]['q']} nearest, ZCA epsilon {config['stages'][0]['whiten']}, pooled head "
        "(avg pool 4/4 -> BatchNorm -> 1x1 to 64 -> dense); stage 2 (classifier) conv 64 1x1 on the code, same head",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}, total {report['total_seconds']:.0f} s",
        f"- machine: {report['machine']['cpu_count']}-core CPU ({report['machine']['processor']}), GPUs: "
        f"{', '.join(report['machine']['gpus']) or 'none'}; TensorFlow {report['machine'].get('tensorflow')}, "
        f"Keras {report['machine']['keras']} ({report['machine']['backend']} backend)",
    ]
    if report["quick"]:
        lines.append("- **QUICK MODE: a tiny slice and one epoch per stage; smoke-test figures, not results.**")
    lines += [
        "",
        "| row | test acc (JPEG copy) | stage 1 val acc, before clustering | stage 2 val acc, head on the code "
        "| stage-1 clusters used | row s |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        s = r["stages"]
        lines.append(
            f"| {r['row']} | {_fmt(r['test_accuracy'])} | {_fmt(s[0]['val_accuracy'] if s else None)} | "
            f"{_fmt(s[1]['val_accuracy'] if len(s) > 1 else None)} | "
            f"{_fmt(s[0]['cluster_usage'] if s else None, '{:.2f}')} | {r['seconds']:.0f} |"
        )
    lines += ["", "end_to_end: the same convolutions and last head trained together by SGD, no clustering."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get(datasets.DATA_ENV) or DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--val", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per stage (and their sum end to end)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--quick", action="store_true", help="smoke mode: 600 images, 1 epoch per stage")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.val, args.epochs = 600, 200, 1
    command = "python benchmarks/cifar10_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    started_at = commit()
    base = base_config(args.train, args.val, args.epochs, args.data_dir)
    splits = load_splits(base["dataset"], seed=0)
    if args.quick:
        for key in ("x_test", "y_test"):
            splits[key] = splits[key][::20]
    report = {"base_config": base, "data": splits["data_label"], "quick": args.quick,
              "sizes": {k: int(len(splits[f"y_{k}"])) for k in ("train", "val", "test")},
              "budget": f"{args.epochs} epochs per stage ({2 * args.epochs} end to end), batch 128, Adam 2e-3 with "
                        f"cosine decay per stage, {args.train} training images, no augmentation, seed 0",
              "rows": []}
    stem = "cifar10_ablation" + ("_quick" if args.quick else "")
    for name in args.rows:
        config = ROWS[name](copy.deepcopy(base))
        report["rows"].append({**run_row(name, config, splits, seed=0), "config": config})
        report.update(command=command, commit=started_at, date=now(), machine=machine_info(),
                      total_seconds=time.perf_counter() - start)
        write_results(args.output, stem, report, markdown(report))  # after every row: a cut run keeps its rows
    return 0


if __name__ == "__main__":
    sys.exit(main())
