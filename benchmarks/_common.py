"""Helpers shared by the benchmark scripts: provenance of a results file, and reading a layerwise run's stages."""

import datetime
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def commit():
    """The short commit hash, with `-dirty` when tracked files have uncommitted changes.

    `BENCH_COMMIT` overrides it (a copy of the tree without `.git`, as on the GPU machine).
    """
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


class RunDirError(ValueError):
    """A --run-dir / --resume mistake of a benchmark (a usage error: the command line says so and exits 2)."""


def now():
    """UTC time, ISO 8601, seconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_results(folder, stem, report, markdown_text):
    """Writes `folder/stem.json` (the report) and `folder/stem.md` (its table), and prints the table."""
    import json

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, stem + ".json"), "w") as f:
        json.dump(report, f, indent=2, default=float)
    with open(os.path.join(folder, stem + ".md"), "w") as f:
        f.write(markdown_text)
    print(markdown_text)


def stage_drops(stages):
    """The stages (1-based) whose validation accuracy is below the stage before's; `None` if one lacks a figure."""
    accuracies = [s.get("val_accuracy") for s in stages]
    if None in accuracies:
        return None
    return [n + 2 for n, (a, b) in enumerate(zip(accuracies, accuracies[1:])) if b < a]


def stage_epochs(report):
    """The epochs each stage of a results file's layerwise run trained (older files: the config's, default 1)."""
    configured = [c.get("epochs", 1) for c in report["config"]["stages"]]
    return [int(s.get("epochs", c)) for s, c in zip(report["layerwise"]["stages"], configured)]


def cpu_description(machine, model=None):
    """`"<n>-core CPU (<model>, <architecture>)"` for a results file's `machine` (older files lack the model)."""
    model = model or machine.get("cpu_model")
    return f"{machine['cpu_count']}-core CPU ({', '.join(filter(None, [model, machine['processor']]))})"


# What must match for figures measured later to share a results file's machine line (or for a run to resume):
# the CPU's model too, since two CPUs of one architecture differ in speed (a file without it, from before it was
# recorded, matches no machine).
MACHINE_KEYS = ("cpu_count", "processor", "cpu_model", "gpus", "backend", "keras", "tensorflow")


def machine_mismatch(earlier):
    """`None` when this machine and software match an earlier results file's `machine`, else what differs."""
    from layerwise_keras.runs.machine import machine_info

    here = {k: machine_info().get(k) for k in MACHINE_KEYS}
    there = {k: (earlier or {}).get(k) for k in MACHINE_KEYS}
    return None if here == there else f"{there}; here: {here}"
