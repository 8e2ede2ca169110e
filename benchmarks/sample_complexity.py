"""Benchmark: sample complexity of layerwise growth vs end-to-end SGD on the paper's generative model.

For `hierarchical_digits` and two random `HierarchicalModel` instances (the
bundled `hierarchical_2level` and `hierarchical_3level` configs), for training
sets from 100 to a few thousand images and several seeds, grows the network
layer by layer and, in the same run on the same data, trains the same network
end to end by SGD. Both get the same budget rule: matched gradient steps. Each
layerwise stage trains for `--steps` gradient steps (`Stage(steps=...)`), and
the end-to-end network for the stages' steps added up (as many updates as the
whole growth), whatever the training-set size; the test split (2,000 images)
and validation split (200) are the same for both.

Writes `benchmarks/results/sample_complexity.{json,md}` (every run; per size
the test accuracy and per-stage purity over seeds, and the smallest size at
which each method reaches 99 % median test accuracy) and
`docs/images/sample_complexity.png` (test accuracy against training size,
both methods, median with the min-max band over seeds).

Usage:
    python benchmarks/sample_complexity.py [--sizes 100 200 300 600 1200 2400] [--seeds 3] [--steps 600]
        [--configs hierarchical_digits ...] [--quick]
    python benchmarks/sample_complexity.py --replot benchmarks/results/sample_complexity.json
"""

import argparse
import copy
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from _common import commit, cpu_description, now, write_results  # noqa: E402
from layerwise_keras.runs.config import load_config  # noqa: E402
from layerwise_keras.runs.machine import cpu_model  # noqa: E402
from layerwise_keras.runs.machine import machine_info  # noqa: E402
from layerwise_keras.runs.pipeline import end_to_end, grow, load_splits  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = ("hierarchical_digits", "hierarchical_2level", "hierarchical_3level")
PLOT = os.path.join(HERE, os.pardir, "docs", "images", "sample_complexity.png")
TARGET = 0.99


def budget_config(name, train, steps, seed):
    """The bundled config `name` with `train` training images and `steps` gradient steps per stage."""
    config = load_config(name)
    config["dataset"].update(train=int(train), val=200, test=2000)
    if config["dataset"]["name"] == "hierarchical":
        config["dataset"].setdefault("options", {})["seed"] = 0  # one instance per config, the same for every run
    for stage in config["stages"]:
        stage.pop("epochs", None)
        stage.pop("patience", None)
        stage["steps"] = int(steps)
    config["seed"] = seed
    return config


def run_one(name, train, seed, steps):
    config = budget_config(name, train, steps, seed)
    splits = load_splits(config["dataset"], seed=seed)
    clustered = len(config["stages"]) - 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, ours = grow(copy.deepcopy(config), splits, seed=seed, verbose=0)
    _, base = end_to_end(copy.deepcopy(config), splits, seed=seed, verbose=0)
    return {
        "config": name,
        "train": int(train),
        "seed": seed,
        "steps_per_stage": int(steps),
        "layerwise": {
            "test_accuracy": ours["test_accuracy"],
            "stage_purity": [s["test_purity"] for s in ours["stages"][:clustered]],
            "stage_epochs": [s["epochs"] for s in ours["stages"]],
            "train_seconds": ours["train_seconds"],
            "warnings": sorted({str(w.message) for w in caught if "StageWarning" in type(w.message).__name__}),
        },
        "end_to_end": {"test_accuracy": base["test_accuracy"], "train_seconds": base["train_seconds"]},
    }


def _span(values, fmt="{:.3f}"):
    values = np.asarray(values, dtype=float)
    return f"{fmt.format(np.median(values))} ({fmt.format(values.min())}–{fmt.format(values.max())})"


def smallest_size_reaching(runs, method, target=TARGET):
    """The smallest training size whose median test accuracy over seeds is >= target (None if none)."""
    for size in sorted({r["train"] for r in runs}):
        accuracies = [r[method]["test_accuracy"] for r in runs if r["train"] == size]
        if np.median(accuracies) >= target:
            return size
    return None




