"""Summary: every committed full CIFAR-10 run of `benchmarks/cifar10.py` in one table, ranked on validation.

Reads `benchmarks/results/cifar10_*.json` (full runs only: not `--quick`, not
partial, not the ablation) and writes `benchmarks/results/cifar10_summary.md`,
which `docs/results.md` shows (`python benchmarks/update_readme.py` copies it
there). Every figure comes from those files; each run's own block in
`docs/results.md` gives its command, commit and machine.

The table is ranked by each run's final validation accuracy (its last stage's,
on the validation images held out of the training set), never by test
accuracy: the test columns are reported, not used to rank. A column says which
bundled config, as it is today, each run's config equals (`bundled_config`).

Usage:
    python benchmarks/cifar10_summary.py [--check]
"""

import argparse
import functools
import glob
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # bundled_config validates configs (imports Keras)

from _common import RESULTS, cpu_description, stage_drops, stage_epochs

OUTPUT = os.path.join(RESULTS, "cifar10_summary.md")
PAPER_FIGURE = 0.734  # the paper's CIFAR-10 figure (as listed by Belilovsky et al. 2019): cifar10_paper's target
BEST_TARGET = 0.82  # issue 25's target for cifar10_best


def full_runs(folder=RESULTS):
    """The full-run results files of `benchmarks/cifar10.py` in `folder`, as `(stem, report)` pairs."""
    runs = []
    for path in sorted(glob.glob(os.path.join(folder, "cifar10_*.json"))):
        with open(path) as f:
            report = json.load(f)
        if "layerwise" not in report or report.get("quick") or not report.get("complete", True):
            continue  # the ablation (another layout), smoke files and partial files
        runs.append((os.path.splitext(os.path.basename(path))[0], report))
    return runs


def final_val(report):
    """The run's final validation accuracy: its last stage's, at that stage's end (None if not recorded)."""
    stages = report["layerwise"].get("stages") or []
    value = stages[-1].get("val_accuracy") if stages else None
    if value is None and report["layerwise"].get("epoch_val_accuracy"):
        value = report["layerwise"]["epoch_val_accuracy"][-1]
    return value


def _comparable(config):
    """A validated config without what does not change the run: name, description, data folder, probes."""
    config = json.loads(json.dumps(config))
    for key in ("name", "description", "probe_epochs"):
        config.pop(key, None)
    config.get("dataset", {}).get("options", {}).pop("data_dir", None)
    return config


@functools.lru_cache(maxsize=None)
def _bundled():
    """`{name: comparable config}` of today's bundled CIFAR-10 configs."""
    from layerwise_keras.runs.config import bundled_configs, load_config

    return {name: _comparable(load_config(name)) for name in bundled_configs() if name.startswith("cifar10")}


def bundled_config(report):
    """The bundled config (as it is today) that a results file's run used, or None.

    The run's recorded config is validated with today's code (fields added since take their defaults) and
    compared with each bundled config, all of it but its name, description, data folder and probes.
    """
    from layerwise_keras.runs.config import validate_config

    try:
        config = _comparable(validate_config(json.loads(json.dumps(report["config"]))))
    except (ValueError, TypeError, KeyError):
        return None  # a config today's code no longer accepts is no bundled config
    return next((name for name, bundled in _bundled().items() if bundled == config), None)


def order(stages):
    """`"paper"` when a clustered stage clusters its trained embeddings; `"cluster-first"` when all cluster patches."""
    clustered = [s for s in stages if s.get("clusters")]
    return "cluster-first" if clustered and all(s.get("cluster") == "patches" for s in clustered) else "paper"


def stage_kinds(report):
    """The labels of the kinds the run's stages use (`growth.kinds.describe`: codes, whitening, order, heads,
    hand-offs, gates), from its config as today's code reads it."""
    from layerwise_keras.growth.kinds import describe
    from layerwise_keras.growth.stage import Stage
    from layerwise_keras.runs.config import validate_config

    config = validate_config(json.loads(json.dumps(report["config"])))
    return describe([Stage.from_config(stage) for stage in config["stages"]])


