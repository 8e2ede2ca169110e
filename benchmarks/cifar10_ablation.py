"""Benchmark: what each CIFAR-10 ingredient buys, one removed at a time from `cifar10_best`, at one reduced budget.

The base row is the bundled `cifar10_best` configuration (cluster-first
stages on whitened patches, triangle codes, code-gated pooled BatchNorm
heads, the heads' 64-channel bottlenecks handed on, augmentation, cosine
decay per stage; see its description) with only the budget cut: a slice of
the training set and the same number of epochs for every stage. Each other
row removes or swaps one ingredient: no whitening, the hard one-hot code
(q = 1) or the q-nearest multi-hot code instead of the triangle code, no
BatchNorm in the heads, no pooling in the heads (their dense layers read the
flattened map), no code gate, the code handed on instead of the bottleneck,
the paper's order instead of cluster-first, no augmentation; others change
one setting: the whitening's epsilon, K, stage 1's patch size, a constant
learning rate instead of cosine decay; one more row trains the same network
end to end by SGD. Every row has the same data, seed and budget (stated in
the results). For each row: per stage its validation accuracy at the
stage's end, what rows are compared on (a cluster-first stage's is its head
trained on its own code; in the paper's order stage 1's is the two-layer net
before clustering and stage n+1's a net trained on stage n's code after it),
and the test accuracy on the 10,000 test images, reported, never used to
choose.

Two rows change more than one field because the stage kinds require it: a
gate needs the bottleneck hand-off, and the bottleneck hand-off needs
cluster-first, so `code_handoff` drops the gate and `paper_order` drops the
gate and hands on the code (each later stage then average-pools the code it
receives as the previous head pooled, so the maps keep their sizes).

`--add-to FILE.json` runs more rows into an earlier results file of the
same budget, base configuration and machine (checked), each added row with
its own command, commit and date; a row already in the file is refused.

`--run-dir DIR` (a folder outside the repository) keeps every row's growth
checkpoints (and the end-to-end row's `BackupAndRestore` backup) and the
partial report there; after a kill, the same command with `--resume` keeps the
rows already done and continues the row in progress from its last checkpoint
(its results say `resumed`; its row seconds count the part after the resume).

Not the full runs: the budget is cut to fit this 2-core CPU; `--quick` is a
smoke test on a tiny slice with narrow stages. The local CIFAR-10 copy is
JPEG re-encoded: every figure is labelled so.

Writes `benchmarks/results/cifar10_ablation.{json,md}` (`_quick` with `--quick`).

Usage:
    python benchmarks/cifar10_ablation.py [--train 10000] [--epochs 2] [--rows base no_whitening ...] [--quick]
    python benchmarks/cifar10_ablation.py --add-to benchmarks/results/cifar10_ablation.json --rows no_gate
    python benchmarks/cifar10_ablation.py --run-dir /work/runs/ablation [--resume]
"""

import argparse
import copy
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from _common import (HERE, RESULTS, RunDirError, commit, cpu_description, machine_mismatch, now,  # noqa: E402
                     write_results)
from layerwise_keras import datasets  # noqa: E402
from layerwise_keras.runs.config import load_config  # noqa: E402
from layerwise_keras.runs.variants import smoke_config, uncached_config  # noqa: E402
from layerwise_keras.runs.machine import machine_info  # noqa: E402
from layerwise_keras.runs.pipeline import end_to_end, grow, load_splits  # noqa: E402

DEFAULT_DATA = os.path.join(HERE, os.pardir, os.pardir, "shared", "data")
BASE = "cifar10_best"


def base_config(train, val, epochs, data_dir, quick=False):
    """`cifar10_best` with the ablation's budget: `train`/`val` images, `epochs` per stage (`quick`: narrow stages).

    Grown uncached: at a few epochs per stage a cache of augmented copies costs more passes than it saves, and
    the rows measure the stages' settings, not caching (so the base stays the same when the bundled config
    caches).
    """
    config = uncached_config(load_config(BASE))
    if quick:
        config = smoke_config(config, train=train, val=val, test=10000)
    config["dataset"].update(train=int(train), val=int(val))
    config["dataset"].setdefault("options", {})["data_dir"] = data_dir
    for stage in config["stages"]:
        stage["epochs"] = int(epochs)
    return config


CLUSTERING_KEYS = ("clusters", "whiten", "assignment", "q", "width", "cluster", "handoff", "gate")  # clustered only


def _stages(**changes):
    """A row that sets `changes` on every stage (the clustering keys only on clustered stages)."""
    def edit(config):
        for stage in config["stages"]:
            for key, value in changes.items():
                if key in CLUSTERING_KEYS and stage.get("clusters") is None:
                    continue
                stage[key] = value(stage) if callable(value) else value
        return config
    return edit