def markdown(report):
    m = report["machine"]
    lines = [
        "# Sample complexity: layerwise growth vs end-to-end SGD on the paper's generative model",
        "",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}, total wall time {report['total_seconds']:.0f} s",
        f"- machine: {cpu_description(m, report.get('cpu_model'))}, "
        f"no GPU; TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']} ({m['backend']} backend)",
        f"- seeds: {report['seeds']}; budget: {report['steps']} gradient steps per layerwise stage, the stages' sum "
        "for end-to-end SGD (matched gradient steps), batch 64; test 2,000 images, validation 200"
        + (" (QUICK MODE: not a full run)" if report["quick"] else ""),
        "",
        "Median (min–max) test accuracy over seeds; purity per clustered stage of the grown network.",
        "",
    ]
    for name in report["configs"]:
        runs = [r for r in report["runs"] if r["config"] == name]
        if not runs:
            continue
        lines += [f"**{name}**: smallest training size reaching {TARGET:.0%} median test accuracy: layerwise "
                  f"{smallest_size_reaching(runs, 'layerwise') or 'none measured'}, end-to-end "
                  f"{smallest_size_reaching(runs, 'end_to_end') or 'none measured'}.", "",
                  "| train images | layerwise test acc | end-to-end test acc | stage purity (layerwise) | "
                  "layerwise warned |", "|---|---|---|---|---|"]
        for size in sorted({r["train"] for r in runs}):
            at = [r for r in runs if r["train"] == size]
            n_stages = len(at[0]["layerwise"]["stage_purity"])
            purity = "; ".join(f"{i + 1}: {_span([r['layerwise']['stage_purity'][i] for r in at])}"
                               for i in range(n_stages))
            warned = sum(1 for r in at if r["layerwise"]["warnings"])
            lines.append(f"| {size} | {_span([r['layerwise']['test_accuracy'] for r in at])} | "
                         f"{_span([r['end_to_end']['test_accuracy'] for r in at])} | {purity} | "
                         f"{warned}/{len(at)} |")
        lines.append("")
    return "\n".join(lines)


def plot(report, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n in report["configs"] if any(r["config"] == n for r in report["runs"])]
    fig = Figure(figsize=(4.2 * len(names), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        runs = [r for r in report["runs"] if r["config"] == name]
        sizes = sorted({r["train"] for r in runs})
        for method, label, style in (("layerwise", "layerwise", "-o"), ("end_to_end", "end-to-end SGD", "--s")):
            acc = [[r[method]["test_accuracy"] for r in runs if r["train"] == s] for s in sizes]
            median = [np.median(a) for a in acc]
            line, = ax.plot(sizes, median, style, label=label, markersize=4)
            ax.fill_between(sizes, [min(a) for a in acc], [max(a) for a in acc], color=line.get_color(), alpha=0.2)
        ax.axhline(TARGET, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes], fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training images")
        if i == 0:
            ax.set_ylabel("test accuracy")
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report['steps']} gradient steps per stage (end to end: the same total); "
                 f"median and min–max over {report['seeds']} seeds", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 300, 600, 1200, 2400])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    parser.add_argument("--steps", type=int, default=600, help="gradient steps per layerwise stage")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 2 sizes, 1 seed, 30 steps")
    parser.add_argument("--output", default=os.path.join(HERE, "results"), help="results folder")
    parser.add_argument("--plot", default=PLOT, help="PNG of accuracy against training size")
    parser.add_argument("--replot", metavar="RESULTS_JSON", help="only redraw --plot from a results file")
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            print("plot:", plot(json.load(f), args.plot))
        return 0
    if args.quick:
        args.sizes, args.seeds, args.steps = args.sizes[:2], 1, 30
    start = time.perf_counter()
    started_at = commit()  # the code that runs, whatever is committed while it does
    runs = []
    for name in args.configs:
        for size in args.sizes:
            for seed in range(args.seeds):
                result = run_one(name, size, seed, args.steps)
                runs.append(result)
                print(json.dumps(result), flush=True)
    report = {
        "command": "python benchmarks/sample_complexity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": started_at,
        "date": now(),
        "machine": machine_info(),
        "cpu_model": cpu_model(),
        "seeds": args.seeds,
        "steps": args.steps,
        "sizes": args.sizes,
        "quick": args.quick,
        "configs": args.configs,
        "total_seconds": time.perf_counter() - start,
        "runs": runs,
    }
    for name in args.configs:
        at = [r for r in runs if r["config"] == name]
        report.setdefault("smallest_size_reaching_99", {})[name] = {
            m: smallest_size_reaching(at, m) for m in ("layerwise", "end_to_end")}
    stem = "sample_complexity_quick" if args.quick else "sample_complexity"
    write_results(args.output, stem, report, markdown(report))
    if not args.quick:
        print("plot:", plot(report, args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