def cache_note(config):
    """How a run's stages were fed: `""` (the trainer), `" (cached)"`, `" (cached, V augmented copies)"`."""
    if not config.get("cache"):
        return ""
    variants = config.get("cache_variants")
    return f" (cached, {variants} augmented copies)" if variants else " (cached)"


def _seconds(value):
    return f"{value:.0f}" if value is not None else "—"


def _val(value):
    return f"{value:.4f}" if value is not None else "—"


def markdown(runs):
    """The summary table of `runs` (`(stem, report)` pairs), best final validation accuracy first."""
    rows = sorted(runs, key=lambda run: -(final_val(run[1]) or 0.0))  # never by test accuracy
    machines = sorted({cpu_description(r["machine"]) + (", GPUs: " + ", ".join(r["machine"]["gpus"])
                                                         if r["machine"].get("gpus") else ", no GPU")
                       for _, r in rows})
    lines = [
        "# CIFAR-10 full runs at a glance",
        "",
        f"- generated by `python benchmarks/cifar10_summary.py` from {len(rows)} results files "
        "(`benchmarks/results/<run>.json`; each run's command, commit and date are in its own block below)",
        f"- machines: {'; '.join(machines)}",
        f"- test accuracy on the 10,000 test images of the JPEG re-encoded local copy; the byte-exact 1,000 beside it. "
        f"Targets: the paper's order ≥ {PAPER_FIGURE * 100:.1f} %, `cifar10_best` ≥ {BEST_TARGET * 100:.0f} % "
        "with every stage at least as accurate as the one before (validation)",
        "- ranked by **final validation accuracy** (the last stage's, on the validation images held out of the "
        "training set), best first; the test columns were not used to rank this table",
        "- bundled config today: the bundled config whose every setting (but name, description and data folder) "
        "the run's config equals, checked with today's code; — for exploration runs",
        "",
        "| run (results file) | seed | config name, at the run's commit | bundled config today | commit | order "
        "| stage kinds | epochs by stage | final validation (ranks) | layerwise test | byte-exact 1,000 "
        "| end-to-end twin test | validation by stage | every stage ≥ the one before "
        "| s to 73.4 % val (layerwise / twin) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stem, r in rows:
        lw, e2e, stages = r["layerwise"], r.get("end_to_end") or {}, r["config"]["stages"]
        vals = [s["val_accuracy"] for s in lw["stages"]]
        epochs = "/".join(map(str, stage_epochs(r))) + cache_note(r["config"])
        drops = stage_drops(lw["stages"])
        gains = "—" if drops is None else ("no" if drops else "yes")
        twin = f"{e2e['test_accuracy']:.4f}" if e2e else "—"
        bundled = bundled_config(r)
        lines.append(
            f"| {stem} | {r.get('seed', 0)} | `{r['config']['name']}` | {f'`{bundled}`' if bundled else '—'} "
            f"| `{r['commit']}` | {order(stages)} | {stage_kinds(r)} | {epochs} "
            f"| {_val(final_val(r))} | {lw['test_accuracy']:.4f} | {lw['exact_subset']['test_exact']:.3f} | {twin} "
            f"| {' → '.join(f'{v:.3f}' for v in vals)} | {gains} "
            f"| {_seconds(lw.get('seconds_to_paper_accuracy'))} / {_seconds(e2e.get('seconds_to_paper_accuracy'))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {OUTPUT} is out of date")
    args = parser.parse_args(argv)
    text = markdown(full_runs())
    if args.check:
        with open(OUTPUT) as f:
            if f.read() != text:
                print(f"{OUTPUT} is out of date: run python benchmarks/cifar10_summary.py", file=sys.stderr)
                return 1
        return 0
    with open(OUTPUT, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
