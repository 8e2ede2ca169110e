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
