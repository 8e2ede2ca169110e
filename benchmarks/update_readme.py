"""Fills the generated results blocks of README.md and docs/results.md from the committed result files.

Both files hold marked blocks such as

    <!-- results:hierarchical -->
    ...
    <!-- /results:hierarchical -->

and this script replaces each block's body, so every figure in them comes from
a committed file in `benchmarks/results/`:

- `docs/results.md`: a block named NAME gets `benchmarks/results/NAME.md` (the
  table a benchmark wrote), its title demoted to one level below the heading
  the block sits under;
- `README.md`: the block `headline` gets one short table made here from the
  results JSON files: the generative model's figures (`hierarchical.json`,
  `sample_complexity.json`) and, for every bundled CIFAR-10 config, its seed
  runs (`seed_runs`: the full runs of `benchmarks/cifar10.py` whose config
  equals it today, `cifar10_summary.bundled_config`, each beside its
  end-to-end twin, one per seed), as mean ± sd over seeds.

Regenerate the CIFAR-10 summary first (`python benchmarks/cifar10_summary.py`),
then this. `--check` changes nothing and exits 1 if a file is out of date
(`tests/test_readme.py` runs it).

Usage:
    python benchmarks/update_readme.py [--check]
"""

import argparse
import json
import os
import re
import statistics
import sys

from _common import RESULTS, cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir))
README = os.path.join(ROOT, "README.md")
RESULTS_PAGE = os.path.join(ROOT, "docs", "results.md")
TARGETS = (README, RESULTS_PAGE)
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6}) ")


def _load(name):
    with open(os.path.join(RESULTS, name)) as f:
        return json.load(f)


def _span(values, digits=4):
    """`mean (min–max)` of `values`."""
    return f"{statistics.mean(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def _mean_sd(values, digits=4, seeds=True):
    """`mean ± sd (n seeds)`, or the one value `(1 seed)`; without `seeds`, no count."""
    if len(values) == 1:
        text, count = f"{values[0]:.{digits}f}", "1 seed"
    else:
        text = f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
        count = f"{len(values)} seeds"
    return f"{text} ({count})" if seeds else text


def _machine(machine, model=None):
    gpus = machine.get("gpus")
    return cpu_description(machine, model) + (", GPUs: " + ", ".join(gpus) if gpus else ", no GPU")


def seed_runs(runs, name):
    """The seed runs of bundled config `name` among `runs` (`(stem, report)` pairs): its full runs with a twin.

    A run without its end-to-end twin (an exploration run with
    `--skip-baseline`) is not one; two seed runs of the same seed are an
    error, so that no seed counts twice in a mean.
    """
    import cifar10_summary as summary

    picked = [(stem, r) for stem, r in runs if summary.bundled_config(r) == name and r.get("end_to_end")]
    seeds = [r.get("seed", 0) for _, r in picked]
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise ValueError(f"update_readme.py: {name} has several seed runs of seed(s) {twice}: "
                         f"{[stem for stem, r in picked if r.get('seed', 0) in twice]}; keep one per seed.")
    return picked


def headline():
    """README's one results table, made from the results JSON files."""
    import cifar10_summary as summary

    lines = [
        "| model and data | layerwise (grown) | end-to-end SGD, same network | measured |",
        "|---|---|---|---|",
    ]
    h = _load("hierarchical.json")
    runs = [r for r in h["runs"] if r["config"] == "hierarchical_digits"]
    lines.append(
        f"| `hierarchical_digits`, the paper's generative model: test accuracy on {runs[0]['test_examples']:,} "
        f"images, mean (min–max) over {len(runs)} seeds "
        f"| {_span([r['layerwise']['test_accuracy'] for r in runs])} "
        f"| {_span([r['end_to_end']['test_accuracy'] for r in runs])} "
        f"| `{h['command']}`, commit `{h['commit']}`, {_machine(h['machine'])} |")
    s = _load("sample_complexity.json")
    smallest = s["smallest_size_reaching_99"]["hierarchical_digits"]
    lines.append(
        f"| `hierarchical_digits`: fewest training images for 99 % median test accuracy "
        f"({s['steps']} gradient steps per stage, {s['seeds']} seeds) "
        f"| {smallest['layerwise']:,} | {smallest['end_to_end']:,} "
        f"| `benchmarks/sample_complexity.py`, commit `{s['commit']}`, {_machine(s['machine'], s.get('cpu_model'))} |")
    runs = summary.full_runs()
    for name in sorted(summary._bundled()):
        picked = seed_runs(runs, name)
        stems, mine = [stem for stem, _ in picked], [r for _, r in picked]
        if not mine:
            lines.append(f"| `{name}` (CIFAR-10) | no full run of this config committed | | |")
            continue
        twins = [r["end_to_end"]["test_accuracy"] for r in mine if r.get("end_to_end")]
        commits = ", ".join(f"`{c}`" for c in dict.fromkeys(r["commit"] for r in mine))
        lines.append(
            f"| `{name}`: CIFAR-10 test accuracy ({mine[0]['sizes']['test']:,} images, JPEG re-encoded copy) "
            f"| {_mean_sd([r['layerwise']['test_accuracy'] for r in mine])}; final validation "
            f"{_mean_sd([summary.final_val(r) for r in mine], seeds=False)} "
            f"| {_mean_sd(twins) if twins else '—'} "
            f"| `benchmarks/cifar10.py`: {', '.join(f'`{stem}.json`' for stem in stems)}, commit {commits}, "
            f"{'; '.join(sorted({_machine(r['machine']) for r in mine}))} |")
    return "\n".join(lines) + "\n"


def _level(text, position):
    """The level of the last heading before `position` in `text`, outside code fences and results blocks."""
    level, fenced = 0, False
    for line in BLOCK.sub("", text[:position]).splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and HEADING.match(line):
            level = len(HEADING.match(line).group(1))
    return level


def render(text):
    """`text` with every results block's body regenerated."""
    def replace(match):
        name = match.group("name")
        if name == "headline":
            body = headline()
        else:
            path = os.path.join(RESULTS, name + ".md")
            if not os.path.exists(path):
                raise FileNotFoundError(f"results block '{name}' has no result file {path}")
            with open(path) as f:
                body = f.read()
            # The result file's title nests one level below the heading the block sits under.
            level = min(_level(text, match.start()) + 1, 6)
            body = re.sub(r"^# ", "#" * level + " ", body, count=1)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md or docs/results.md is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in TARGETS:
        with open(path) as f:
            text = f.read()
        new = render(text)
        if new == text:
            continue
        stale.append(os.path.relpath(path, ROOT))
        if not args.check:
            with open(path, "w") as f:
                f.write(new)
    if args.check and stale:
        print(f"{', '.join(stale)} out of date: run python benchmarks/update_readme.py", file=sys.stderr)
        return 1
    for name in stale:
        print(f"updated {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
