"""The README and the user guide (docs/*.md): their Python blocks run as written, their results tables are
generated and current, the README is short with a working table of contents, links resolve and headings nest."""

import glob
import json
import os
import re
import statistics
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
README = os.path.join(ROOT, "README.md")
README_MAX_LINES = 300
# The pages whose Python blocks run and whose links and headings are checked.
PAGES = [README, os.path.join(ROOT, "benchmarks", "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _read(path):
    with open(path) as f:
        return f.read()


def _python_blocks(path=README):
    return re.findall(r"```python\n(.*?)```", _read(path), re.S)


def _prose_lines(text):
    """The lines of a markdown text outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def _headings(text):
    """`(level, text)` of every heading outside code blocks."""
    return [(len(m.group(1)), m.group(2)) for m in map(HEADING.match, _prose_lines(text)) if m]


def _anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _anchors(text):
    """Every anchor of a page's headings, with GitHub's `-1`, `-2` suffixes for repeated headings."""
    seen, anchors = {}, set()
    for _, heading in _headings(text):
        base = _anchor(heading)
        anchor = base if base not in seen else f"{base}-{seen[base]}"
        seen[base] = seen.get(base, 0) + 1
        anchors.add(anchor)
    return anchors


def _links(text):
    """The targets of the markdown links and images of a page, outside code blocks and code spans."""
    prose = "\n".join(_prose_lines(text))
    return LINK.findall(re.sub(r"`[^`\n]*`", "", prose))


def _page_id(path):
    return os.path.relpath(path, ROOT)


SNIPPETS = [(path, index) for path in PAGES for index in range(len(_python_blocks(path)))]


def test_readme_has_the_quickstart_snippet():
    assert "lk.LayerwiseTrainer(" in _python_blocks()[0]
    assert len(_python_blocks()) == 1, "the README keeps one Python example; others belong in docs/"


@pytest.mark.parametrize("path,index", SNIPPETS, ids=[f"{_page_id(p)}[{i}]" for p, i in SNIPPETS])
def test_python_snippets_run(path, index, tmp_path, monkeypatch, capsys):
    """Every ```python block of the README and of docs/*.md runs as written, each in a fresh folder."""
    monkeypatch.chdir(tmp_path)  # snippets write logs/ and saved_models/
    namespace = {"__name__": "__readme__"}
    exec(compile(_python_blocks(path)[index], f"{_page_id(path)}[python block {index}]", "exec"), namespace)
    if path == README and index == 0:
        assert "purity per stage:" in capsys.readouterr().out
        lk = namespace["lk"]
        maps = lk.assignments(namespace["model"], namespace["x_test"])
        assert min(lk.stage_purities(maps, namespace["latents_test"])) >= 0.98
        assert os.path.exists(tmp_path / "saved_models" / "quickstart" / "1" / "saved_model.pb")
        events = os.listdir(tmp_path / "logs" / "quickstart" / "train")
        assert any(name.startswith("events.out.tfevents") for name in events)


def test_the_moved_snippets_are_still_run():
    """The snippets that left the README are run from their docs pages."""
    pages = {_page_id(p) for p, _ in SNIPPETS}
    assert {"README.md", "docs/stage_kinds.md", "docs/tensorboard.md", "docs/tuning.md", "docs/serving.md"} <= pages


def test_readme_and_results_page_are_generated_and_current():
    """README's headline table and docs/results.md are what `update_readme.py` makes from the result files."""
    assert os.path.exists(os.path.join(ROOT, "benchmarks", "results", "hierarchical.md"))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "update_readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    readme, results = _read(README), _read(os.path.join(ROOT, "docs", "results.md"))
    assert "<!-- results:headline -->" in readme and "docs/results.md" in readme
    assert re.findall(r"<!-- results:([\w.-]+) -->", readme) == ["headline"], "the history belongs in docs/results.md"
    blocks = set(re.findall(r"<!-- results:([\w.-]+) -->", results))
    cifar_runs = {os.path.splitext(os.path.basename(p))[0]
                  for p in glob.glob(os.path.join(ROOT, "benchmarks", "results", "cifar10_*.json"))}
    cifar_runs = {stem for stem in cifar_runs
                  if "layerwise" in json.loads(_read(os.path.join(ROOT, "benchmarks", "results", stem + ".json")))}
    expected = {"hierarchical", "sample_complexity", "cifar10_summary", "cifar10_ablation", "kmeans", "kmeans_gpu"}
    assert expected | cifar_runs <= blocks, "every result and every CIFAR-10 run has its block in docs/results.md"
    prose = " ".join(results.split())
    assert "`cifar10_best` was chosen by comparing the test accuracy of nine full runs" in prose
    assert "configs are chosen on the 5,000 validation images and test is reported once per final config" in prose
    assert "never used for selection" not in " ".join((readme + results).split())


def test_readme_headline_lists_the_bundled_configs_runs():
    """The headline's CIFAR-10 rows are the runs whose config equals today's bundled config, test as reported."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import cifar10_summary as summary
    finally:
        sys.path.pop(0)
    runs = dict(summary.full_runs())
    assert summary.bundled_config(runs["cifar10_cifar10_best_12x24x24_cached8"]) == "cifar10_best"  # its exploration
    assert summary.bundled_config(runs["cifar10_cifar10_best_12x3"]) is None  # 12/12/12 uncached: the config before
    assert summary.bundled_config(runs["cifar10_cifar10_paper"]) == "cifar10_paper"
    assert summary.bundled_config(runs["cifar10_cifar10_paper_8x4x4"]) is None  # the earlier cifar10_paper
    assert summary.bundled_config(runs["cifar10_cifar10_best_8x3"]) is None  # 8/8/8 epochs: not today's config
    assert summary.bundled_config(runs["cifar10_paper_triangle"]) is None  # named cifar10_best at its commit
    headline = _read(README).split("<!-- results:headline -->")[1].split("<!-- /results:headline -->")[0]
    row = next(line for line in headline.splitlines() if line.startswith("| `cifar10_best`"))
    # Every run of today's cifar10_best beside its twin, one per seed, as mean +- sd (the sample sd) of their test
    # accuracies.
    best = {stem: r for stem, r in runs.items() if summary.bundled_config(r) == "cifar10_best" and r.get("end_to_end")}
    assert "cifar10_cifar10_best_seed1" in best and len({r.get("seed", 0) for r in best.values()}) == len(best)
    assert "cifar10_cifar10_best_12x24x24_cached8" not in row  # the exploration (no twin) is no seed run
    tests = [r["layerwise"]["test_accuracy"] for r in best.values()]
    figure = (f"{statistics.mean(tests):.4f} ± {statistics.stdev(tests):.4f} ({len(tests)} seeds)" if len(tests) > 1
              else f"{tests[0]:.4f} (1 seed)")
    assert figure in row and all(f"{stem}.json" in row for stem in best)
    # cifar10_paper's exploration run (the same config and seed 0, without a twin) is not one of its seed runs.
    paper = next(line for line in headline.splitlines() if line.startswith("| `cifar10_paper`"))
    assert summary.bundled_config(runs["cifar10_cifar10_paper_12x3_cached6"]) == "cifar10_paper"
    assert "cifar10_cifar10_paper.json" in paper and "cifar10_cifar10_paper_12x3_cached6" not in paper


def test_a_seed_counts_once_in_the_headline():
    """Two seed runs of one seed of a bundled config are an error, not two seeds in a mean."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import cifar10_summary as summary
        import update_readme
    finally:
        sys.path.pop(0)
    runs = [(stem, r) for stem, r in summary.full_runs()
            if summary.bundled_config(r) == "cifar10_paper" and r.get("end_to_end")]
    assert len(update_readme.seed_runs(runs, "cifar10_paper")) == len(runs) >= 2
    stem, report = runs[0]
    with pytest.raises(ValueError, match="several seed runs of seed"):
        update_readme.seed_runs(runs + [(stem + "_again", report)], "cifar10_paper")


def test_readme_is_short_with_a_table_of_contents():
    text = _read(README)
    assert len(text.splitlines()) <= README_MAX_LINES, f"README.md has {len(text.splitlines())} lines"
    headings = _headings(text)
    assert ("Contents" in [h for _, h in headings]), "README.md has a '## Contents' section"
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    targets = re.findall(r"\]\(#([^)]+)\)", contents)
    sections = [_anchor(h) for level, h in headings if level == 2 and h != "Contents"]
    assert targets == sections, "the table of contents lists every section, in order"
    assert set(targets) <= _anchors(text)


@pytest.mark.parametrize("path", PAGES, ids=_page_id)
def test_relative_links_resolve(path):
    """Every relative link and image of the page names a file in the repository, and an anchor names a heading."""
    missing = []
    for target in _links(_read(path)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not resolved.startswith(ROOT + os.sep) or not os.path.exists(resolved):
            missing.append(f"{target} (no {os.path.relpath(resolved, ROOT)} in the repository)")
        elif anchor and resolved.endswith(".md") and anchor not in _anchors(_read(resolved)):
            missing.append(f"{target} (no heading with that anchor)")
    assert not missing, f"{_page_id(path)}: {missing}"


@pytest.mark.parametrize("path", PAGES, ids=_page_id)
def test_headings_do_not_skip_levels(path):
    """One `#` title, and no heading more than one level below the one before it (no `##` -> `####`)."""
    levels = [level for level, _ in _headings(_read(path))]
    assert levels and levels[0] == 1 and levels.count(1) == 1, f"{_page_id(path)}: one '# ' title first"
    jumps = [(a, b) for a, b in zip(levels, levels[1:]) if b > a + 1]
    assert not jumps, f"{_page_id(path)}: heading levels jump {jumps}"


def test_cifar10_summary_is_generated_from_the_full_runs(tmp_path):
    """The CIFAR-10 summary is current, lists full runs only, ranked by final validation accuracy, not test."""
    script = os.path.join(ROOT, "benchmarks", "cifar10_summary.py")
    result = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import cifar10_summary as summary
    finally:
        sys.path.pop(0)
    results = os.path.join(ROOT, "benchmarks", "results")
    with open(os.path.join(results, "cifar10_cifar10_paper_8x4x4.json")) as f:
        full = json.load(f)
    for name, changes in {"full": {}, "quick": {"quick": True}, "partial": {"complete": False}}.items():
        with open(tmp_path / f"cifar10_{name}.json", "w") as f:
            json.dump({**full, **changes}, f)
    with open(tmp_path / "cifar10_ablation.json", "w") as f:  # another layout: no "layerwise" side
        json.dump({"rows": []}, f)
    better = json.loads(json.dumps(full))  # stand-ins: only the ordering is under test
    better["layerwise"]["stages"][-1]["val_accuracy"] = 0.99
    with open(tmp_path / "cifar10_zbetter.json", "w") as f:
        json.dump(better, f)
    lucky = json.loads(json.dumps(full))  # the best test figure, the worst validation: ranked last
    lucky["layerwise"]["test_accuracy"], lucky["layerwise"]["stages"][-1]["val_accuracy"] = 0.999, 0.1
    with open(tmp_path / "cifar10_alucky.json", "w") as f:
        json.dump(lucky, f)
    runs = summary.full_runs(str(tmp_path))
    assert [stem for stem, _ in runs] == ["cifar10_alucky", "cifar10_full", "cifar10_zbetter"]
    text = summary.markdown(runs)
    assert "the test columns were not used to rank" in text
    rows = [line for line in text.splitlines() if line.startswith("| cifar10_")]
    assert [row.split(" | ")[0] for row in rows] == ["| cifar10_zbetter", "| cifar10_full", "| cifar10_alucky"]
    # The earlier cifar10_paper (8/4/4 epochs, uncached; no bundled config today): seed 0, the paper's order with
    # the hard one-hot code of whitened embeddings, pooled heads and inputs (the kinds' labels,
    # growth.kinds.describe), final validation 0.6402 (ranks), test 0.6489, stage 3 below stage 2.
    assert rows[1].startswith("| cifar10_full | 0 | `cifar10_paper` | — | ")
    assert " | paper | hard · whitened · pooled head · pooled input | 8/4/4 | 0.6402 | 0.6489 | " in rows[1]
    assert rows[1].endswith(" | no | — / 1199 |")
    assert summary.final_val(full) == full["layerwise"]["stages"][-1]["val_accuracy"]
    stages = [{"width": None, "clusters": 8, "cluster": "patches", "assignment": "nearest", "q": 4},
              {"width": 8, "clusters": None}]
    report = {"config": {**full["config"], "stages": stages}}
    assert (summary.order(stages), summary.stage_kinds(report)) == ("cluster-first", "4-hot · cluster-first")
    stages[0].update(width=8, cluster="embeddings", assignment="nearest", q=1)  # q = 1 is hard
    assert (summary.order(stages), summary.stage_kinds(report)) == ("paper", "hard")
