"""The README's Python snippet runs as written, and its results tables are up to date."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def _python_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_readme_python_snippet_runs(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)  # it writes logs/ and saved_models/
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "purity per stage:" in out
    lk = namespace["lk"]
    purities = lk.stage_purities(lk.assignments(namespace["model"], namespace["x_test"]), namespace["latents_test"])
    assert min(purities) >= 0.98
    assert os.path.exists(tmp_path / "saved_models" / "quickstart" / "1" / "saved_model.pb")
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "logs" / "quickstart" / "train"))


def test_readme_results_match_benchmark_files():
    if not os.path.exists(os.path.join(ROOT, "benchmarks", "results", "hierarchical.md")):
        pytest.skip("no committed benchmark results yet")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "update_readme.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