def _first_stage(**changes):
    """A row that sets `changes` on stage 1 only."""
    def edit(config):
        config["stages"][0].update(changes)
        return config
    return edit


def _code_handoff(config):
    """Every clustered stage hands the next its code instead of its head's bottleneck (and so has no gate); a later
    stage average-pools the code it receives as the previous head pooled, so every map keeps its size."""
    config = _stages(handoff="code", gate=None)(config)
    stages = config["stages"]
    for before, stage in zip(stages, stages[1:]):
        pool = before.get("pool_size", 1)
        if before.get("clusters") is not None and pool not in (1, [1, 1]):
            stage["input_pool"] = pool
            if before.get("pool_strides") is not None:
                stage["input_pool_strides"] = before["pool_strides"]
    return config


def _paper_order(config):
    """`_code_handoff` in the paper's order: each clustered stage trains a convolution of `cifar10_paper`'s width
    with its head first, then clusters the convolution's (whitened) embeddings."""
    widths = [stage.get("width") for stage in load_config("cifar10_paper")["stages"]]
    config = _code_handoff(config)
    for stage, width in zip(config["stages"], widths):
        if stage.get("clusters") is not None:
            stage.update(cluster="embeddings", width=width)
    return config


def _no_augmentation(config):
    config["dataset"]["options"]["augment"] = False
    return config


