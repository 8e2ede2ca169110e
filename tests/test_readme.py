"""The README's Python snippet runs as written, and its results tables are up to date."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def _python_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_readme_has_the_quickstart_snippet():
    assert "lk.LayerwiseTrainer(" in _python_blocks()[0]


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_snippets_run(index, tmp_path, monkeypatch, capsys):
    """Every ```python block of the README runs as written, each in a fresh folder."""
    monkeypatch.chdir(tmp_path)  # snippets write logs/ and saved_models/
    namespace = {"__name__": "__readme__"}
    exec(compile(_python_blocks()[index], f"README.md[python block {index}]", "exec"), namespace)
    if index == 0:
        assert "purity per stage:" in capsys.readouterr().out
        lk = namespace["lk"]
        maps = lk.assignments(namespace["model"], namespace["x_test"])
        assert min(lk.stage_purities(maps, namespace["latents_test"])) >= 0.98
        assert os.path.exists(tmp_path / "saved_models" / "quickstart" / "1" / "saved_model.pb")
        events = os.listdir(tmp_path / "logs" / "quickstart" / "train")
        assert any(name.startswith("events.out.tfevents") for name in events)


def test_readme_results_match_benchmark_files():
    assert os.path.exists(os.path.join(ROOT, "benchmarks", "results", "hierarchical.md"))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "update_readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cifar10_summary_is_generated_from_the_full_runs(tmp_path):
    """The README's at-a-glance table is current, and lists full runs only, best first, with what each one was."""
    script = os.path.join(ROOT, "benchmarks", "cifar10_summary.py")
    result = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import cifar10_summary as summary
    finally:
        sys.path.pop(0)
    results = os.path.join(ROOT, "benchmarks", "results")
    with open(os.path.join(results, "cifar10_cifar10_paper.json")) as f:
        full = json.load(f)
    for name, changes in {"full": {}, "quick": {"quick": True}, "partial": {"complete": False}}.items():
        with open(tmp_path / f"cifar10_{name}.json", "w") as f:
            json.dump({**full, **changes}, f)
    with open(tmp_path / "cifar10_ablation.json", "w") as f:  # another layout: no "layerwise" side
        json.dump({"rows": []}, f)
    better = json.loads(json.dumps(full))
    better["layerwise"]["test_accuracy"] = 0.99  # a stand-in: only the ordering is under test
    with open(tmp_path / "cifar10_zbetter.json", "w") as f:
        json.dump(better, f)
    runs = summary.full_runs(str(tmp_path))
    assert [stem for stem, _ in runs] == ["cifar10_full", "cifar10_zbetter"]
    rows = [line for line in summary.markdown(runs).splitlines() if line.startswith("| cifar10_")]
    assert [row.split(" | ")[0] for row in rows] == ["| cifar10_zbetter", "| cifar10_full"]
    # cifar10_paper: the paper's order with the hard one-hot code, 8/4/4 epochs, stage 3 below stage 2.
    assert " | paper | hard | 8/4/4 | 0.6489 | " in rows[1] and rows[1].endswith(" | no | — / 1199 |")
    stages = [{"clusters": 8, "cluster": "patches", "assignment": "nearest", "q": 4}, {"clusters": None}]
    assert (summary.order(stages), summary.code(stages)) == ("cluster-first", "4-hot")
    stages[0].update(cluster="embeddings", assignment="nearest", q=1)
    assert (summary.order(stages), summary.code(stages)) == ("paper", "hard")