ROWS = {  # name: (edit of the base config, what the row changes)
    "base": (lambda c: c, "cifar10_best at the budget above, grown uncached"),
    "no_whitening": (_stages(whiten=None), "k-means on the raw patches (no ZCA whitening)"),
    "q_1": (_stages(assignment="hard", q=1),
            "hard one-hot code of the nearest centroid (q = 1) instead of the triangle code"),
    "nearest_code": (_stages(assignment="nearest", q=lambda stage: max(1, stage["clusters"] // 8)),
                     "multi-hot code of the K/8 nearest centroids instead of the triangle code"),
    "no_batchnorm": (_stages(batchnorm=False), "heads without BatchNorm"),
    "flatten_readout": (_stages(pool_size=1, pool_strides=None),
                        "no average pooling in the heads: each head's dense layer reads its whole flattened map "
                        "(stage 1 then hands on 28x28x64 instead of 7x7x64)"),
    "no_gate": (_stages(gate=None), "heads without the code-gated convolution (the code alone goes into the head)"),
    "code_handoff": (_code_handoff,
                     "every clustered stage hands the next its (triangle) code instead of its head's bottleneck, "
                     "so without the gate; stage 2 average-pools the code 4/4 first, as stage 1's head did"),
    "paper_order": (_paper_order,
                    "the paper's order: each clustered stage trains a convolution (cifar10_paper's widths, "
                    "128 and 256) with its head first, then clusters its whitened embeddings; with the code "
                    "handed on as in code_handoff (the bottleneck hand-off needs cluster-first)"),
    "no_augmentation": (_no_augmentation, "no random crop + flip"),
    "whiten_1e-3": (_stages(whiten=1e-3), "ZCA epsilon 1e-3 of the mean eigenvalue instead of 1e-2 (the value "
                                          "Thiry et al. found best)"),
    "whiten_1e-1": (_stages(whiten=1e-1), "ZCA epsilon 1e-1 of the mean eigenvalue instead of 1e-2"),
    "k_256": (_stages(clusters=256), "K = 256 clusters in every clustered stage instead of 512"),
    "k_1024": (_stages(clusters=1024), "K = 1,024 clusters in every clustered stage instead of 512"),
    "patch_3": (_first_stage(kernel_size=3), "3x3 patches in stage 1 instead of 5x5 (a 30x30 code, pooled to 7x7)"),
    "patch_7": (_first_stage(kernel_size=7), "7x7 patches in stage 1 instead of 5x5 (a 26x26 code, pooled to 6x6)"),
    "constant_lr": (_stages(schedule=None), "a constant learning rate in every stage instead of cosine decay"),
    "end_to_end": (lambda c: c, "the same convolutions and last head trained together by SGD, no clustering"),
}


def run_row(name, config, splits, seed, row_dir=None):
    """Runs one row; with `row_dir` (a folder of the --run-dir) it checkpoints there and continues what it holds."""
    from layerwise_keras.growth.checkpoint import has_checkpoint

    start = time.perf_counter()
    resumed = row_dir is not None and os.path.isdir(row_dir) and (
        os.path.exists(os.path.join(row_dir, "twin_backup")) or has_checkpoint(row_dir))
    if name == "end_to_end":
        callbacks = [] if row_dir is None else [keras.callbacks.BackupAndRestore(os.path.join(row_dir, "twin_backup"))]
        _, figures = end_to_end(copy.deepcopy(config), splits, seed=seed, verbose=2, callbacks=callbacks)
        stages = []
    else:
        _, figures = grow(copy.deepcopy(config), splits, seed=seed, verbose=2, checkpoint_dir=row_dir,
                          resume=resumed)
        stages = [{k: s.get(k) for k in ("stage", "val_accuracy", "epochs", "stage_seconds", "cluster_usage",
                                         "kmeans_seconds", "whiten_seconds", "test_purity")}
                  for s in figures["stages"]]
    row = {"row": name, "test_accuracy": figures["test_accuracy"], "train_seconds": figures["train_seconds"],
           "stages": stages, "seconds": time.perf_counter() - start,
           "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if resumed:
        row["resumed"] = True  # its seconds count the part after the resume
    return row


def _fmt(value, spec="{:.4f}"):
    return "—" if value is None else spec.format(value)


def markdown(report):
    n_stages = len(report["base_config"]["stages"])
    machine = report["machine"]
    lines = [
        f"# CIFAR-10 ablation: one ingredient removed at a time from `{BASE}` (reduced budget)",
        "",
        f"- data: {report['data']}; sizes {report['sizes']}",
        f"- budget (every row): {report['budget']}",
        f"- base: the bundled `{BASE}` configuration (its description) grown uncached (no cache of augmented "
        "copies: at a few epochs per stage it costs more passes than it saves), with only the budget above changed",
        f"- command: `{report['command']}`",
        f"- commit: `{report['commit']}`, date: {report['date']}, total {report['total_seconds']:.0f} s",
        f"- machine: {cpu_description(machine)}, GPUs: "
        f"{', '.join(machine['gpus']) or 'none'}; TensorFlow {machine.get('tensorflow')}, "
        f"Keras {machine['keras']} ({machine['backend']} backend)",
    ]
    if report["quick"]:
        lines.append("- **QUICK MODE: a tiny slice, narrow stages, one epoch per stage; smoke-test figures, "
                     "not results.**")
    stage_heads = [f"stage {n} val acc" for n in range(1, n_stages + 1)]
    lines += [
        "",
        "| row | " + " | ".join(stage_heads) + " | stage-1 clusters used | row s | test acc (JPEG copy) |",
        "|---" * (n_stages + 4) + "|",
    ]
    for r in report["rows"]:
        s = r["stages"]
        accuracies = [_fmt(s[i]["val_accuracy"] if i < len(s) else None) for i in range(n_stages)]
        lines.append(
            f"| {r['row']} | " + " | ".join(accuracies) + " | "
            f"{_fmt(s[0]['cluster_usage'] if s else None, '{:.2f}')} | {r['seconds']:.0f} | "
            f"{_fmt(r['test_accuracy'])} |"
        )
    lines += ["", "Rows are compared on validation (the last stage's is the grown network's); the test accuracy is "
              "reported, never used to choose.",
              "", "Stage accuracies are at each stage's end. A cluster-first stage's (every row but paper_order) "
              "is its head trained on its own code, after clustering; in the paper's order stage 1's is its "
              "two-layer net before clustering and stage n + 1's a net trained on stage n's code, so the gap "
              "between them is what clustering costs."]
    lines += ["", "Rows:"] + [f"- {r['row']}: {ROWS[r['row']][1]}." for r in report["rows"]]
    resumed = [r["row"] for r in report["rows"] if r.get("resumed")]
    if report.get("resumes") or resumed:
        lines += ["", f"Resumed after a kill (`--resume`, {len(report.get('resumes', []))} time(s)): rows done "
                  "before a resume were kept; " + (f"the rows {', '.join(resumed)} continued from their last "
                  "checkpoint, so their row seconds count only the part after the resume." if resumed else
                  "no row was cut in the middle.")]
    added = [r for r in report["rows"] if "commit" in r]
    if added:
        lines += ["", "Rows added later to this file (same budget, base configuration and machine, checked; their "
                  "row seconds were measured in another run):"]
        lines += [f"- {r['row']}: `{r['command']}`, commit `{r['commit']}`, {r['date']}" for r in added]
    return "\n".join(lines) + "\n"


def _comparable(config):
    """A base configuration with its stages in normal form (`Stage` defaults filled in), for comparison."""
    from layerwise_keras.growth.stage import Stage

    config = copy.deepcopy(config)
    config["stages"] = [Stage.from_config(s).get_config() for s in config["stages"]]
    config["dataset"].get("options", {}).pop("data_dir", None)
    config.pop("description", None)  # prose, not what runs
    return config


def _refuse(message):
    print(f"cifar10_ablation.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def _same_ablation(path, earlier, report):
    """`earlier` if it is the same ablation as `report` (budget, base, machine), else exit 2."""
    for key in ("quick", "sizes", "budget"):
        if earlier.get(key) != report[key]:
            _refuse(f"{path} has {key} {earlier.get(key)!r}, this run {report[key]!r}; rows of different budgets "
                    "are not comparable.")
    differs = machine_mismatch(earlier.get("machine"))
    if differs:
        _refuse(f"{path} was measured on another machine or software ({differs}); its header would "
                "mislabel the new rows.")
    if _comparable(earlier["base_config"]) != _comparable(report["base_config"]):
        _refuse(f"{path} was run from another base configuration than today's `{BASE}`; rerun every row.")
    return earlier


def _earlier(path, report, rows):
    """The rows of an earlier results file to add `rows` to; exits 2 when it is not the same ablation."""
    try:
        with open(path) as f:
            earlier = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        _refuse(f"cannot read {path}: {err}")
    earlier = _same_ablation(path, earlier, report)
    present = sorted({r["row"] for r in earlier["rows"]} & set(rows))
    if present:
        _refuse(f"{path} already holds the rows {present}; rerun them into a new --output folder.")
    return earlier


def _run_dir_state(run_dir, resume, add_to):
    """The report a resumed ablation continues (None for a fresh one); refuses a misuse of --run-dir/--resume."""
    if run_dir is None:
        if resume:
            raise RunDirError("--resume needs --run-dir (the folder the ablation keeps its checkpoints in)")
        return None
    if add_to:
        raise RunDirError("--run-dir and --add-to do not go together: resume the run, then add rows to its file")
    path = os.path.join(run_dir, "report.json")
    if not os.path.exists(path):
        if resume:
            raise RunDirError(f"--resume: {run_dir} holds no ablation to resume")
        os.makedirs(run_dir, exist_ok=True)
        return None
    if not resume:
        raise RunDirError(f"{run_dir} already holds an ablation; pass --resume to continue it (or use a new folder)")
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get(datasets.DATA_ENV) or DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--val", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per stage (and their sum end to end)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--quick", action="store_true", help="smoke mode: 600 images, narrow stages, 1 epoch per stage")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--add-to", metavar="FILE.json",
                        help="add the rows to this earlier results file (same budget and base configuration)")
    parser.add_argument("--run-dir", metavar="DIR",
                        help="a folder outside the repository for the rows' checkpoints and the partial report, "
                             "so that a killed ablation continues with --resume")
    parser.add_argument("--resume", action="store_true",
                        help="continue the ablation in --run-dir (the same command otherwise): the rows done are "
                             "kept, the row in progress continues from its last checkpoint")
    args = parser.parse_args(argv)
    try:
        state = _run_dir_state(args.run_dir, args.resume, args.add_to)
    except RunDirError as err:
        parser.error(str(err))
    if args.quick:
        args.train, args.val, args.epochs = 600, 200, 1
    command = "python benchmarks/cifar10_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    started_at = commit()
    base = base_config(args.train, args.val, args.epochs, args.data_dir, quick=args.quick)
    splits = load_splits(base["dataset"], seed=0)
    if args.quick:
        for key in ("x_test", "y_test"):
            splits[key] = splits[key][::20]
    report = {"base_config": base, "data": splits["data_label"], "quick": args.quick,
              "sizes": {k: int(len(splits[f"y_{k}"])) for k in ("train", "val", "test")},
              "budget": f"{args.epochs} epochs per stage ({len(base['stages']) * args.epochs} end to end), "
                        f"{args.train} training images, {args.val} validation images; everything else as "
                        f"`{BASE}` (batch {base['batch_size']}, seed {base['seed']})",
              "rows": []}
    stem = "cifar10_ablation" + ("_quick" if args.quick else "")
    if args.add_to:
        report = _earlier(args.add_to, report, args.rows)
    elapsed = 0.0
    if state is not None:  # a resumed ablation: the same budget, base and machine, its finished rows kept
        report = _same_ablation(os.path.join(args.run_dir, "report.json"), state, report)
        report.setdefault("resumes", []).append({"command": command, "commit": started_at, "date": now()})
        elapsed = report.get("total_seconds", 0.0)
    done = {r["row"] for r in report["rows"]}
    for name in [r for r in args.rows if r not in done]:
        config = ROWS[name][0](copy.deepcopy(base))
        row_dir = None if args.run_dir is None else os.path.join(args.run_dir, name)
        row = {**run_row(name, config, splits, seed=0, row_dir=row_dir), "config": config}
        if args.add_to:
            row.update(command=command, commit=started_at, date=now())
        else:
            report.setdefault("command", command)
            report.setdefault("commit", started_at)
            report.setdefault("date", now())
            report.update(machine=machine_info(), total_seconds=elapsed + time.perf_counter() - start)
        report["rows"].append(row)
        if args.run_dir is not None:
            with open(os.path.join(args.run_dir, "report.json"), "w") as f:
                json.dump(report, f, indent=2, default=float)
        write_results(args.output, stem, report, markdown(report))  # after every row: a cut run keeps its rows
    return 0


if __name__ == "__main__":
    sys.exit(main())
